"""Migrations: a populated older database upgrades cleanly; the API refuses an unmigrated one."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from lab.db.migrate import current_revisions, head_revisions, upgrade
from lab.errors import Unavailable
from lab.runtime import Runtime
from lab.settings import Settings

pytestmark = pytest.mark.integration


def test_populated_first_revision_upgrades_to_head(settings: Settings) -> None:
    upgrade(settings.db_url, "0001_catalog_ledger")
    rt = Runtime(settings)
    try:
        with rt.transaction() as s:
            ledger = rt.ledger(s)
            for i in range(5):
                ledger.append("catalog.dataset_version", {"dataset": f"d{i}", "version": 1}, actor="old")
            ledger.head()
        upgrade(settings.db_url)
        assert current_revisions(rt.engine) == head_revisions()
        with rt.transaction() as s:
            report = rt.ledger(s).verify()
            assert report.ok and report.size == 5
            rt.ledger(s).append("derived.record", {"after": "upgrade"}, actor="new")
        with rt.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one() == 6
    finally:
        rt.close()


def test_api_refuses_to_start_on_an_unmigrated_database(settings: Settings) -> None:
    from lab.api.main import create_app

    with pytest.raises(Unavailable, match="lab db upgrade"):
        create_app(settings)
