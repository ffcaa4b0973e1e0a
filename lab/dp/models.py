"""The DP channel's own table: released query answers, kept so that a repeated identical query
returns the same noisy answer instead of fresh noise (which could be averaged away)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class DpAnswerRow(Base):
    """One released DP answer, keyed by the project and the digest of (spec, dataset version)."""

    __tablename__ = "dp_answers"
    __table_args__ = (UniqueConstraint("project_id", "spec_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    spec_sha256: Mapped[str] = mapped_column(String(64))
    dataset_id: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int] = mapped_column(Integer)
    record_id: Mapped[str] = mapped_column(String(40))
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)  # the released result, exactly as first returned
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
