"""The request audit table (articles 29, 32): one row per API request, never a token or a payload."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class AuditRequestRow(Base):
    """Who called which route (template, not the raw path) for which project, and how it went."""

    __tablename__ = "audit_requests"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    principal: Mapped[str | None] = mapped_column(String(128), index=True)  # None: unauthenticated
    project_id: Mapped[str | None] = mapped_column(String(32), index=True)
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(200))  # e.g. /api/v1/projects/{project_id}
    status: Mapped[int] = mapped_column(Integer, index=True)
    outcome: Mapped[str] = mapped_column(String(64))  # "ok" or the problem code
    latency_ms: Mapped[float] = mapped_column(Float)
