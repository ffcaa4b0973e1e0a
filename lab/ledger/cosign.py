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

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lab.db.base import utcnow
from lab.ledger import checkpoints
from lab.ledger.log import APPEND_HOOKS, Ledger
from lab.ledger.models import WitnessStateRow
from lab.ledger.subtrees import SubtreeCache, leaf_range
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


@dataclass(frozen=True)
class _Plan:
    """What a round sends one witness: the checkpoint, the request body (None when the witness
    already holds more than the log, so there is nothing to send) and the old size it is from."""

    cp: checkpoints.SignedCheckpoint
    body: str | None
    old: int


def quorum_met(statuses: list[WitnessStatus], quorum: int, log_size: int) -> bool:
    """Whether at least ``quorum`` witnesses have cosigned the current size."""
    return sum(1 for s in statuses if s.size == log_size) >= quorum


def grace_seconds(settings: LedgerSettings) -> float:
    """How long newest entries may wait for their cosignatures before the bureau is warned: three
    rounds' worth (the interval plus a witness timeout each)."""
    return 3 * (settings.cosign_seconds + settings.witness_timeout_seconds)


def quorum_pending(
    statuses: list[WitnessStatus], quorum: int, log_size: int, grace: float, now: dt.datetime
) -> bool:
    """The current size lacks the quorum only because it is new: at least ``quorum`` witnesses are
    current or cosigned within ``grace`` seconds with no error since (a busy log, not an outage)."""
    fresh = sum(
        1
        for s in statuses
        if s.size == log_size
        or (
            s.last_error is None
            and s.last_ok_at is not None
            and (now - s.last_ok_at).total_seconds() <= grace
        )
    )
    return not quorum_met(statuses, quorum, log_size) and fresh >= quorum


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
        self._subtrees = SubtreeCache(lambda lo, hi: [])  # perfect subtree hashes, kept across rounds

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
        """Submit the current checkpoint to every witness; returns witness name -> outcome.

        One transaction prepares every request (sign the checkpoint, one consistency proof per
        distinct old size), the HTTP requests run in parallel outside any transaction, and one
        transaction records the outcomes.
        """
        ws = self.settings.witnesses
        if not ws:
            return {}
        names = [Verifier.from_vkey(w.vkey).name for w in ws]
        plans = self._prepare(names, {})
        with ThreadPoolExecutor(len(ws)) as pool:
            answers = list(pool.map(self._post, ws, [p.body if p else None for p in plans]))
        retry = {n: a for n, a in zip(names, answers, strict=True) if isinstance(a, int)}
        if retry:  # 409: the witness holds another size; one more try from that size
            plans2 = self._prepare(names, retry)
            for i, (w, n) in enumerate(zip(ws, names, strict=True)):
                again = plans2[i]
                if n in retry and again is not None:
                    plans[i] = again
                    answers[i] = self._post(w, again.body)
        outcomes: dict[str, tuple[tuple[int, str, int] | None, str | None]] = {}
        for w, n, plan, answer in zip(ws, names, plans, answers, strict=True):
            outcomes[n] = self._judge(Verifier.from_vkey(w.vkey), plan, answer)
        return self._record(ws, names, outcomes)

    def _prepare(self, names: list[str], retry: dict[str, int]) -> list[_Plan | None]:
        """Per witness: the request to send (None: nothing to do, or not retried)."""
        out: list[_Plan | None] = []
        with self.sessions() as session, session.begin():
            ledger = Ledger(session, self.key)
            cp = checkpoints.current(ledger, self.settings.origin)
            rows = {r.name: r for r in session.execute(select(WitnessStateRow)).scalars()}
            proofs: dict[int, list[bytes]] = {}
            for name in names:
                if retry and name not in retry:
                    out.append(None)
                    continue
                row = rows.get(name)
                old = retry.get(name, row.size if row else 0)
                if old > cp.size:  # the witness cosigned more than the log now holds
                    out.append(_Plan(cp, None, old))
                    continue
                done = old == cp.size and any(line.startswith(f"\u2014 {name} ") for line in cp.cosignatures)
                if done and name not in retry:
                    out.append(None)
                    continue
                if 0 < old < cp.size and old not in proofs:
                    self._subtrees.read = lambda lo, hi: leaf_range(session, lo, hi)
                    proofs[old] = self._subtrees.consistency_proof(old, cp.size)
                lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proofs.get(old, [])]
                out.append(_Plan(cp, "".join(line + "\n" for line in lines) + "\n" + cp.note, old))
        return out

    def _post(self, w: WitnessConfig, body: str | None) -> httpx.Response | int | str | None:
        """The witness's answer; an int is the size a 409 reported; a str an error."""
        if body is None:
            return None
        try:
            r = self._http.post(f"{w.url.rstrip('/')}/add-checkpoint", content=body.encode())
        except httpx.HTTPError as exc:
            return f"unreachable: {exc}"
        if r.status_code == 409 and r.headers.get("content-type", "").startswith("text/x.tlog.size"):
            try:
                return int(r.text.strip())
            except ValueError:
                return "409 without a size"
        return r

    @staticmethod
    def _judge(
        v: Verifier, plan: _Plan | None, answer: httpx.Response | int | str | None
    ) -> tuple[tuple[int, str, int] | None, str | None]:
        if plan is None:
            return None, None
        cp = plan.cp
        held = answer if isinstance(answer, int) else (plan.old if plan.body is None else None)
        if held is not None:  # a 409 even after the retry, or the witness is ahead of the log
            if held > cp.size:
                return None, (
                    f"witness holds a checkpoint of size {held} but the log has only {cp.size} entries: "
                    "entries were removed from the log"
                )
            return None, f"witness holds size {held}, not consistent with the lab's view"
        if answer is None or isinstance(answer, int):
            return None, None
        if isinstance(answer, str):
            return None, answer
        if answer.status_code != 200:
            return None, f"HTTP {answer.status_code}: {answer.text.strip()[:300]}"
        try:
            _, good = open_note(cp.text + "\n" + answer.text, [v])
        except NoteError as exc:
            return None, f"bad cosignature: {exc}"
        line = next(x + "\n" for x in answer.text.splitlines() if x.startswith(f"\u2014 {v.name} "))
        return (cp.size, line, good[v]), None

    def _record(
        self,
        ws: list[WitnessConfig],
        names: list[str],
        outcomes: dict[str, tuple[tuple[int, str, int] | None, str | None]],
    ) -> dict[str, str]:
        if all(c is None and e is None for c, e in outcomes.values()):
            return dict.fromkeys(names, "up to date")  # an idle round writes nothing
        result: dict[str, str] = {}
        with self.sessions() as session, session.begin():
            for w, name in zip(ws, names, strict=True):
                cosig, error = outcomes[name]
                row = session.get(WitnessStateRow, name)
                if row is None:
                    row = WitnessStateRow(name=name, vkey=w.vkey, url=w.url, size=0)
                    session.add(row)
                row.vkey, row.url, row.last_attempt_at = w.vkey, w.url, utcnow()
                if cosig is None and error is None:
                    result[name] = "up to date"
                    continue
                row.last_error = error
                if cosig is not None:
                    size, line, ts = cosig
                    checkpoints.add_cosignature(session, size, name, line, ts)
                    row.size, row.last_ok_at = size, utcnow()
                    result[name] = f"cosigned size {size}"
                else:
                    log.warning("witness %s: %s", name, error)
                    result[name] = str(error)
        return result
