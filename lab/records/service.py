"""Reading derived records: the bureau and auditors see all, project members see their projects'.

Records are written only by :func:`lab.projects.access.commit_result`; this module only reads.

Usage (needs a database session, so not run here)::

    list_records(session, principal, project="p1", channel="dp", since=..., limit=100)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.errors import Forbidden, NotFound
from lab.identity import Principal
from lab.projects.access import OVERSEERS, may_read, member_projects
from lab.records.models import DerivedRecordRow

READ_ALL = OVERSEERS


class RecordNotFound(NotFound):
    code, title = "record-not-found", "Derived record not found"


def record_view(r: DerivedRecordRow) -> dict[str, Any]:
    """The API view of a record (it holds no raw inputs, only parameters and digests)."""
    return {
        "id": r.id,
        "project": r.project_id,
        "caller": r.caller,
        "channel": r.channel,
        "operation": r.operation,
        "datasets": r.datasets,
        "parameters": r.parameters,
        "epsilon": r.epsilon,
        "delta": r.delta,
        "result_digest": r.result_digest,
        "created_at": r.created_at,
        "ledger_index": r.ledger_index,
    }


def list_records(
    session: Session,
    principal: Principal,
    *,
    project: str | None = None,
    channel: str | None = None,
    caller: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Records the caller may see, newest first, filtered by project, channel, caller and time."""
    q = select(DerivedRecordRow)
    if not principal.has(*READ_ALL):
        mine = member_projects(session, principal.name)
        if project is not None and project not in mine:
            raise Forbidden(f"{principal.name} is not a member of project {project}")
        q = q.where(DerivedRecordRow.project_id.in_(mine))
    if project:
        q = q.where(DerivedRecordRow.project_id == project)
    if channel:
        q = q.where(DerivedRecordRow.channel == channel)
    if caller:
        q = q.where(DerivedRecordRow.caller == caller)
    if since:
        q = q.where(DerivedRecordRow.created_at >= since)
    if until:
        q = q.where(DerivedRecordRow.created_at < until)
    q = (
        q.order_by(DerivedRecordRow.created_at.desc(), DerivedRecordRow.id)
        .limit(min(limit, 1000))
        .offset(offset)
    )
    return [record_view(r) for r in session.execute(q).scalars()]


def get_record(session: Session, principal: Principal, record_id: str) -> dict[str, Any]:
    """One record; members of its project, the bureau and auditors only."""
    r = session.get(DerivedRecordRow, record_id)
    if r is None:
        raise RecordNotFound(f"no derived record {record_id}")
    if not may_read(session, principal, r.project_id):
        raise RecordNotFound(f"no derived record {record_id}")  # do not confirm other projects' ids
    return record_view(r)
