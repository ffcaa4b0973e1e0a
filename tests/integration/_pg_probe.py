"""Run by tests/integration/test_pg_by_default.py in a child pytest: one test per database."""

from __future__ import annotations


def test_database(db_url: str) -> None:
    assert db_url
