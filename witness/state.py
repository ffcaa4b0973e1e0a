"""The witness's SQLite state: the latest cosigned checkpoint per origin and evidence of conflicts.

Checking a submission against the stored size and storing the new checkpoint happen in one
``BEGIN IMMEDIATE`` transaction (and under a process lock), so concurrent submissions serialize
and a stale one can never roll the witness back (tlog-witness, "add-checkpoint").
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,          -- the checkpoint with the log's and this witness's signatures
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    received_at REAL NOT NULL,
    reason TEXT NOT NULL,
    held_note TEXT NOT NULL,      -- what this witness had cosigned
    submitted_note TEXT NOT NULL, -- the log-signed checkpoint that contradicts it
    request TEXT NOT NULL         -- the whole add-checkpoint body, proof included
);
"""


@dataclass(frozen=True)
class Held:
    """The latest checkpoint cosigned for an origin."""

    size: int
    root: bytes
    note: str


@dataclass(frozen=True)
class Evidence:
    """A log-signed checkpoint that contradicts what the witness had cosigned."""

    origin: str
    received_at: float
    reason: str
    held_note: str
    submitted_note: str
    request: str


class State:
    """One SQLite file; safe to use from many threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                db.close()

    @staticmethod
    def _held(db: sqlite3.Connection, origin: str) -> Held | None:
        row = db.execute("SELECT size, root, note FROM checkpoints WHERE origin = ?", (origin,)).fetchone()
        return Held(int(row[0]), bytes(row[1]), str(row[2])) if row else None

    def held(self, origin: str) -> Held | None:
        db = self._connect()
        try:
            return self._held(db, origin)
        finally:
            db.close()

    def update(
        self, origin: str, decide: Callable[[Held | None], tuple[T, Held | None, Evidence | None]]
    ) -> T:
        """Atomically: read what is held, let ``decide`` answer, store its new state and evidence."""
        with self._tx() as db:
            answer, new, evidence = decide(self._held(db, origin))
            if new is not None:
                db.execute(
                    "INSERT INTO checkpoints (origin, size, root, note, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
                    "note = excluded.note, updated_at = excluded.updated_at",
                    (origin, new.size, new.root, new.note, time.time()),
                )
            if evidence is not None:
                self._add_evidence(db, evidence)
        return answer

    def record(self, evidence: Evidence) -> None:
        """Keep evidence outside of an update (a rejected submission)."""
        with self._tx() as db:
            self._add_evidence(db, evidence)

    @staticmethod
    def _add_evidence(db: sqlite3.Connection, e: Evidence) -> None:
        db.execute(
            "INSERT INTO evidence (origin, received_at, reason, held_note, submitted_note, request) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (e.origin, e.received_at, e.reason, e.held_note, e.submitted_note, e.request),
        )

    def evidence(self, origin: str | None = None) -> list[Evidence]:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT origin, received_at, reason, held_note, submitted_note, request FROM evidence "
                "WHERE ? IS NULL OR origin = ? ORDER BY id",
                (origin, origin),
            ).fetchall()
        finally:
            db.close()
        return [Evidence(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
