"""Ledger tables: entries, the log state (frontier), signed tree heads, signing keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class LedgerEntryRow(Base):
    """One leaf of the log. ``root_after`` is the tree root once this leaf is included."""

    __tablename__ = "ledger_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON of the whole entry
    leaf_hash: Mapped[str] = mapped_column(String(64))
    root_after: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class LedgerState(Base):
    """Single row (id=1): the tree size and frontier; locked for every append."""

    __tablename__ = "ledger_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[list[str]] = mapped_column(JSON)


class TreeHeadRow(Base):
    """A signed tree head that was issued; later verification checks the log still matches it."""

    __tablename__ = "ledger_tree_heads"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))


class SigningKeyRow(Base):
    """Ed25519 keys; the private half sealed with the lab's at-rest key."""

    __tablename__ = "ledger_signing_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # base64 raw
    sealed_private: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    active: Mapped[bool] = mapped_column(default=True)


class CheckpointRow(Base):
    """A C2SP checkpoint the lab signed (note text and the log's signature line)."""

    __tablename__ = "ledger_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    origin: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)  # origin, size, base64 root, each newline-terminated
    signature: Mapped[str] = mapped_column(Text)  # "— <origin> <base64>\n"
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class CosignatureRow(Base):
    """A witness's cosignature line on the checkpoint of ``size``."""

    __tablename__ = "ledger_cosignatures"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(255), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class WitnessStateRow(Base):
    """What the lab knows of a witness: the last size it cosigned, the last outcome."""

    __tablename__ = "ledger_witnesses"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    vkey: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    last_ok_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
