"""Request audit: a batching writer that never slows or fails a request, and the bureau's anomaly queries.

The API middleware hands each finished request to :meth:`AuditWriter.submit` (a non-blocking queue
put); one daemon thread writes queued entries in batches, each batch in one transaction. A failing
write is logged with ``lab.audit`` and counted in :attr:`AuditWriter.failed`; the request it
describes has long been answered. Readers call :meth:`AuditWriter.flush` first when they need
every request so far (the audit endpoints do).

Usage (needs a runtime's database, so not run here)::

    writer = AuditWriter(runtime.sessions); writer.submit(AuditEntry(...)); writer.flush()
    with runtime.transaction() as s: anomalies(s, hours=24).refused
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from pydantic import BaseModel
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from lab.audit.models import AuditRequestRow
from lab.budgets.risk import DatasetAlert, account_alerts
from lab.db.base import utcnow
from lab.projects.models import BudgetRow, ProjectRow, ProjectStatus

log = logging.getLogger("lab.audit")


@dataclass(frozen=True)
class AuditEntry:
    """One finished request: never a token, a query string or a payload."""

    at: dt.datetime
    principal: str | None
    project_id: str | None
    method: str
    route: str
    status: int
    outcome: str
    latency_ms: float


class AuditWriter:
    """Queue of audit entries drained by one background thread in batches."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        batch: int = 500,
        capacity: int = 100_000,
        linger: float = 0.05,
    ) -> None:
        self._sessions = sessions
        self._batch = batch
        self._linger = linger  # after the first entry, wait this long so that writes come in batches
        self._queue: queue.Queue[AuditEntry | None] = queue.Queue(capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        self.dropped = 0

    def submit(self, entry: AuditEntry) -> None:
        """Queue ``entry``; never blocks, never raises (a full queue drops and logs)."""
        try:
            self._start()
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("audit queue full: %d requests not recorded so far", self.dropped)
        except Exception:  # auditing must never fail the request
            log.exception("could not queue an audit entry")

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lab-audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[AuditEntry] = []
            taken = 1
            if item is None:
                stop = True
            else:
                batch.append(item)
                time.sleep(self._linger)
            while not stop and len(batch) < self._batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if nxt is None:
                    stop = True
                else:
                    batch.append(nxt)
            try:
                if batch:
                    self.written += self._write(batch)
            except Exception:
                self.failed += len(batch)
                log.exception("audit write of %d requests failed", len(batch))
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    def _write(self, batch: list[AuditEntry]) -> int:
        """Insert ``batch`` in one transaction; if the database refuses it, entry by entry, so that
        one entry it cannot store does not lose the others. Returns how many were written."""
        try:
            with self._sessions() as s, s.begin():
                s.execute(insert(AuditRequestRow), [asdict(e) for e in batch])
            return len(batch)
        except Exception:
            if len(batch) == 1:
                raise
        written = 0
        for entry in batch:
            try:
                written += self._write([entry])
            except Exception:
                self.failed += 1
                log.exception("audit write of one request failed")
        return written

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued entry is written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.error("audit queue full at shutdown; %d entries lost", self._queue.qsize())
            return
        self._thread.join(timeout)
        self._thread = None


# -- reading -------------------------------------------------------------------------------------
class AuditRequestOut(BaseModel):
    at: dt.datetime
    principal: str | None
    project_id: str | None
    method: str
    route: str
    status: int
    outcome: str
    latency_ms: float


class RefusedRequests(BaseModel):
    """4xx answers to one principal in the window."""

    principal: str | None
    refused: int
    by_status: dict[str, int]
    last_at: dt.datetime


class BudgetAlert(BaseModel):
    project: str
    project_status: str
    dataset: str
    epsilon_total: str
    epsilon_spent: str
    fraction_spent: str


class QuotaHits(BaseModel):
    principal: str | None
    project_id: str | None
    hits: int
    last_at: dt.datetime


class Anomalies(BaseModel):
    since: dt.datetime
    until: dt.datetime
    refused: list[RefusedRequests]
    budgets: list[BudgetAlert]
    quota_hits: list[QuotaHits]
    datasets: list[DatasetAlert] = []  # dataset accounts past 50/80/100 % of their period allowance


def recent_requests(
    session: Session,
    *,
    principal: str | None = None,
    project: str | None = None,
    min_status: int | None = None,
    limit: int = 100,
) -> list[AuditRequestOut]:
    """The latest requests, newest first, optionally by principal, project or status."""
    q = select(AuditRequestRow).order_by(AuditRequestRow.id.desc()).limit(limit)
    if principal:
        q = q.where(AuditRequestRow.principal == principal)
    if project:
        q = q.where(AuditRequestRow.project_id == project)
    if min_status:
        q = q.where(AuditRequestRow.status >= min_status)
    return [
        AuditRequestOut(
            at=r.at,
            principal=r.principal,
            project_id=r.project_id,
            method=r.method,
            route=r.route,
            status=r.status,
            outcome=r.outcome,
            latency_ms=r.latency_ms,
        )
        for r in session.execute(q).scalars()
    ]


def anomalies(
    session: Session,
    *,
    hours: float = 24.0,
    now: dt.datetime | None = None,
    min_refused: int = 1,
    budget_fraction: Decimal = Decimal("0.8"),
) -> Anomalies:
    """Refused requests and quota hits per principal in the last ``hours``; budgets nearly spent;
    dataset accounts past 50/80/100 % of their period allowance."""
    until = now or utcnow()
    since = until - dt.timedelta(hours=hours)
    refused: dict[str | None, RefusedRequests] = {}
    rows = session.execute(
        select(
            AuditRequestRow.principal,
            AuditRequestRow.status,
            func.count(AuditRequestRow.id),
            func.max(AuditRequestRow.at),
        )
        .where(AuditRequestRow.at >= since, AuditRequestRow.status >= 400, AuditRequestRow.status < 500)
        .group_by(AuditRequestRow.principal, AuditRequestRow.status)
    ).all()
    for who, status, count, last in rows:
        item = refused.setdefault(who, RefusedRequests(principal=who, refused=0, by_status={}, last_at=last))
        item.refused += count
        item.by_status[str(status)] = count
        item.last_at = max(item.last_at, last)
    hits = session.execute(
        select(
            AuditRequestRow.principal,
            AuditRequestRow.project_id,
            func.count(AuditRequestRow.id),
            func.max(AuditRequestRow.at),
        )
        .where(AuditRequestRow.at >= since, AuditRequestRow.status == 429)
        .group_by(AuditRequestRow.principal, AuditRequestRow.project_id)
    ).all()
    return Anomalies(
        since=since,
        until=until,
        refused=sorted(
            (r for r in refused.values() if r.refused >= min_refused),
            key=lambda r: (-r.refused, r.principal or ""),
        ),
        budgets=near_exhaustion(session, budget_fraction),
        quota_hits=sorted(
            (QuotaHits(principal=p, project_id=pid, hits=n, last_at=last) for p, pid, n, last in hits),
            key=lambda h: -h.hits,
        ),
        datasets=account_alerts(session),
    )


def near_exhaustion(session: Session, fraction: Decimal = Decimal("0.8")) -> list[BudgetAlert]:
    """Budgets of active or suspended projects with at least ``fraction`` of ε spent (exact arithmetic)."""
    rows = session.execute(
        select(BudgetRow, ProjectRow.status)
        .join(ProjectRow, ProjectRow.id == BudgetRow.project_id)
        .where(ProjectRow.status.in_([ProjectStatus.active.value, ProjectStatus.suspended.value]))
        .order_by(BudgetRow.project_id, BudgetRow.dataset_id)
    ).all()
    out = []
    for b, status in rows:
        total = Decimal(b.epsilon_total)
        spent = Decimal(b.epsilon_spent) / total if total else Decimal(0)
        if spent >= fraction:
            out.append(
                BudgetAlert(
                    project=b.project_id,
                    project_status=status,
                    dataset=b.dataset_id,
                    epsilon_total=b.epsilon_total,
                    epsilon_spent=b.epsilon_spent,
                    fraction_spent=str(spent.quantize(Decimal("0.0001"), ROUND_HALF_EVEN)),
                )
            )
    return out
