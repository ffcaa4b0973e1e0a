"""Keep each project's JupyterHub group ``project-<id>`` equal to the users who may spawn for it.

The Hub's spawn hook lets a user start a notebook server only as a member of some ``project-*``
group, so this group is how approval, suspension, ending, expiry and member removal reach the Hub.
A group holds the current members while the project is active and within its term, and nobody
otherwise. Users who drop out of a group and have no other serving project get their running
server stopped at once (``DELETE /users/{name}/server`` with the lab service's token).

Hub calls happen *after* the database commit: the database is the truth and the Hub follows it.
Every change of who may spawn bumps ``ProjectRow.hub_version``; a successful sync records the
version it pushed in ``hub_synced_version`` (compare-and-set, so a change made during a sync is
not lost). If the Hub is unreachable the database state stands and the project stays *dirty*:
:func:`sync_pending` (run by the periodic sweep) and :func:`sync_all` (``lab projects sync-hub``)
reconcile it later.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lab.db.base import utcnow
from lab.errors import LabError, ProjectNotFound
from lab.projects.models import ProjectMemberRow, ProjectRow, ProjectStatus
from lab.projects.service import current_members
from lab.projects.views import serving
from lab.runtime import Runtime

log = logging.getLogger("lab.projects.hub")
GROUP_PREFIX = "project-"


def group_name(project_id: str) -> str:
    """The Hub group of a project."""
    return GROUP_PREFIX + project_id


@dataclass
class HubSync:
    """What one sync did."""

    project: str
    group: str
    members: list[str]
    removed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)


def wanted_members(session: Session, project: ProjectRow, now: dt.datetime | None = None) -> list[str]:
    """Who belongs in the project's Hub group right now."""
    return current_members(session, project.id) if serving(project, now) else []


def has_other_access(session: Session, user: str, project_id: str, now: dt.datetime | None = None) -> bool:
    """Is ``user`` a current member of another serving project?"""
    others = session.execute(
        select(ProjectRow)
        .join(ProjectMemberRow, ProjectMemberRow.project_id == ProjectRow.id)
        .where(
            ProjectMemberRow.username == user,
            ProjectMemberRow.removed_at.is_(None),
            ProjectRow.id != project_id,
            ProjectRow.status == ProjectStatus.active.value,
        )
    ).scalars()
    return any(serving(p, now) for p in others)


def sync_project(runtime: Runtime, project_id: str) -> HubSync:
    """Make the project's Hub group match the database; stop servers of users who lost all access.

    Raises :class:`~lab.errors.Unavailable` if the Hub cannot be reached (the project stays dirty).
    """
    now = utcnow()
    with runtime.transaction() as s:
        project = s.get(ProjectRow, project_id)
        if project is None:
            raise ProjectNotFound(f"no project {project_id}")
        version = project.hub_version
        wanted = wanted_members(s, project, now)
    hub, group = runtime.hub, group_name(project_id)
    before = set(hub.group_members(group))
    hub.set_group_members(group, wanted)
    result = HubSync(project_id, group, wanted, removed=sorted(before - set(wanted)))
    if result.removed and runtime.settings.projects.stop_servers:
        with runtime.transaction() as s:
            losing = [u for u in result.removed if not has_other_access(s, u, project_id, now)]
        for user in losing:
            model = hub.get_user(user)
            if model is None:
                continue
            if model.get("server") or (model.get("servers") or {}).get(""):
                hub.stop_server(user)
                result.stopped.append(user)
    with runtime.transaction() as s:
        s.execute(
            update(ProjectRow)
            .where(ProjectRow.id == project_id, ProjectRow.hub_synced_version < version)
            .values(hub_synced_version=version)
        )
    if result.removed or result.stopped:
        log.info("hub group %s: removed %s, stopped servers of %s", group, result.removed, result.stopped)
    return result


def _sync_each(runtime: Runtime, ids: list[str]) -> tuple[list[HubSync], list[str]]:
    done: list[HubSync] = []
    errors: list[str] = []
    for pid in ids:
        try:
            done.append(sync_project(runtime, pid))
        except LabError as exc:
            errors.append(f"{pid}: {exc.detail}")
            log.warning("hub sync of project %s failed (will retry): %s", pid, exc.detail)
            if exc.status == 503:  # the Hub is down: the rest would fail the same way
                break
    return done, errors


def sync_pending(runtime: Runtime) -> tuple[list[HubSync], list[str]]:
    """Sync every project whose Hub group lags behind the database (the sweep runs this)."""
    with runtime.transaction() as s:
        ids = list(
            s.execute(
                select(ProjectRow.id)
                .where(ProjectRow.hub_synced_version < ProjectRow.hub_version)
                .order_by(ProjectRow.updated_at)
            ).scalars()
        )
    return _sync_each(runtime, ids)


def sync_all(runtime: Runtime) -> tuple[list[HubSync], list[str]]:
    """Full reconciliation: every project that was ever approved, dirty or not."""
    with runtime.transaction() as s:
        ids = list(
            s.execute(
                select(ProjectRow.id).where(ProjectRow.starts_at.is_not(None)).order_by(ProjectRow.created_at)
            ).scalars()
        )
    return _sync_each(runtime, ids)
