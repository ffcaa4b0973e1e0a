"""Review of applications: approve (maybe reduced), reject, request changes; k distinct approvals.

A bureau reviewer who applied for or belongs to the project may not review it (:class:`SelfReview`).
Approvals are counted per *review round*: since the last apply/resubmit, or the last change made to
the application under review (a member added or removed voids the approvals given so far, recorded
as ``voids_approvals`` in that event's ledger entry). Each approval also records the digest of the
application it saw and counts only while the application is unchanged, whatever path changed it.
A project that touches a non-open dataset needs ``settings.projects.approvals_non_open`` distinct
approvals (default 2), others ``approvals_open`` (default 1). Each approval may reduce the request
(``grants``: dataset/channel -> null drops it, fields replace; ``days``: a shorter term), never
enlarge it; the granted limits are the intersection of every approval's
(:func:`lab.projects.grants.meet`), the term the shortest. The last approval activates the project:
``GrantRow`` + ``BudgetRow`` per dataset (exact decimal strings), ``starts_at``/``ends_at``, a Hub
group sync after the commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.catalog.policy import Policy
from lab.db.base import utcnow
from lab.errors import BadRequest, Conflict
from lab.identity import Principal, Role
from lab.ledger import Ledger, canonical_json
from lab.projects import grants as G
from lab.projects.access import load_project
from lab.projects.errors import InvalidProject, SelfReview
from lab.projects.models import BudgetRow, GrantRow, ProjectEventRow, ProjectRow, ProjectStatus
from lab.projects.schemas import ReviewIn
from lab.projects.service import Outcome, current_members, expect, insiders, move, policies_of, record
from lab.settings import ProjectsSettings

S = ProjectStatus


def application_digest(session: Session, project: ProjectRow) -> str:
    """SHA-256 of what an approval approves: the members, the requested grants and the term."""
    body = {
        "members": current_members(session, project.id),
        "requested": project.requested,
        "days": project.requested_days,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _events(session: Session, project_id: str) -> list[ProjectEventRow]:
    return list(
        session.execute(
            select(ProjectEventRow)
            .where(ProjectEventRow.project_id == project_id)
            .order_by(ProjectEventRow.id)
        ).scalars()
    )


def _starts_round(e: ProjectEventRow) -> bool:
    return e.action in ("apply", "resubmit") or "voids_approvals" in (e.details or {})


def review_round(session: Session, project_id: str) -> list[ProjectEventRow]:
    """The approvals given since the application last changed ((re)submitted, or amended under review).

    An approval that recorded the application it saw (``details.application``) counts only while the
    application is still the same, whatever path changed it.
    """
    events = _events(session, project_id)
    starts = [i for i, e in enumerate(events) if _starts_round(e)]
    after = events[starts[-1] + 1 :] if starts else events
    approvals = [e for e in after if e.action == "approve"]
    project = session.get(ProjectRow, project_id)
    if project is None or not approvals:
        return approvals
    now = application_digest(session, project)
    return [e for e in approvals if e.details.get("application", now) == now]


def changes_under_review(session: Session, project_id: str) -> list[dict[str, Any]]:
    """Changes made to the application while it was under review since it was last (re)submitted,
    each with the approvals it voided: what a reviewer must look at again."""
    events = _events(session, project_id)
    starts = [i for i, e in enumerate(events) if e.action in ("apply", "resubmit")]
    after = events[starts[-1] + 1 :] if starts else events
    return [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "users": e.details.get("users", []),
            "voided": e.details.get("voids_approvals", []),
            "ledger_index": e.ledger_index,
        }
        for e in after
        if "voids_approvals" in (e.details or {})
    ]


def required_approvals(policies: dict[str, Policy], cfg: ProjectsSettings) -> int:
    """Distinct approvals needed: more when any requested dataset is non-open."""
    return cfg.approvals_non_open if any(not p.is_open for p in policies.values()) else cfg.approvals_open


def _reviewer(session: Session, principal: Principal, project: ProjectRow) -> None:
    principal.require(Role.bureau)
    if principal.name in insiders(session, project):
        raise SelfReview(
            f"{principal.name} applied for or belongs to project {project.id} and may not review it"
        )


def review(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    project_id: str,
    decision: ReviewIn,
    cfg: ProjectsSettings,
) -> Outcome:
    """A bureau reviewer approves (optionally reducing the grant or the term), rejects or asks for changes."""
    principal.require(Role.bureau)
    project = load_project(session, project_id, lock=True)
    _reviewer(session, principal, project)
    expect(project, {S.pending}, "review")
    reason = decision.reason.strip()
    if decision.decision in ("reject", "changes"):
        if not reason:
            raise BadRequest(f"a reason is required to {decision.decision} an application", field="reason")
        to = S.rejected if decision.decision == "reject" else S.changes_requested
        return Outcome(project, move(session, ledger, project, principal.name, decision.decision, to, reason))
    return _approve(session, ledger, principal, project, decision, reason, cfg)


def _approve(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    project: ProjectRow,
    decision: ReviewIn,
    reason: str,
    cfg: ProjectsSettings,
) -> Outcome:
    requested: G.Grants = project.requested
    days = decision.days or project.requested_days
    if days > project.requested_days:
        raise InvalidProject(
            f"days: {days} is longer than the requested {project.requested_days}; a term is never extended",
            field="days",
        )
    policies = policies_of(session, requested)
    proposal = G.normalize(G.reduce(requested, decision.grants), policies, strict=False)
    G.check_within(proposal, requested)
    if not proposal:
        raise InvalidProject("the grant would be empty; reject the application instead", field="grants")
    outsiders = insiders(session, project)
    earlier = [e for e in review_round(session, project.id) if e.actor not in outsiders]
    if any(e.actor == principal.name for e in earlier):
        raise Conflict(f"{principal.name} has already approved project {project.id} in this review round")
    required, count = required_approvals(policies, cfg), len(earlier) + 1
    details: dict[str, Any] = {
        "grants": proposal,
        "days": days,
        "approvals": count,
        "required": required,
        "application": application_digest(session, project),
        "members": current_members(session, project.id),
    }
    if count < required:
        event = record(
            session,
            ledger,
            project,
            principal.name,
            "approve",
            project.status,
            project.status,
            reason,
            details,
        )
        return Outcome(project, event)
    granted, term = proposal, days
    for e in earlier:
        granted, term = G.meet(granted, e.details["grants"]), min(term, int(e.details["days"]))
    if not granted:
        raise InvalidProject("the approvals share no common grant; request changes instead", field="grants")
    now = utcnow()
    project.starts_at, project.ends_at = now, now + dt.timedelta(days=term)
    for ds, limits in granted.items():
        session.add(GrantRow(project_id=project.id, dataset_id=ds, limits=limits))
    for ds, budget in G.budgets(granted).items():
        b = budget.as_strings()
        session.add(
            BudgetRow(
                project_id=project.id,
                dataset_id=ds,
                epsilon_total=b["epsilon"],
                delta_total=b["delta"],
                epsilon_spent="0",
                delta_spent="0",
                spends=0,
            )
        )
    details.update(granted=granted, term_days=term, ends_at=project.ends_at.isoformat())
    event = move(session, ledger, project, principal.name, "approve", S.active, reason, details)
    return Outcome(project, event, hub=True)
