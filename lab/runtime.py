"""The process-wide runtime: settings, database, object store and Hub client, built once.

The API, the CLI and the tests all build a :class:`Runtime`; nothing else reaches for globals.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from lab.db import make_engine, make_sessionmaker
from lab.identity.hub import HubClient
from lab.ledger import Ledger
from lab.settings import Settings
from lab.storage import ObjectStore


@dataclass
class Runtime:
    """Shared, long-lived resources of one lab process."""

    settings: Settings
    engine: Engine = field(init=False)
    sessions: sessionmaker[Session] = field(init=False)
    _store: ObjectStore | None = field(default=None, init=False)
    _hub: HubClient | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.settings.db_url)
        self.sessions = make_sessionmaker(self.engine)

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = ObjectStore(self.settings.s3)
        return self._store

    @property
    def hub(self) -> HubClient:
        if self._hub is None:
            self._hub = HubClient(self.settings.hub)
        return self._hub

    @property
    def cache_dir(self) -> Path:
        path = self.settings.data_dir / "cache"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session: on SQLite a deferred transaction (WAL readers never wait for the
        writer's ``BEGIN IMMEDIATE``); rolled back at the end, its objects detached but still loaded."""
        with self.sessions() as session:
            session.connection(execution_options={"lab_read_only": True})
            try:
                yield session
            finally:
                session.expunge_all()  # what was read stays readable after the session ends
                session.rollback()

    def ledger(self, session: Session) -> Ledger:
        return Ledger(session, self.settings.encryption_key)

    def close(self) -> None:
        if self._hub:
            self._hub.close()
        self.engine.dispose()
