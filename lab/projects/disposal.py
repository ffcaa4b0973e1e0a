"""Disposal of an ended or expired project's working data (article 19), with a disposal record.

What goes: the project's PSI cohorts (rows and their objects), its server-side models and DP
statistics tables (``ModelRow`` / ``StatTableRow`` with its ``project_id``), whatever the channels'
disposers delete (HE contexts and keys, PSI state, ...), and every object under
``projects/<id>/`` in the work bucket. What stays: the project's events, grant, budgets and derived
records — they are the record of what was done, not data.

One transaction per project: lock the project, run the disposers, delete rows and objects, set
``disposed_at`` and write a ``disposed`` event with its ``project.disposal`` ledger entry listing what
was deleted. If anything fails the transaction rolls back and the sweep tries again (objects already
deleted are simply not found again); a disposed project is never disposed twice.

A channel with project data writes a disposer and adds it to :func:`lab.channels.disposers`::

    def dispose_he(ctx: DisposalContext) -> dict[str, object]:
        rows = delete(HeContextRow).where(HeContextRow.project_id == ctx.project_id)
        n = ctx.session.execute(rows).rowcount
        return {"contexts": n}  # JSON with strings and integers only (it goes to the ledger)

The list is plain imports, so every process (API or CLI) runs the same disposers and a misspelt
one is an ImportError.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.artifacts.cohorts import work_prefix
from lab.artifacts.models import CohortRow, ModelRow, StatTableRow
from lab.db.base import utcnow
from lab.projects.access import load_project
from lab.projects.models import ProjectStatus
from lab.projects.service import SWEEP_ACTOR, record
from lab.runtime import Runtime
from lab.settings import Settings
from lab.storage import ObjectStore

log = logging.getLogger("lab.projects.disposal")

#: How many object keys the ledger entry lists (all of them go to the event row; the ledger gets a digest).
LEDGER_KEYS = 1000


@dataclass(frozen=True)
class DisposalContext:
    """What a disposer gets: the open transaction, the object store, the settings and the project."""

    session: Session
    store: ObjectStore
    settings: Settings
    project_id: str

    @property
    def work_prefix(self) -> str:
        return work_prefix(self.project_id)


Disposer = Callable[[DisposalContext], dict[str, Any] | None]


def channel_disposers() -> dict[str, Disposer]:
    """The channels' disposers by name, in the order they run (:func:`lab.channels.disposers`).

    Imported when called, not at module load: the channel modules import :class:`DisposalContext`
    from here.
    """
    from lab.channels import disposers

    return disposers()


@dataclass
class DisposalReport:
    """What a disposal deleted."""

    project: str
    cohorts: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    stat_tables: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)  # "bucket/key"
    disposers: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger_index: int = -1

    def counts(self) -> dict[str, int]:
        return {
            "cohorts": len(self.cohorts),
            "models": len(self.models),
            "stat_tables": len(self.stat_tables),
            "objects": len(self.objects),
        }


def _delete_rows(session: Session, model: type[Any], project_id: str) -> list[str]:
    rows = list(session.execute(select(model).where(model.project_id == project_id)).scalars())
    for row in rows:
        session.delete(row)
    return sorted(row.id for row in rows)


def dispose(runtime: Runtime, project_id: str, actor: str = SWEEP_ACTOR) -> DisposalReport | None:
    """Dispose of an ended or expired project's data; None if it is not due (or already disposed)."""
    store = runtime.store
    with runtime.transaction() as s:
        project = load_project(s, project_id, lock=True)
        if project.disposed_at is not None or project.status not in (
            ProjectStatus.ended,
            ProjectStatus.expired,
        ):
            return None
        report = DisposalReport(project_id)
        ctx = DisposalContext(s, store, runtime.settings, project_id)
        for name, fn in channel_disposers().items():
            report.disposers[name] = fn(ctx) or {}
        cohorts = list(s.execute(select(CohortRow).where(CohortRow.project_id == project_id)).scalars())
        report.cohorts = _delete_rows(s, CohortRow, project_id)
        report.models = _delete_rows(s, ModelRow, project_id)
        report.stat_tables = _delete_rows(s, StatTableRow, project_id)
        s.flush()
        work = store.cfg.bucket_work
        deleted = {f"{work}/{k}" for k in store.delete_prefix(work, ctx.work_prefix + "/")}
        for c in cohorts:  # a cohort stored outside the project's prefix is deleted too
            if f"{c.bucket}/{c.object_key}" not in deleted:
                deleted.update(f"{c.bucket}/{k}" for k in store.delete_prefix(c.bucket, c.object_key))
        report.objects = sorted(deleted)
        digest = hashlib.sha256("\n".join(report.objects).encode()).hexdigest()
        details: dict[str, Any] = {
            "counts": report.counts(),
            "cohorts": report.cohorts,
            "models": report.models,
            "stat_tables": report.stat_tables,
            "objects": report.objects[:LEDGER_KEYS],
            "objects_sha256": digest,
            "disposers": report.disposers,
        }
        project.disposed_at = utcnow()
        event = record(
            s,
            runtime.ledger(s),
            project,
            actor,
            "disposed",
            project.status,
            project.status,
            "",
            details,
            kind="project.disposal",
        )
        if len(report.objects) > LEDGER_KEYS:
            event.details = {**details, "objects": report.objects}
        report.ledger_index = event.ledger_index
    log.info("disposed of project %s: %s", project_id, report.counts())
    return report
