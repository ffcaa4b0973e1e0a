"""``UtcDateTime`` stores UTC and reads back aware UTC datetimes on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from lab.db.types import UtcDateTime

BEIJING = dt.timezone(dt.timedelta(hours=8))


def test_utc_datetime_round_trips_as_aware_utc(db_url: str) -> None:
    table = sa.Table(
        "times", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("at", UtcDateTime())
    )
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(table),
                [
                    {"id": 1, "at": dt.datetime(2026, 3, 1, 9, 30, tzinfo=BEIJING)},
                    {"id": 2, "at": dt.datetime(2026, 3, 1, 2, 0)},  # naive: taken as UTC
                    {"id": 3, "at": None},
                ],
            )
            got = dict(conn.execute(sa.select(table.c.id, table.c.at)).all())  # type: ignore[arg-type]
            later = conn.execute(
                sa.select(table.c.id).where(table.c.at > dt.datetime(2026, 3, 1, 9, 0, tzinfo=BEIJING))
            ).scalars()
            last = conn.execute(sa.select(sa.func.max(table.c.at))).scalar_one()
        assert got == {
            1: dt.datetime(2026, 3, 1, 1, 30, tzinfo=dt.UTC),
            2: dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC),
            3: None,
        }
        assert all(v is None or v.utcoffset() == dt.timedelta(0) for v in got.values())
        assert list(later) == [1, 2]
        assert last == dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
    finally:
        engine.dispose()
