"""Project members: who may change them, and the events and Hub syncs that follow.

The applicant may add or remove members while the application is pending or awaiting changes;
afterwards only the bureau may (members of an approved project reach data). The applicant always
stays a member. Changes to an active or suspended project bump its Hub version, so the Hub group
follows after the commit and removed users lose spawn rights (and their server) at once. A change
to a pending application voids the approvals given so far (``voids_approvals`` in the event and its
ledger entry): the reviewers approve the application as it now is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.db.base import utcnow
from lab.errors import BadRequest, Forbidden, InvalidTransition, ProjectNotFound
from lab.identity import Principal, Role
from lab.ledger import Ledger
from lab.projects.access import is_member, load_project
from lab.projects.models import FINAL, ProjectMemberRow, ProjectRow, ProjectStatus
from lab.projects.review import review_round
from lab.projects.service import Outcome, record

S = ProjectStatus


def _may_manage_members(session: Session, principal: Principal, project: ProjectRow) -> None:
    if project.status in FINAL:
        raise InvalidTransition(f"project {project.id} is {project.status}; its members are final")
    if principal.has(Role.bureau):
        return
    if principal.name == project.applicant:
        if project.status in (S.pending, S.changes_requested):
            return
        raise Forbidden("after approval only the bureau changes a project's members")
    if is_member(session, project.id, principal.name):
        raise Forbidden(f"only the applicant ({project.applicant}) or the bureau changes the members")
    raise ProjectNotFound(f"no project {project.id}")


def _approvals(session: Session, project: ProjectRow) -> list[str]:
    return [e.actor for e in review_round(session, project.id)] if project.status == S.pending else []


def _membership_event(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    project: ProjectRow,
    action: str,
    users: list[str],
    reason: str,
    voided: list[str],
) -> Outcome:
    if not users:
        return Outcome(project, None)
    serving = project.status in (S.active, S.suspended)
    if serving:
        project.hub_version += 1
    details: dict[str, Any] = {"users": users}
    if project.status == S.pending:  # a changed application voids the approvals given so far
        details["voids_approvals"] = voided
    event = record(
        session,
        ledger,
        project,
        principal.name,
        action,
        project.status,
        project.status,
        reason,
        details,
    )
    return Outcome(project, event, hub=serving)


def add_members(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    project_id: str,
    users: list[str],
    reason: str = "",
) -> Outcome:
    """Add members (idempotent); a member of an active project may spawn once the Hub group follows."""
    project = load_project(session, project_id, lock=True)
    _may_manage_members(session, principal, project)
    voided = _approvals(session, project)
    rows = {
        r.username: r
        for r in session.execute(
            select(ProjectMemberRow).where(ProjectMemberRow.project_id == project.id)
        ).scalars()
    }
    now, added = utcnow(), []
    for u in sorted(set(users)):
        row = rows.get(u)
        if row is None:
            session.add(ProjectMemberRow(project_id=project.id, username=u, added_at=now))
        elif row.removed_at is not None:
            row.added_at, row.removed_at = now, None
        else:
            continue
        added.append(u)
    return _membership_event(session, ledger, principal, project, "member_add", added, reason, voided)


def remove_members(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    project_id: str,
    users: list[str],
    reason: str = "",
) -> Outcome:
    """Remove members (idempotent; never the applicant); their access ends with the Hub sync."""
    project = load_project(session, project_id, lock=True)
    _may_manage_members(session, principal, project)
    voided = _approvals(session, project)
    if project.applicant in users:
        raise BadRequest(
            f"the applicant {project.applicant} stays a member; end the project to revoke everyone",
            field="users",
        )
    now, removed = utcnow(), []
    rows = session.execute(
        select(ProjectMemberRow).where(
            ProjectMemberRow.project_id == project.id,
            ProjectMemberRow.username.in_(sorted(set(users))),
            ProjectMemberRow.removed_at.is_(None),
        )
    ).scalars()
    for row in rows:
        row.removed_at = now
        removed.append(row.username)
    return _membership_event(
        session, ledger, principal, project, "member_remove", sorted(removed), reason, voided
    )
