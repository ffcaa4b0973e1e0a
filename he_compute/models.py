"""Tables of the HE channel: the public contexts operators registered (metadata; bytes in the work bucket)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class HeContextRow(Base):
    """A public CKKS context of one operator in one project.

    The bytes live at ``projects/<project>/he/contexts/<sha256>`` in the work bucket; they were
    checked in an isolated worker to hold no secret key and an approved parameter set. Disposal
    deletes the bytes and stamps ``deleted_at`` (the row stays as metadata).
    """

    __tablename__ = "he_contexts"
    __table_args__ = (Index("ix_he_contexts_project_owner", "project_id", "owner"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "hc_" + 32 hex
    project_id: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(128))
    param_set: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    bucket: Mapped[str] = mapped_column(String(63))
    object_key: Mapped[str] = mapped_column(String(512))
    has_relin_keys: Mapped[bool] = mapped_column(Boolean)
    has_galois_keys: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class HeCallRow(Base):
    """A multi-part score or lookup (:mod:`he_compute.calls`): opened, sent in parts, committed once.

    ``parts`` maps a part number to the work-bucket object of its result ciphertexts and the
    SHA-256 of its input ciphertexts; nothing of it is returned before the commit charges the call.
    """

    __tablename__ = "he_calls"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "hx_" + 32 hex
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    operation: Mapped[str] = mapped_column(String(16))  # score | lookup
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the CallSpec
    material_id: Mapped[str] = mapped_column(String(40))  # the model or table resolved at opening
    batches: Mapped[int] = mapped_column(Integer)
    part_batches: Mapped[int] = mapped_column(Integer)
    parts: Mapped[dict[str, Any]] = mapped_column(JSON)  # "k" -> {bucket, key, sha256, size, input_sha256}
    status: Mapped[str] = mapped_column(String(16))  # open | committed | abandoned
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    record_id: Mapped[str | None] = mapped_column(String(40))
