"""The project lifecycle for callers holding a :class:`~lab.runtime.Runtime`: the API, the web pages, the CLI.

Each action runs its :mod:`lab.projects.service` function in one transaction, commits, and then does
what must follow the commit: sync the project's Hub group (:mod:`lab.projects.hubsync`) and, when a
project ends, dispose of its data (:mod:`lab.projects.disposal`). A Hub or storage failure after the
commit does not undo the transition: it is logged, the project stays dirty / undisposed, and the
periodic sweep finishes the job. Every action returns the project as its actor may now see it.

Usage (needs a runtime with its database and Hub, so not run here)::

    wf = ProjectWorkflow(runtime)
    p = wf.apply(alice, ApplicationIn(title=..., purpose=..., scenario=..., organization=...,
                 contact=..., datasets={"population": {"dp": {"epsilon": "1"}}}, days=90, commitment=...))
    wf.review(bureau1, p.id, ReviewIn(decision="approve", reason="ok"))
    wf.budget(alice, p.id).budgets[0].epsilon_remaining
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from lab.identity import Principal
from lab.projects import hubsync, members, review, service, views
from lab.projects.disposal import DisposalReport, dispose
from lab.projects.schemas import (
    ApplicationIn,
    BudgetReport,
    CheckIn,
    CheckOut,
    ProjectOut,
    ProjectSummary,
    ResubmitIn,
    ReviewIn,
)
from lab.projects.service import Outcome
from lab.projects.sweep import SweepReport, sweep
from lab.runtime import Runtime

log = logging.getLogger("lab.projects")


class ProjectWorkflow:
    """Project actions and reads over a runtime (one transaction each)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.cfg = runtime.settings.projects

    # -- plumbing ------------------------------------------------------------------------------
    def _act(self, fn: Callable[..., Outcome], *args: Any) -> ProjectOut:
        with self.rt.transaction() as s:
            out = fn(s, self.rt.ledger(s), *args)
        self.follow(out)
        with self.rt.transaction() as s:
            project = s.get(type(out.project), out.project.id)
            assert project is not None
            return views.project_view(s, project, self.cfg)

    def follow(self, out: Outcome) -> None:
        """After the commit: sync the Hub group, dispose of an ended project (the sweep retries failures)."""
        pid = out.project.id
        if out.hub:
            try:
                hubsync.sync_project(self.rt, pid)
            except Exception:
                log.exception("hub sync of project %s failed after commit; the sweep will reconcile it", pid)
        if out.dispose:
            try:
                dispose(self.rt, pid, actor=out.event.actor if out.event else service.SWEEP_ACTOR)
            except Exception:
                log.exception("disposal of project %s failed; the sweep will retry it", pid)

    # -- actions -------------------------------------------------------------------------------
    def apply(self, principal: Principal, application: ApplicationIn) -> ProjectOut:
        """File an application (operators); the applicant is always a member."""
        return self._act(service.apply, principal, application, self.cfg)

    def review(self, principal: Principal, project_id: str, decision: ReviewIn) -> ProjectOut:
        """Approve (maybe reduced), reject or request changes (bureau, never one's own project)."""
        return self._act(review.review, principal, project_id, decision, self.cfg)

    def resubmit(self, principal: Principal, project_id: str, changes: ResubmitIn) -> ProjectOut:
        """Answer a request for changes; the review round starts over."""
        return self._act(service.resubmit, principal, project_id, changes, self.cfg)

    def suspend(self, principal: Principal, project_id: str, reason: str = "") -> ProjectOut:
        return self._act(service.suspend, principal, project_id, reason)

    def resume(self, principal: Principal, project_id: str, reason: str = "") -> ProjectOut:
        return self._act(service.resume, principal, project_id, reason)

    def end(self, principal: Principal, project_id: str, reason: str = "") -> ProjectOut:
        """End the project: access revoked at once, working data disposed of."""
        return self._act(service.end, principal, project_id, reason)

    def add_members(
        self, principal: Principal, project_id: str, users: list[str], reason: str = ""
    ) -> ProjectOut:
        return self._act(members.add_members, principal, project_id, users, reason)

    def remove_members(
        self, principal: Principal, project_id: str, users: list[str], reason: str = ""
    ) -> ProjectOut:
        """Remove members; their Hub access (and, without another project, their server) ends at once."""
        return self._act(members.remove_members, principal, project_id, users, reason)

    # -- reads ---------------------------------------------------------------------------------
    def _read(self, fn: Callable[[Session], Any]) -> Any:
        with self.rt.transaction() as s:
            return fn(s)

    def get(self, principal: Principal, project_id: str) -> ProjectOut:
        out: ProjectOut = self._read(
            lambda s: views.project_view(s, views.visible(s, principal, project_id), self.cfg)
        )
        return out

    def budget(self, principal: Principal, project_id: str) -> BudgetReport:
        out: BudgetReport = self._read(
            lambda s: views.budget_report(s, views.visible(s, principal, project_id))
        )
        return out

    def check(self, principal: Principal, project_id: str, question: CheckIn) -> CheckOut:
        """The authorize answer a channel would get (raises its refusal)."""
        out: CheckOut = self._read(lambda s: views.check(s, principal, project_id, question))
        return out

    # -- maintenance ---------------------------------------------------------------------------
    def sweep(self) -> SweepReport:
        return sweep(self.rt)

    def sync_hub(self, full: bool = True) -> tuple[list[hubsync.HubSync], list[str]]:
        return hubsync.sync_all(self.rt) if full else hubsync.sync_pending(self.rt)

    def dispose(self, project_id: str) -> DisposalReport | None:
        return dispose(self.rt, project_id)

    # defined last: inside the class body the name ``list`` means this method
    def list(self, principal: Principal, status: str | None = None, limit: int = 200) -> list[ProjectSummary]:
        """Projects the principal may see (all for overseers), newest first."""
        out: list[ProjectSummary] = self._read(lambda s: views.list_projects(s, principal, status, limit))
        return out
