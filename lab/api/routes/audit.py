"""Request audit (articles 29, 32): the middleware that records every API request, and the bureau's views.

:class:`AuditMiddleware` (pure ASGI, installed by ``lab.api.main``) measures each HTTP request and,
once it is answered, queues who (the principal resolved by ``get_principal``), which project, the
method, the route *template*, the status, the outcome code (``ok`` or the problem code) and the
latency. Never a token, a query string or a payload. The project is the route's path parameter
(``project_id`` of the project routes, ``project`` of the three channels' routes
``/api/v1/projects/{project}/{dp,psi,he}/…``), else the ``project`` query parameter (the record and
product listings). A body is never read for it, so every channel's requests are attributed alike,
refused or not, whether or not the route read its body. Entries are written by a background thread
(:class:`lab.audit.service.AuditWriter`); a failed write is logged and never fails the request.
Requests refused before routing because their body is too large are not recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lab.api.deps import PrincipalDep, RuntimeDep
from lab.api.problems import responses
from lab.api.schemas import MAX_INT
from lab.audit.service import Anomalies, AuditEntry, AuditRequestOut, AuditWriter, anomalies, recent_requests
from lab.db.base import utcnow
from lab.errors import Forbidden, Unauthenticated
from lab.identity import Role

log = logging.getLogger("lab.audit")


def writer_for(app: Any) -> AuditWriter:
    """The app's audit writer (created on first use)."""
    writer: AuditWriter | None = getattr(app.state, "audit_writer", None)
    if writer is None:
        writer = AuditWriter(app.state.runtime.sessions)
        app.state.audit_writer = writer
    return writer


def _project_of(scope: Scope) -> str | None:
    """The request's project: the routed path's, else the ``project`` query parameter (or None).

    >>> _project_of({"path_params": {"project": "p1"}, "query_string": b"project=p2"})
    'p1'
    >>> _project_of({"path_params": {}, "query_string": b"project=p2&x=1"})
    'p2'
    >>> _project_of({"path_params": {"project": "p" * 40}}) is None  # no id of the lab is longer
    True
    """
    params = scope.get("path_params") or {}
    candidates: list[Any] = [params.get("project_id"), params.get("project")]
    if scope.get("query_string"):
        candidates += parse_qs(scope["query_string"].decode("latin-1")).get("project", [])[:1]
    for c in candidates:
        if isinstance(c, str) and 0 < len(c) <= 32 and c.isprintable():  # never a NUL the DB refuses
            return c
    return None


class AuditMiddleware:
    """Record every HTTP request in ``audit_requests`` (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException:
            status = 500
            state.setdefault("outcome", "internal")
            raise
        finally:
            self._record(scope, state, status, start)

    @staticmethod
    def _record(scope: Scope, state: dict[str, Any], status: int, start: float) -> None:
        try:
            route = scope.get("route")
            principal = state.get("principal")
            entry = AuditEntry(
                at=utcnow(),
                principal=getattr(principal, "name", None),
                project_id=_project_of(scope),
                method=str(scope.get("method", ""))[:10],
                route=str(getattr(route, "path", "(no route)"))[:200],
                status=status,
                outcome=str(state.get("outcome") or ("ok" if status < 400 else f"http-{status}"))[:64],
                latency_ms=round((time.perf_counter() - start) * 1000, 3),
            )
            writer_for(scope["app"]).submit(entry)
        except Exception:  # auditing never fails a request
            log.exception("could not record an audit entry")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    writer: AuditWriter | None = getattr(app.state, "audit_writer", None)
    if writer is not None:
        writer.close()


router = APIRouter(prefix="/api/v1/audit", tags=["audit"], lifespan=_lifespan)
ERRORS = responses(Unauthenticated, Forbidden)


def _overseer(principal: PrincipalDep) -> None:
    principal.require(Role.bureau, Role.auditor)


def _flushed(request: Request) -> None:
    """Write the queued entries first, so that a read sees every request answered so far."""
    writer_for(request.app).flush()


@router.get(
    "/requests",
    response_model=list[AuditRequestOut],
    responses=ERRORS,
    summary="Recent API requests (bureau)",
)
def list_requests(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    request: Request,
    user: str | None = None,
    project: str | None = None,
    min_status: Annotated[int | None, Query(ge=100, le=599)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditRequestOut]:
    """The latest requests, newest first; filter by user, project or lowest status."""
    _overseer(principal)
    _flushed(request)
    with runtime.transaction() as s:
        return recent_requests(s, principal=user, project=project, min_status=min_status, limit=limit)


@router.get("/anomalies", response_model=Anomalies, responses=ERRORS, summary="Anomalies for the bureau")
def get_anomalies(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    request: Request,
    hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24.0,
    min_refused: Annotated[int, Query(ge=1, le=MAX_INT)] = 1,
    budget_fraction: Annotated[Decimal, Query(gt=0, le=1)] = Decimal("0.8"),
) -> Anomalies:
    """Refused requests per principal and quota hits in the window; budgets nearly spent."""
    _overseer(principal)
    _flushed(request)
    with runtime.transaction() as s:
        return anomalies(s, hours=hours, min_refused=min_refused, budget_fraction=budget_fraction)
