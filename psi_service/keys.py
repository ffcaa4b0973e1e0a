"""Server key epochs: one sealed master secret per epoch, EC keys derived per dataset version and column.

* A master secret (32 random bytes) is created per epoch and stored **sealed** with the lab key
  (AES-256-GCM, ``lab.ledger.signing.seal``, bound to the context ``lab-psi-epoch|<n>``).
* The EC scalar used for one (role, dataset, version, column) is
  ``HKDF-SHA256(master, info="lab-psi-v1|role|dataset|version|column") mod (n-1) + 1``. Distinct
  keys per dataset, version and column stop an operator from comparing two setups (of two datasets,
  or two versions of one) to learn their overlap without a request.
* ``rotate`` retires the active epoch and starts the next (setups are rebuilt lazily under it);
  ``purge`` destroys retired epochs once no session can still use them, and deletes their cached
  setups. Creations, rotations and destructions are ledger entries (``psi.key_epoch``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lab.db.base import utcnow
from lab.errors import Conflict, CorruptObject
from lab.ledger.signing import seal, unseal
from lab.runtime import Runtime
from psi_service.models import PsiArtifactRow, PsiKeyEpochRow

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def derive_key(master: bytes, role: str, dataset: str, version: int, column: str) -> bytes:
    """The 32-byte EC scalar (in ``[1, n)``) of ``role`` (``server`` or ``cohort-client``).

    >>> k = derive_key(bytes(32), "server", "population", 1, "phone")
    >>> len(k), k != derive_key(bytes(32), "server", "population", 2, "phone")
    (32, True)
    """
    info = f"lab-psi-v1|{role}|{dataset}|{version}|{column}".encode()
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=info).derive(master)
    scalar = int.from_bytes(okm, "big") % (P256_ORDER - 1) + 1
    return scalar.to_bytes(32, "big")


def key_fingerprint(master: bytes) -> str:
    """A public identifier of a master secret (HMAC, reveals nothing about it)."""
    return hmac.new(master, b"lab-psi-key-id", hashlib.sha256).hexdigest()[:16]


def _context(epoch: int) -> bytes:
    return f"lab-psi-epoch|{epoch}".encode()


class KeyRing:
    """Key epochs over the runtime's database (each method runs its own short transaction)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def _create(self, session: Session, actor: str, retired: int | None) -> PsiKeyEpochRow:
        latest = session.execute(select(func.max(PsiKeyEpochRow.epoch))).scalar()
        epoch = (latest or 0) + 1
        master = os.urandom(32)
        row = PsiKeyEpochRow(
            epoch=epoch,
            status="active",
            sealed_key=seal(self.rt.settings.encryption_key, master, _context(epoch)),
            key_id=key_fingerprint(master),
            created_by=actor,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        entry = self.rt.ledger(session).append(
            "psi.key_epoch",
            {"epoch": epoch, "action": "create", "key_id": row.key_id, "retired": retired},
            actor=actor,
        )
        row.ledger_index = entry.index
        return row

    def active(self, actor: str = "lab") -> int:
        """The active epoch, created (epoch 1) on first use."""
        with self.rt.transaction() as s:
            epoch = s.execute(select(PsiKeyEpochRow.epoch).where(PsiKeyEpochRow.status == "active")).scalar()
            if epoch is not None:
                return int(epoch)
        try:
            with self.rt.transaction() as s:
                return self._create(s, actor, None).epoch
        except IntegrityError:  # another process created it first
            with self.rt.transaction() as s:
                return int(
                    s.execute(
                        select(PsiKeyEpochRow.epoch).where(PsiKeyEpochRow.status == "active")
                    ).scalar_one()
                )

    def master(self, epoch: int) -> bytes:
        """The unsealed master secret of a usable (active or retired) epoch."""
        with self.rt.transaction() as s:
            row = s.get(PsiKeyEpochRow, epoch)
            if row is None or row.sealed_key is None:
                raise Conflict(f"PSI key epoch {epoch} was destroyed; start a new session")
            sealed = row.sealed_key
        try:
            return unseal(self.rt.settings.encryption_key, sealed, _context(epoch))
        except InvalidTag:
            raise CorruptObject(f"PSI key epoch {epoch} does not unseal with this lab key") from None

    def rotate(self, actor: str) -> tuple[int | None, int]:
        """Retire the active epoch and start the next; returns ``(retired, new)``."""
        with self.rt.transaction() as s:
            current = s.execute(
                select(PsiKeyEpochRow).where(PsiKeyEpochRow.status == "active").with_for_update()
            ).scalar_one_or_none()
            retired = None
            if current is not None:
                current.status, current.retired_at, retired = "retired", utcnow(), current.epoch
                s.flush()
            return retired, self._create(s, actor, retired).epoch

    def purge(self, actor: str, grace: dt.timedelta) -> list[int]:
        """Destroy epochs retired longer than ``grace`` ago and delete their cached artifacts."""
        cutoff = utcnow() - grace
        destroyed = []
        with self.rt.transaction() as s:
            rows = s.execute(select(PsiKeyEpochRow).where(PsiKeyEpochRow.status == "retired")).scalars()
            for row in rows:
                retired_at = row.retired_at
                if retired_at is None:
                    continue
                if retired_at > cutoff:
                    continue
                for art in s.execute(
                    select(PsiArtifactRow).where(PsiArtifactRow.epoch == row.epoch)
                ).scalars():
                    self.rt.store.client.remove_object(art.bucket, art.object_key)
                    s.delete(art)
                row.status, row.sealed_key, row.destroyed_at = "destroyed", None, utcnow()
                self.rt.ledger(s).append(
                    "psi.key_epoch",
                    {"epoch": row.epoch, "action": "destroy", "key_id": row.key_id, "retired": None},
                    actor=actor,
                )
                destroyed.append(row.epoch)
        return destroyed

    def epochs(self) -> list[PsiKeyEpochRow]:
        with self.rt.transaction() as s:
            return list(s.execute(select(PsiKeyEpochRow).order_by(PsiKeyEpochRow.epoch)).scalars())
