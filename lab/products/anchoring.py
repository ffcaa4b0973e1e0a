"""Anchoring a certificate to a witnessed checkpoint.

A certificate is issued at approval against the tree head of that moment. Once witnesses have
cosigned a checkpoint that covers it, the certificate is re-anchored (once, then stored): its
approval and lineage proofs are recomputed against that checkpoint's tree and the cosigned
checkpoint note is carried in ``ledger.checkpoint``, so a verifier trusting the witnesses' keys
needs nothing from the lab. Until then the certificate carries the log-signed checkpoint of its
own tree, which verifies with the log key alone but not against witnesses.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from lab.ledger import Ledger, checkpoints


def anchor(
    session: Session, ledger: Ledger, cert: dict[str, Any], origin: str, quorum: int
) -> dict[str, Any]:
    """``cert`` anchored to the smallest witnessed checkpoint covering it (or its own, log-signed)."""
    doc = cert["ledger"]
    if _cosigned(doc, quorum):
        return cert
    indexes = [int(doc["index"]), *(int(p["index"]) for p in cert.get("lineage_proofs", []))]
    witnessed = checkpoints.witnessed(session, quorum, min_size=int(doc["tree_size"]), latest=False)
    if witnessed is None:
        size, root = int(doc["tree_size"]), bytes.fromhex(doc["root_hash"])
        own = checkpoints.at_size(ledger, origin, size, root)
        return {**cert, "ledger": {**doc, "checkpoint": own.note}}
    proofs = ledger.inclusions(sorted(set(indexes)), witnessed.size)
    approval = {**proofs[int(doc["index"])], "entry": doc["entry"], "checkpoint": witnessed.note}
    lineage = [
        {**p, "audit_path": proofs[int(p["index"])]["audit_path"]} for p in cert.get("lineage_proofs", [])
    ]
    return {**cert, "ledger": approval, "lineage_proofs": lineage}


def _cosigned(doc: dict[str, Any], quorum: int) -> bool:
    note = doc.get("checkpoint")
    return isinstance(note, str) and note.count("\n\u2014 ") - 1 >= max(quorum, 1)
