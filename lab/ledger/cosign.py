"""Gathering witness cosignatures in the background (C2SP tlog-witness, client side).

After each transaction that appended ledger entries (``lab.ledger.log.APPEND_HOOKS``) and at least
every ``settings.ledger.cosign_seconds``, :class:`Cosigner` signs the current checkpoint and
submits it to every configured witness with a consistency proof from the size that witness last
cosigned. It runs on its own thread and its own sessions, and never inside an append's
transaction: a witness that is slow or down delays nothing but its own cosignature, and is
caught up with one consistency proof when it answers again.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lab.db.base import utcnow
from lab.ledger import checkpoints
from lab.ledger.log import APPEND_HOOKS, Ledger
from lab.ledger.models import WitnessStateRow
from lab.settings import LedgerSettings, WitnessConfig
from witness.note import NoteError, Verifier, open_note

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessStatus:
    """What the ledger page shows of one witness."""

    name: str
    url: str
    vkey: str
    size: int
    lag: int
    last_ok_at: dt.datetime | None
    last_error: str | None


def witness_status(session: Session, settings: LedgerSettings, log_size: int) -> list[WitnessStatus]:
    """Each configured witness: the last size it cosigned and how far behind the log it is."""
    rows = {r.name: r for r in session.execute(select(WitnessStateRow)).scalars()}
    out = []
    for w in settings.witnesses:
        name = Verifier.from_vkey(w.vkey).name
        r = rows.get(name)
        size = r.size if r else 0
        out.append(
            WitnessStatus(
                name,
                w.url,
                w.vkey,
                size,
                log_size - size,
                r.last_ok_at if r else None,
                r.last_error if r else None,
            )
        )
    return out


def quorum_met(statuses: list[WitnessStatus], quorum: int, log_size: int) -> bool:
    """Whether at least ``quorum`` witnesses have cosigned the current size."""
    return sum(1 for s in statuses if s.size == log_size) >= quorum


class Cosigner:
    """Submits the lab's checkpoints to its witnesses; one instance per API process."""

    def __init__(self, sessions: sessionmaker[Session], at_rest_key: bytes, settings: LedgerSettings) -> None:
        self.sessions = sessions
        self.key = at_rest_key
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=settings.witness_timeout_seconds)

    # -- lifecycle ----------------------------------------------------------------------------
    def poke(self) -> None:
        """Ask for a round soon (called after each append batch commits)."""
        self._wake.set()

    def start(self) -> Cosigner:
        APPEND_HOOKS.append(self.poke)
        self._thread = threading.Thread(target=self._loop, name="ledger-cosigner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.poke in APPEND_HOOKS:
            APPEND_HOOKS.remove(self.poke)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.cosign_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except Exception:  # a round must never kill the thread; the page shows the lag
                log.exception("cosigning round failed")

    # -- one round ----------------------------------------------------------------------------
    def run_once(self) -> dict[str, str]:
        """Submit the current checkpoint to every witness (in parallel); returns name -> outcome."""
        ws = self.settings.witnesses
        if not ws:
            return {}
        with self.sessions() as session, session.begin():  # sign once, before the parallel submissions
            checkpoints.current(Ledger(session, self.key), self.settings.origin)
        with ThreadPoolExecutor(len(ws)) as pool:
            outcomes = list(pool.map(self._submit, ws))
        return {Verifier.from_vkey(w.vkey).name: o for w, o in zip(ws, outcomes, strict=True)}

    def _prepare(self, w: WitnessConfig, name: str, retry_from: int | None) -> tuple[Any, str] | None:
        with self.sessions() as session, session.begin():
            ledger = Ledger(session, self.key)
            cp = checkpoints.current(ledger, self.settings.origin)
            row = session.get(WitnessStateRow, name)
            if row is None:
                row = WitnessStateRow(name=name, vkey=w.vkey, url=w.url, size=0)
                session.add(row)
            row.vkey, row.url, row.last_attempt_at = w.vkey, w.url, utcnow()
            old = row.size if retry_from is None else retry_from
            if old == cp.size and retry_from is None and any(name in c for c in cp.cosignatures):
                return None  # already cosigned this size
            if old > cp.size:
                row.last_error = f"witness holds size {old}, larger than the log's {cp.size}"
                return None
            proof = ledger.consistency_path(old, cp.size) if 0 < old < cp.size else []
            lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
            return cp, "".join(line + "\n" for line in lines) + "\n" + cp.note

    def _submit(self, w: WitnessConfig, retry_from: int | None = None) -> str:
        verifier = Verifier.from_vkey(w.vkey)
        prepared = self._prepare(w, verifier.name, retry_from)
        if prepared is None:
            return "up to date"
        cp, body = prepared
        try:
            r = self._http.post(f"{w.url.rstrip('/')}/add-checkpoint", content=body.encode())
        except httpx.HTTPError as exc:
            return self._record(verifier.name, None, f"unreachable: {exc}")
        if (
            r.status_code == 409
            and retry_from is None
            and r.headers.get("content-type", "").startswith("text/x.tlog.size")
        ):
            try:
                held = int(r.text.strip())
            except ValueError:
                return self._record(verifier.name, None, "409 without a size")
            return self._submit(w, held)
        if r.status_code != 200:
            return self._record(verifier.name, None, f"HTTP {r.status_code}: {r.text.strip()[:300]}")
        try:
            _, good = open_note(cp.text + "\n" + r.text, [verifier])
        except NoteError as exc:
            return self._record(verifier.name, None, f"bad cosignature: {exc}")
        line = next(x + "\n" for x in r.text.splitlines() if x.startswith(f"\u2014 {verifier.name} "))
        return self._record(verifier.name, (cp.size, line, good[verifier]), None)

    def _record(self, name: str, cosig: tuple[int, str, int] | None, error: str | None) -> str:
        with self.sessions() as session, session.begin():
            row = session.get(WitnessStateRow, name)
            if row is None:  # pragma: no cover - _prepare created it
                return error or "ok"
            row.last_error = error
            if cosig is not None:
                size, line, ts = cosig
                checkpoints.add_cosignature(session, size, name, line, ts)
                row.size, row.last_ok_at = size, utcnow()
        if error:
            log.warning("witness %s: %s", name, error)
        return error or f"cosigned size {cosig[0] if cosig else '?'}"
