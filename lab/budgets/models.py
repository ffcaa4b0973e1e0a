"""Dataset accounts: one privacy-loss account per dataset, and every charge made to it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lab.db.base import Base
from lab.db.types import UtcDateTime


class DatasetAccountRow(Base):
    """The running basic-composition totals of one dataset's account; locked to charge it."""

    __tablename__ = "dataset_accounts"

    dataset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    epsilon_spent: Mapped[str] = mapped_column(String(40), default="0")
    delta_spent: Mapped[str] = mapped_column(String(40), default="0")
    spends: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class DatasetChargeRow(Base):
    """One release charged to a dataset account (the steps of the bureau's risk view)."""

    __tablename__ = "dataset_charges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(64), index=True)
    period: Mapped[str] = mapped_column(String(16), index=True)  # calendar year, e.g. "2026"
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    organization: Mapped[str] = mapped_column(String(200))
    record_id: Mapped[str] = mapped_column(String(40), index=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    operation: Mapped[str] = mapped_column(String(32))
    epsilon: Mapped[str] = mapped_column(String(40))
    delta: Mapped[str] = mapped_column(String(40))
    gaussian: Mapped[bool] = mapped_column(Boolean, default=False)  # composed by RDP when True
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
