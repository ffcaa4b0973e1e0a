"""Database access: the declarative base, engines and sessions, migrations.

The same models run on SQLite (embedded default) and PostgreSQL (production).
SQLite transactions begin ``IMMEDIATE`` so that a read-then-write (budget checks,
ledger appends) holds the write lock from its first statement.
"""

from lab.db.base import Base, make_engine, make_sessionmaker, utcnow

__all__ = ["Base", "make_engine", "make_sessionmaker", "utcnow"]
