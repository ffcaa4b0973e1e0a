"""C2SP checkpoints of the lab's log and the cosignatures witnesses returned for them.

The log signs ``<origin>\\n<size>\\n<base64 root>\\n`` with its Ed25519 key as a signed note
(key name = origin, type 0x01); each checkpoint signed is remembered in ``ledger_checkpoints``;
each cosignature a witness returned, verified against that witness's configured key, in
``ledger_cosignatures``. Formats: docs/ledger.md, C2SP tlog-checkpoint and tlog-cosignature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lab.db.base import utcnow
from lab.errors import InvalidProof
from lab.ledger.log import Ledger
from lab.ledger.models import CheckpointRow, CosignatureRow, LedgerState
from lab.shared import merkle
from witness.note import Checkpoint, Verifier

AUDIT_FORMAT = "lab-witness-audit/v1"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint's note text, the log's signature line and the cosignature lines gathered."""

    size: int
    text: str
    signature: str
    cosignatures: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """The signed note, byte-exact: text, blank line, the log's then the witnesses' lines."""
        return self.text + "\n" + self.signature + "".join(self.cosignatures)


def log_verifier(ledger: Ledger, origin: str) -> Verifier:
    """The log's verifier key (vkey ``<origin>+<id>+<base64(0x01 || key)>``)."""
    return ledger.note_signer(origin).verifier


def current(ledger: Ledger, origin: str) -> SignedCheckpoint:
    """Sign (once per size) and return the checkpoint of the current tree, with its cosignatures."""
    session = ledger.session
    size, hexes = session.execute(
        select(LedgerState.size, LedgerState.frontier).where(LedgerState.id == 1)
    ).one()
    return at_size(ledger, origin, size, merkle.Frontier.from_hex(size, hexes).root())


def at_size(ledger: Ledger, origin: str, size: int, root: bytes) -> SignedCheckpoint:
    session = ledger.session
    row = session.get(CheckpointRow, size)
    if row is None or row.origin != origin or Checkpoint.parse(row.text).root != root:
        if row is not None:  # the tree at this size changed: old cosignatures no longer apply
            session.execute(delete(CosignatureRow).where(CosignatureRow.size == size))
        text = Checkpoint(origin, size, root).text()
        sig = ledger.note_signer(origin).sign_line(text)
        row = session.merge(
            CheckpointRow(size=size, origin=origin, text=text, signature=sig, created_at=utcnow())
        )
        session.flush()
    return stored(session, row)


def stored(session: Session, row: CheckpointRow) -> SignedCheckpoint:
    lines = session.execute(
        select(CosignatureRow.line).where(CosignatureRow.size == row.size).order_by(CosignatureRow.witness)
    ).scalars()
    return SignedCheckpoint(row.size, row.text, row.signature, tuple(lines))


def add_cosignature(session: Session, size: int, witness: str, line: str, timestamp: int) -> None:
    session.merge(CosignatureRow(size=size, witness=witness, line=line, timestamp=timestamp))


def witnessed(
    session: Session, quorum: int, min_size: int = 0, latest: bool = True
) -> SignedCheckpoint | None:
    """A remembered checkpoint with at least ``quorum`` cosignatures (the latest, or the smallest
    of size >= ``min_size`` when ``latest`` is False)."""
    counted = (
        select(CosignatureRow.size)
        .where(CosignatureRow.size >= min_size)
        .group_by(CosignatureRow.size)
        .having(func.count() >= max(quorum, 1))
    )
    order = CosignatureRow.size.desc() if latest else CosignatureRow.size.asc()
    size = session.execute(counted.order_by(order).limit(1)).scalar()
    if size is None:
        return None
    row = session.get(CheckpointRow, size)
    return stored(session, row) if row is not None else None


def inclusion_with_checkpoint(
    ledger: Ledger, index: int, origin: str, quorum: int, size: int | None = None, cosigned: bool = False
) -> dict[str, Any]:
    """An inclusion proof carrying the checkpoint of its tree (``checkpoint``): the latest one a quorum
    of witnesses cosigned when ``cosigned``, else the log-signed checkpoint of that size."""
    cp = None
    if cosigned:
        cp = witnessed(ledger.session, quorum)
        if cp is None or cp.size <= index:
            raise InvalidProof(f"no checkpoint cosigned by {quorum} witness(es) covers entry {index} yet")
        size = cp.size
    proof = ledger.inclusion(index, size)
    if cp is None:
        cp = at_size(ledger, origin, int(proof["tree_size"]), bytes.fromhex(proof["root_hash"]))
    return {**proof, "checkpoint": cp.note}


def audit_bundle(ledger: Ledger, origin: str, witness_notes: list[str]) -> dict[str, Any]:
    """What ``standalone.py audit`` checks offline: the log's current checkpoint and, for each
    witness's latest cosigned checkpoint, the consistency proof from it to the current tree."""
    cur = current(ledger, origin)
    items = []
    for note in witness_notes:
        old = Checkpoint.parse(note[: note.rfind("\n\n") + 1])
        proof = ledger.consistency_path(old.size, cur.size) if 0 < old.size < cur.size else []
        items.append({"note": note, "proof": [h.hex() for h in proof]})
    return {"format": AUDIT_FORMAT, "checkpoint": cur.note, "witnessed": items}
