"""Private set intersection: sessions, setup download, request upload, cohort upload.

Every route is under its project, ``/api/v1/projects/{project}/psi/…``; the path decides
(:data:`~lab.api.deps.ProjectDep`: a caller who may not know of the project gets
``project-not-found``, as on DP routes), a session of another project is not found, and a
``project`` in the session request or an envelope must name the path's (``project-mismatch``).
Protocol bodies are ``lab.psi.v1.Envelope`` protobufs (``application/x-protobuf``; see
``psi_service.protocol``); everything else is JSON. The service does the work: see
``psi_service.server`` and ``psi_service.cohort``.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lab.api.deps import PrincipalDep, ProjectDep, RuntimeDep, read_body
from lab.api.problems import responses
from lab.errors import (
    BadRequest,
    BudgetExhausted,
    Conflict,
    Forbidden,
    NotFound,
    NotInGrant,
    PayloadTooLarge,
    ProjectInactive,
    ProjectMismatch,
    ProjectNotFound,
    QuotaExceeded,
    Unauthenticated,
)
from lab.projects.access import same_project
from psi_service.cohort import finish_cohort
from psi_service.protocol import CONTENT_TYPE, MEDIA_TYPE, ProtocolError
from psi_service.requests import submit_request
from psi_service.schemas import CohortOut, PartAccepted, SessionCreate, SessionOut
from psi_service.server import PsiService

router = APIRouter(prefix="/api/v1/projects/{project}/psi", tags=["psi"])
ACCESS_ERRORS = (
    Unauthenticated,
    Forbidden,
    NotInGrant,
    ProjectInactive,
    ProjectNotFound,
    NotFound,
    BadRequest,
    QuotaExceeded,
)
UPLOAD_ERRORS = responses(
    *ACCESS_ERRORS, ProtocolError, ProjectMismatch, Conflict, PayloadTooLarge, BudgetExhausted
)
PROTOBUF = {"content": {MEDIA_TYPE: {}}, "description": "a lab.psi.v1.Envelope"}


async def _envelope(request: Request, limit: int) -> bytes:
    """The request body, which must be a protobuf envelope of at most ``limit`` bytes."""
    if not request.headers.get("content-type", "").startswith(CONTENT_TYPE):
        raise ProtocolError(f"PSI messages are sent as {MEDIA_TYPE}")
    return await read_body(request, limit, f"PSI message exceeds {limit} bytes; send the request in parts")


@router.post(
    "/sessions",
    response_model=SessionOut,
    status_code=201,
    responses=responses(*ACCESS_ERRORS, ProjectMismatch, BudgetExhausted),
    summary="Start a PSI run (authorizes, builds or reuses the setup)",
)
def create_session(
    project: ProjectDep, body: SessionCreate, principal: PrincipalDep, runtime: RuntimeDep
) -> SessionOut:
    same_project(project, body.project, "the session request")
    info = PsiService(runtime).create_session(
        principal, project, body.dataset, body.column, body.mode, body.size
    )
    return SessionOut(**asdict(info))


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=responses(*ACCESS_ERRORS))
def get_session(
    project: ProjectDep, session_id: str, principal: PrincipalDep, runtime: RuntimeDep
) -> SessionOut:
    return SessionOut(**asdict(PsiService(runtime).session(principal, project, session_id)))


@router.get(
    "/sessions/{session_id}/setup",
    response_class=Response,
    responses={200: PROTOBUF, **responses(*ACCESS_ERRORS, Conflict)},
    summary="The session's ServerSetup (intersection, cardinality) or the lab's Request (cohort)",
)
def get_setup(project: ProjectDep, session_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    return Response(PsiService(runtime).artifact(principal, project, session_id), media_type=MEDIA_TYPE)


@router.post(
    "/sessions/{session_id}/request",
    response_class=Response,
    responses={200: PROTOBUF, 202: {"model": PartAccepted}, **UPLOAD_ERRORS},
    summary="Upload (a part of) the encrypted client set; the last part returns the response",
)
async def post_request(
    project: ProjectDep, session_id: str, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    service = PsiService(runtime)
    body = await _envelope(request, service.max_body_bytes)
    outcome = await run_in_threadpool(submit_request, service, principal, project, session_id, body)
    if outcome.body is None:
        accepted = PartAccepted(session=session_id, received=outcome.received, parts=outcome.parts)
        return JSONResponse(accepted.model_dump(), status_code=202)
    return Response(outcome.body, media_type=MEDIA_TYPE, headers={"Lab-Record-Id": outcome.record_id or ""})


@router.post(
    "/sessions/{session_id}/cohort",
    response_model=CohortOut,
    responses=UPLOAD_ERRORS,
    summary="Cohort mode: upload the operator's setup, response and DLEQ proof; the lab stores the cohort",
)
async def post_cohort(
    project: ProjectDep, session_id: str, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> CohortOut:
    body = await _envelope(request, runtime.settings.max_request_bytes)
    result = await run_in_threadpool(finish_cohort, PsiService(runtime), principal, project, session_id, body)
    return CohortOut(**asdict(result))
