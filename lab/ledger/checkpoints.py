"""C2SP checkpoints of the lab's log and the cosignatures witnesses returned for them.

The log signs ``<origin>\\n<size>\\n<base64 root>\\n`` with its Ed25519 key as a signed note
(key name = origin, type 0x01); each checkpoint signed is remembered in ``ledger_checkpoints``;
each cosignature a witness returned, verified against that witness's configured key, in
``ledger_cosignatures``. Formats: docs/ledger.md, C2SP tlog-checkpoint and tlog-cosignature.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lab.db.base import utcnow
from lab.ledger import merkle
from lab.ledger.log import Ledger
from lab.ledger.models import CheckpointRow, CosignatureRow, LedgerState
from witness.note import Checkpoint, Verifier


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
