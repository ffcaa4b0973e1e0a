"""Product tables: products, their versions (submissions), lineage links, events, number counters.

A product keeps every version it was submitted with; a version carries its artifact digest,
its lineage snapshot, the results of the automatic checks, the review and — once approved —
its certificate. Registration numbers come from one counter row per year, locked to increment,
and are unique by constraint as well.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class ProductType(StrEnum):
    dataset = "dataset"
    report = "report"
    model = "model"
    api = "api"  # API / service: registered with an endpoint description instead of a file
    visualization = "visualization"


class ProductStatus(StrEnum):
    pending = "pending"  # no approved version yet; the latest is awaiting review
    registered = "registered"  # has a registration number and an approved version
    rejected = "rejected"  # latest version rejected, never registered
    revoked = "revoked"  # revoked by the bureau; final


class VersionStatus(StrEnum):
    in_review = "in_review"  # automatic checks passed, awaiting the bureau
    flagged = "flagged"  # a check failed; the bureau sees why (approval needs a reason)
    approved = "approved"
    rejected = "rejected"
    superseded = "superseded"  # a newer version was submitted before this one was reviewed


REVIEWABLE = frozenset({VersionStatus.in_review, VersionStatus.flagged})


class ProductRow(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "prd_" + 24 hex
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    registration_number: Mapped[str | None] = mapped_column(String(24), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), index=True)
    current_version: Mapped[int] = mapped_column(Integer)
    approved_version: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    registered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    revoke_ledger_index: Mapped[int | None] = mapped_column(BigInteger)


class ProductVersionRow(Base):
    """One submission of a product: metadata, artifact, lineage, checks, review, certificate."""

    __tablename__ = "product_versions"
    __table_args__ = (UniqueConstraint("product_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(Text)
    artifact_kind: Mapped[str] = mapped_column(String(16))  # file | endpoint
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    artifact_bucket: Mapped[str | None] = mapped_column(String(63))
    artifact_key: Mapped[str | None] = mapped_column(String(512))
    artifact_filename: Mapped[str | None] = mapped_column(String(255))
    artifact_media_type: Mapped[str | None] = mapped_column(String(128))
    endpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    derived_from: Mapped[list[str]] = mapped_column(JSON)
    lineage: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # snapshot of the records at submission
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    checks_passed: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(32), index=True)
    submitted_by: Mapped[str] = mapped_column(String(128))
    submitted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    submit_ledger_index: Mapped[int] = mapped_column(BigInteger)
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    review_reason: Mapped[str | None] = mapped_column(Text)
    review_ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    certificate: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ProductLineageRow(Base):
    """Which derived records a product version comes from (for "what was made from record X")."""

    __tablename__ = "product_lineage"
    __table_args__ = (UniqueConstraint("product_id", "version", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    record_id: Mapped[str] = mapped_column(String(40), index=True)


class ProductEventRow(Base):
    """Every transition: submitted, approved, rejected, superseded, revoked."""

    __tablename__ = "product_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)


class RegistrationCounterRow(Base):
    """The last registration number issued in a year; locked (``FOR UPDATE``) to take the next."""

    __tablename__ = "product_registration_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)
