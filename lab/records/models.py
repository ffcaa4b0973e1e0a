"""The derived-record table shared by every channel."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class DerivedRecordRow(Base):
    """One channel result: who, which project, which dataset versions, what it cost, what it hashed to."""

    __tablename__ = "derived_records"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "dr_" + 32 hex
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    caller: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(16), index=True)  # dp | psi | he
    operation: Mapped[str] = mapped_column(String(32))  # query, train, intersection, cohort, score, ...
    datasets: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{"id", "version", "sha256"}]
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)  # no raw operator inputs, ever
    epsilon: Mapped[str] = mapped_column(String(40), default="0")
    delta: Mapped[str] = mapped_column(String(40), default="0")
    result_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
