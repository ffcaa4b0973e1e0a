"""Column types shared by every table model.

``UtcDateTime`` is the one place that decides how times are stored: always UTC, and always read back as an
aware UTC ``datetime`` on SQLite (which keeps no zone) as on PostgreSQL (``timestamptz``). Its storage type
is exactly ``DateTime(timezone=True)``, so the migrations' columns compare equal to the models.

>>> import datetime as dt
>>> from sqlalchemy import Column, MetaData, Table, create_engine, insert, select
>>> table = Table("t", MetaData(), Column("at", UtcDateTime()))
>>> engine = create_engine("sqlite://")
>>> table.metadata.create_all(engine)
>>> beijing = dt.timezone(dt.timedelta(hours=8))
>>> with engine.begin() as conn:
...     _ = conn.execute(insert(table).values(at=dt.datetime(2026, 1, 1, 8, 0, tzinfo=beijing)))
...     conn.execute(select(table.c.at)).scalar_one()
datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["UtcDateTime", "as_utc"]


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive value is taken to be UTC already (``datetime.utcnow()`` style).

    >>> as_utc(dt.datetime(2026, 1, 1, 12, 0)).isoformat()
    '2026-01-01T12:00:00+00:00'
    """
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A ``DateTime(timezone=True)`` column that stores UTC and returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else as_utc(value)
