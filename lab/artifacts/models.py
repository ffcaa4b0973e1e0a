"""Tables of server-side artifacts: cohorts, models, DP statistics tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class CohortRow(Base):
    """A PSI cohort: entity keys of one dataset version, stored as Parquet in the work bucket."""

    __tablename__ = "cohorts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "co_" + 32 hex
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    dataset_id: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int] = mapped_column(Integer)
    column: Mapped[str] = mapped_column(String(64))  # the identifier column matched
    size: Mapped[int] = mapped_column(BigInteger)  # exact size: server-side only, never released
    bucket: Mapped[str] = mapped_column(String(63))
    object_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    record_id: Mapped[str] = mapped_column(String(40))


class ModelRow(Base):
    """A model usable by HE scoring: project-owned (DP-trained) or bureau-published (project_id NULL)."""

    __tablename__ = "ml_models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "m_" + hex
    project_id: Mapped[str | None] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))  # linear | logistic | gaussian_nb
    dataset_id: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[str]] = mapped_column(JSON)
    target: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # coef, intercept, classes, feature bounds, ...
    epsilon: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    record_id: Mapped[str | None] = mapped_column(String(40))
    release: Mapped[str | None] = mapped_column(String(16))  # dp | published (lab.artifacts.release)


class StatTableRow(Base):
    """A DP-released statistics table (e.g. mean income by town × age band) for HE lookups."""

    __tablename__ = "stat_tables"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "t_" + hex
    project_id: Mapped[str | None] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(128))
    dataset_id: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int] = mapped_column(Integer)
    dims: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{"column": "town", "domain": [...]}, ...]
    statistic: Mapped[str] = mapped_column(String(64))  # e.g. "mean(monthly_income)"
    values: Mapped[list[float]] = mapped_column(JSON)  # row-major over the dims' domains
    epsilon: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    record_id: Mapped[str | None] = mapped_column(String(40))
    release: Mapped[str | None] = mapped_column(String(16))  # dp | published (lab.artifacts.release)
