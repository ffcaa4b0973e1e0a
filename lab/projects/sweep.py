"""The periodic sweep: expire projects at their end date, dispose of ended/expired ones, re-sync the Hub.

:func:`sweep` is idempotent and safe to run from several processes at once (every step locks the
project row and re-checks its state). It runs from ``lab projects sweep`` and, every
``settings.projects.sweep_seconds``, from a background task of the API (:func:`run_periodically`,
started in the projects router's lifespan). Expiry is also enforced on every request, independently:
:func:`lab.projects.access.authorize` refuses a project past its ``ends_at`` even before the sweep.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

import anyio.to_thread
from sqlalchemy import select

from lab.db.base import utcnow
from lab.projects import hubsync, service
from lab.projects.disposal import DisposalReport, dispose
from lab.projects.models import ProjectRow, ProjectStatus
from lab.runtime import Runtime

log = logging.getLogger("lab.projects.sweep")


@dataclass
class SweepReport:
    expired: list[str] = field(default_factory=list)
    disposed: list[DisposalReport] = field(default_factory=list)
    synced: list[hubsync.HubSync] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def due_for_expiry(runtime: Runtime, now: dt.datetime) -> list[str]:
    with runtime.transaction() as s:
        rows = s.execute(
            select(ProjectRow.id, ProjectRow.ends_at).where(
                ProjectRow.status.in_([ProjectStatus.active.value, ProjectStatus.suspended.value]),
                ProjectRow.ends_at.is_not(None),
            )
        ).all()
    return [pid for pid, ends in rows if ends is not None and ends <= now]


def due_for_disposal(runtime: Runtime) -> list[str]:
    with runtime.transaction() as s:
        return list(
            s.execute(
                select(ProjectRow.id).where(
                    ProjectRow.status.in_([ProjectStatus.ended.value, ProjectStatus.expired.value]),
                    ProjectRow.disposed_at.is_(None),
                )
            ).scalars()
        )


def sweep(runtime: Runtime, now: dt.datetime | None = None) -> SweepReport:
    """Expire, dispose, re-sync; errors on one project are logged and do not stop the others."""
    now = now or utcnow()
    report = SweepReport()
    for pid in due_for_expiry(runtime, now):
        with runtime.transaction() as s:
            if service.expire(s, runtime.ledger(s), pid, now) is not None:
                report.expired.append(pid)
    for pid in due_for_disposal(runtime):
        try:
            done = dispose(runtime, pid)
        except Exception as exc:  # retried by the next sweep; one bad project must not block the rest
            log.exception("disposal of project %s failed", pid)
            report.errors.append(f"{pid}: disposal failed: {exc}")
            continue
        if done is not None:
            report.disposed.append(done)
    report.synced, errors = hubsync.sync_pending(runtime)
    report.errors.extend(errors)
    return report


async def run_periodically(runtime: Runtime, seconds: float, stop: asyncio.Event) -> None:
    """Run :func:`sweep` in a worker thread every ``seconds`` until ``stop`` is set."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
            return
        except TimeoutError:
            pass
        try:
            report = await anyio.to_thread.run_sync(sweep, runtime)
        except Exception:
            log.exception("project sweep failed")
            continue
        if report.expired or report.disposed or report.errors:
            log.info(
                "sweep: expired %s, disposed %s, hub synced %d, errors %s",
                report.expired,
                [d.project for d in report.disposed],
                len(report.synced),
                report.errors,
            )
