"""Derived records: list and read (members see their projects', the bureau and auditors all)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from lab.api.deps import PrincipalDep, SessionDep
from lab.api.problems import responses
from lab.api.schemas import MAX_INT
from lab.errors import Forbidden, Unauthenticated
from lab.records import service
from lab.records.service import RecordNotFound

router = APIRouter(prefix="/api/v1/records", tags=["records"])


@router.get("", responses=responses(Unauthenticated, Forbidden), summary="List derived records")
def list_records(
    principal: PrincipalDep,
    session: SessionDep,
    project: Annotated[str | None, Query(max_length=32)] = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    caller: Annotated[str | None, Query(max_length=128)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> list[dict[str, Any]]:
    return service.list_records(
        session,
        principal,
        project=project,
        channel=channel,
        caller=caller,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{record_id}", responses=responses(Unauthenticated, Forbidden, RecordNotFound), summary="One record"
)
def get_record(record_id: str, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return service.get_record(session, principal, record_id)
