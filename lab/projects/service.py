"""The project lifecycle over one database session: apply, review, resubmit, suspend, resume, end, expire.

::

    apply ─► pending ──approve (k-th distinct approval)──► active ◄──resume── suspended
               │  ▲ │                                       │  └──suspend──►──┘  │
               │  │ └─reject─► rejected                     ├──end──► ended ◄────┤ (bureau)
               │  └─resubmit── changes_requested ◄─changes─┘│                    │
                                                            └──expire─► expired ◄┘ (sweep, at ends_at)
    ended / expired ──► disposed (lab.projects.disposal; disposed_at set, record written)

Review lives in :mod:`lab.projects.review`, membership in :mod:`lab.projects.members`.
Every function checks who may act, locks the project row, changes it and writes one
``ProjectEventRow`` plus its ``project.transition`` ledger entry — all in the caller's transaction,
so a transition and its record commit or roll back together. Functions return an
:class:`Outcome` telling the caller what must follow the commit: syncing the Hub group
(:mod:`lab.projects.hubsync`) and disposal (:mod:`lab.projects.disposal`).
:class:`lab.projects.workflow.ProjectWorkflow` does all of that for the API, the web pages and the CLI.

Roles: operators apply (the applicant is always a member); bureau reviewers review, suspend, resume
and end, but never a project they applied for or belong to; k distinct approvals activate a project
(``settings.projects.approvals_non_open`` when it touches a non-open dataset, else ``approvals_open``)
and the grant is the intersection of what each approver approved. Members: the applicant may change
them while the application is pending or awaiting changes; afterwards only the bureau may.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.catalog.policy import Policy
from lab.catalog.service import CatalogReader
from lab.db.base import utcnow
from lab.errors import DatasetNotFound, InvalidTransition, ProjectNotFound
from lab.identity import Principal, Role
from lab.ledger import Ledger
from lab.projects import grants as G
from lab.projects.access import is_member, load_project
from lab.projects.errors import InvalidProject
from lab.projects.models import (
    ProjectEventRow,
    ProjectMemberRow,
    ProjectRow,
    ProjectStatus,
)
from lab.projects.schemas import ApplicationIn, ResubmitIn
from lab.settings import ProjectsSettings

SWEEP_ACTOR = "lab-sweep"
S = ProjectStatus


@dataclass
class Outcome:
    """What a lifecycle call did, and what must follow its commit."""

    project: ProjectRow
    event: ProjectEventRow | None
    hub: bool = False  # the project's Hub group must follow its new state
    dispose: bool = False  # the project's working data must be disposed of


def new_project_id() -> str:
    """A random, unguessable id (``p`` + 16 hex digits)."""
    return "p" + secrets.token_hex(8)


def policies_of(session: Session, datasets: Iterable[str]) -> dict[str, Policy]:
    """The current policy of each dataset; unknown datasets are an :class:`InvalidProject`."""
    catalog = CatalogReader(session)
    out: dict[str, Policy] = {}
    for ds in datasets:
        try:
            out[ds] = catalog.get(ds).policy
        except DatasetNotFound:
            raise InvalidProject(
                f"{ds}: no such dataset in the catalog", dataset=ds, field="datasets"
            ) from None
    return out


def record(
    session: Session,
    ledger: Ledger,
    project: ProjectRow,
    actor: str,
    action: str,
    from_status: str | None,
    to_status: str | None,
    reason: str = "",
    details: dict[str, Any] | None = None,
    *,
    kind: str = "project.transition",
) -> ProjectEventRow:
    """Write one project event and its ledger entry (in the caller's transaction)."""
    details = details or {}
    entry = ledger.append(
        kind,
        {
            "project": project.id,
            "action": action,
            "from": from_status,
            "to": to_status,
            "reason": reason,
            "details": details,
        },
        actor=actor,
    )
    now = utcnow()
    event = ProjectEventRow(
        project_id=project.id,
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        details=details,
        at=now,
        ledger_index=entry.index,
    )
    session.add(event)
    project.updated_at = now
    session.flush()
    return event


def move(
    session: Session,
    ledger: Ledger,
    project: ProjectRow,
    actor: str,
    action: str,
    to: ProjectStatus,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> ProjectEventRow:
    before = project.status
    project.status = to.value
    if to in (S.active, S.suspended, S.ended, S.expired) or before in (S.active, S.suspended):
        project.hub_version += 1
    return record(session, ledger, project, actor, action, before, to.value, reason, details)


def expect(project: ProjectRow, allowed: set[ProjectStatus], what: str) -> None:
    if project.status not in allowed:
        states = ", ".join(sorted(s.value for s in allowed))
        raise InvalidTransition(
            f"cannot {what} project {project.id}: it is {project.status} (needs {states})",
            project_status=project.status,
        )


def current_members(session: Session, project_id: str) -> list[str]:
    rows = session.execute(
        select(ProjectMemberRow.username)
        .where(ProjectMemberRow.project_id == project_id, ProjectMemberRow.removed_at.is_(None))
        .order_by(ProjectMemberRow.username)
    ).scalars()
    return list(rows)


def insiders(session: Session, project: ProjectRow) -> set[str]:
    """Who may not review the project: the applicant and every current member."""
    return {project.applicant, *current_members(session, project.id)}


def check_days(days: int, cfg: ProjectsSettings) -> None:
    if days > cfg.max_days:
        raise InvalidProject(f"days: {days} exceeds the longest term of {cfg.max_days} days", field="days")


# -- application ---------------------------------------------------------------------------------
def apply(
    session: Session, ledger: Ledger, principal: Principal, app: ApplicationIn, cfg: ProjectsSettings
) -> Outcome:
    """File an application; refused at once if any request exceeds a dataset policy's caps."""
    principal.require(Role.operator)
    check_days(app.days, cfg)
    requested = G.normalize(app.datasets, policies_of(session, app.datasets))
    members = sorted({*app.members, principal.name})
    now = utcnow()
    project = ProjectRow(
        id=new_project_id(),
        title=app.title.strip(),
        purpose=app.purpose.strip(),
        scenario=app.scenario.strip(),
        organization=app.organization.strip(),
        contact=app.contact.strip(),
        applicant=principal.name,
        status=S.pending.value,
        requested_days=app.days,
        requested=requested,
        commitment=app.commitment,
        commitment_signed_by=principal.name,
        created_at=now,
        updated_at=now,
        hub_version=0,
        hub_synced_version=0,
    )
    session.add(project)
    session.flush()
    for m in members:
        session.add(ProjectMemberRow(project_id=project.id, username=m, added_at=now))
    details = {
        "title": project.title,
        "organization": project.organization,
        "applicant": principal.name,
        "members": members,
        "datasets": requested,
        "days": app.days,
        "commitment_sha256": hashlib.sha256(app.commitment.encode()).hexdigest(),
    }
    event = record(session, ledger, project, principal.name, "apply", None, S.pending.value, "", details)
    return Outcome(project, event)


def resubmit(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    project_id: str,
    changes: ResubmitIn,
    cfg: ProjectsSettings,
) -> Outcome:
    """The applicant (or a member) answers a request for changes; the review starts over."""
    project = load_project(session, project_id, lock=True)
    if principal.name != project.applicant and not is_member(session, project.id, principal.name):
        raise ProjectNotFound(f"no project {project_id}")
    expect(project, {S.changes_requested}, "resubmit")
    changed = sorted(k for k in changes.model_fields_set if k != "note" and getattr(changes, k) is not None)
    for field in ("title", "purpose", "scenario", "organization", "contact", "commitment"):
        value = getattr(changes, field)
        if value is not None:
            setattr(project, field, value if field == "commitment" else value.strip())
    if changes.commitment is not None:
        project.commitment_signed_by = principal.name
    if changes.days is not None:
        check_days(changes.days, cfg)
        project.requested_days = changes.days
    if changes.datasets is not None:
        project.requested = G.normalize(changes.datasets, policies_of(session, changes.datasets))
    details: dict[str, Any] = {"changed": changed, "note": changes.note}
    if changes.datasets is not None:
        details["datasets"] = project.requested
    if changes.days is not None:
        details["days"] = changes.days
    event = move(session, ledger, project, principal.name, "resubmit", S.pending, changes.note, details)
    return Outcome(project, event)


# -- supervision ---------------------------------------------------------------------------------
def suspend(
    session: Session, ledger: Ledger, principal: Principal, project_id: str, reason: str = ""
) -> Outcome:
    """Bureau: stop serving an active project; its data stays until it ends or expires."""
    principal.require(Role.bureau)
    project = load_project(session, project_id, lock=True)
    expect(project, {S.active}, "suspend")
    return Outcome(
        project, move(session, ledger, project, principal.name, "suspend", S.suspended, reason), hub=True
    )


def resume(
    session: Session, ledger: Ledger, principal: Principal, project_id: str, reason: str = ""
) -> Outcome:
    """Bureau: serve a suspended project again (not past its end date)."""
    principal.require(Role.bureau)
    project = load_project(session, project_id, lock=True)
    expect(project, {S.suspended}, "resume")
    if project.ends_at is not None and utcnow() >= project.ends_at:
        raise InvalidTransition(f"project {project_id} reached its end date; it expires and is disposed of")
    return Outcome(
        project, move(session, ledger, project, principal.name, "resume", S.active, reason), hub=True
    )


def end(session: Session, ledger: Ledger, principal: Principal, project_id: str, reason: str = "") -> Outcome:
    """Bureau: end an active or suspended project; access is revoked and its working data disposed of."""
    principal.require(Role.bureau)
    project = load_project(session, project_id, lock=True)
    expect(project, {S.active, S.suspended}, "end")
    event = move(session, ledger, project, principal.name, "end", S.ended, reason)
    return Outcome(project, event, hub=True, dispose=True)


def expire(
    session: Session,
    ledger: Ledger,
    project_id: str,
    now: dt.datetime | None = None,
    actor: str = SWEEP_ACTOR,
) -> Outcome | None:
    """Mark a project whose term is over as expired (None if it is not due)."""
    now = now or utcnow()
    project = load_project(session, project_id, lock=True)
    if project.status not in (S.active, S.suspended) or project.ends_at is None:
        return None
    if project.ends_at > now:
        return None
    details = {"ends_at": project.ends_at.isoformat()}
    event = move(session, ledger, project, actor, "expire", S.expired, "term ended", details)
    return Outcome(project, event, hub=True, dispose=True)
