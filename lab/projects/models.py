"""Project tables: projects, members, grants, budgets, usage counters, transitions, disposals."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class ProjectStatus(StrEnum):
    pending = "pending"  # submitted, awaiting review
    changes_requested = "changes_requested"
    rejected = "rejected"
    active = "active"
    suspended = "suspended"
    ended = "ended"  # ended by the bureau
    expired = "expired"  # reached its end date


SERVING = frozenset({ProjectStatus.active})
FINAL = frozenset({ProjectStatus.rejected, ProjectStatus.ended, ProjectStatus.expired})


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(Text)
    organization: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(200))
    applicant: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    requested_days: Mapped[int] = mapped_column(Integer)
    requested: Mapped[dict[str, Any]] = mapped_column(JSON)  # datasets -> channel requests, as applied
    commitment: Mapped[str] = mapped_column(Text)  # the signed security commitment text
    commitment_signed_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    starts_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    ends_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    disposed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # Hub group sync: every change of who may spawn bumps hub_version; a successful sync of the
    # project's Hub group records the version it pushed (see lab.projects.hubsync).
    hub_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    hub_synced_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ProjectMemberRow(Base):
    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    username: Mapped[str] = mapped_column(String(128), index=True)
    added_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    removed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class GrantRow(Base):
    """What a project may do with one dataset, per channel (see ``lab.projects.access`` for the shape)."""

    __tablename__ = "project_grants"
    __table_args__ = (UniqueConstraint("project_id", "dataset_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(String(64))
    limits: Mapped[dict[str, Any]] = mapped_column(JSON)


class BudgetRow(Base):
    """A project's privacy budget on one dataset; decimals stored as exact strings, locked to spend."""

    __tablename__ = "project_budgets"
    __table_args__ = (UniqueConstraint("project_id", "dataset_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(String(64))
    epsilon_total: Mapped[str] = mapped_column(String(40))
    delta_total: Mapped[str] = mapped_column(String(40))
    epsilon_spent: Mapped[str] = mapped_column(String(40), default="0")
    delta_spent: Mapped[str] = mapped_column(String(40), default="0")
    spends: Mapped[int] = mapped_column(Integer, default=0)


class UsageRow(Base):
    """Quota counters: PSI requests per day (``period`` = date), HE records overall (``period`` = total)."""

    __tablename__ = "project_usage"
    __table_args__ = (UniqueConstraint("project_id", "dataset_id", "channel", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16))
    used: Mapped[int] = mapped_column(BigInteger, default=0)


class ProjectEventRow(Base):
    """Every transition (apply, review decisions, suspend, end, expire, membership, disposal)."""

    __tablename__ = "project_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    ledger_index: Mapped[int] = mapped_column(BigInteger)
