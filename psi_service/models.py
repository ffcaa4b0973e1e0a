"""PSI tables: key epochs, the setup-cache index and protocol sessions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class PsiKeyEpochRow(Base):
    """One key epoch: a 32-byte master secret, sealed with the lab key (AES-GCM), from which every
    per-(dataset version, column) EC key of the epoch is derived. Destroyed keys keep their row."""

    __tablename__ = "psi_key_epochs"

    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), index=True)  # active | retired | destroyed
    sealed_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(16))  # HMAC fingerprint, not the key
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    destroyed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)


class PsiArtifactRow(Base):
    """The setup cache index: what was computed once and where it lives in the work bucket.

    ``kind`` is ``encrypted-set`` (the server column's EC-encrypted elements, sealed), ``setup`` (a
    ``ServerSetup`` for one client-size bucket) or ``lab-request`` (the lab's own ``Request`` over its
    column, cohort mode)."""

    __tablename__ = "psi_setups"
    __table_args__ = (
        UniqueConstraint("kind", "dataset_id", "dataset_version", "column", "epoch", "client_bound"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[str] = mapped_column(String(64), index=True)
    dataset_version: Mapped[int] = mapped_column(Integer)
    column: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(Integer, index=True)
    client_bound: Mapped[int] = mapped_column(BigInteger)  # size bucket; 0 when not bucketed
    data_structure: Mapped[str] = mapped_column(String(16))  # gcs | bloom_filter | raw | request
    fpr: Mapped[str] = mapped_column(String(32))
    server_size: Mapped[int] = mapped_column(BigInteger)  # distinct valid identifiers
    items_sha256: Mapped[str] = mapped_column(String(64))
    bucket: Mapped[str] = mapped_column(String(63))
    object_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sealed: Mapped[bool] = mapped_column(Boolean)
    build_seconds: Mapped[str] = mapped_column(String(32))
    workers: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class PsiSessionRow(Base):
    """One PSI run of one caller in one project: single use, bound to a setup (or lab request)."""

    __tablename__ = "psi_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    principal: Mapped[str] = mapped_column(String(128))
    dataset_id: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int] = mapped_column(Integer)
    column: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    declared_size: Mapped[int] = mapped_column(BigInteger)
    client_bound: Mapped[int] = mapped_column(BigInteger)
    epoch: Mapped[int] = mapped_column(Integer)
    artifact_id: Mapped[str] = mapped_column(String(40))
    nonce_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | processing | done | failed
    parts: Mapped[int] = mapped_column(Integer, default=0)  # 0 until the first part arrives
    parts_received: Mapped[list[Any]] = mapped_column(JSON, default=list)
    items_received: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    record_id: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
