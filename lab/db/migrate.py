"""Alembic migrations, driven programmatically (``lab db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from lab.errors import Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    """The newest migration revision(s)."""
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    """The revision(s) the database is at; empty if unmigrated."""
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def require_head(engine: Engine) -> None:
    """Refuse to run against a database that is not at the newest revision(s)."""
    current, heads = current_revisions(engine), head_revisions()
    if current != heads:
        raise Unavailable(
            f"database is at revision {sorted(current) or 'none'}, code expects {sorted(heads)}: "
            "run `lab db upgrade`"
        )
