"""The tamper-evident ledger (article 9): an append-only Merkle log with signed tree heads.

The generic RFC 9162 tree (no I/O) is :mod:`lab.shared.merkle` and the offline verifier
:mod:`lab.shared.standalone`, shared with the client and the witness; ``entries`` is the
personality (entry kinds, canonical JSON); ``log`` stores entries in the database and serves
tree heads, inclusion and consistency proofs and full verification.
"""

from lab.ledger.entries import canonical_json
from lab.ledger.log import Ledger, LedgerEntry, SignedTreeHead, VerifyReport

__all__ = ["Ledger", "LedgerEntry", "SignedTreeHead", "VerifyReport", "canonical_json"]
