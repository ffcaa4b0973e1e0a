"""Private set intersection: sessions, setup download, request upload, cohort upload.

Protocol bodies are ``lab.psi.v1.Envelope`` protobufs (``application/x-protobuf``; see
``psi_service.protocol``); everything else is JSON. The service does the work: see
``psi_service.server`` and ``psi_service.cohort``.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lab.api.deps import PrincipalDep, RuntimeDep, read_body
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
    QuotaExceeded,
    Unauthenticated,
)
from psi_service.cohort import finish_cohort
from psi_service.protocol import CONTENT_TYPE, MEDIA_TYPE, ProtocolError
from psi_service.requests import submit_request
from psi_service.schemas import CohortOut, PartAccepted, SessionCreate, SessionOut
from psi_service.server import PsiService

router = APIRouter(prefix="/api/v1/psi", tags=["psi"])
ACCESS_ERRORS = (Unauthenticated, Forbidden, NotInGrant, ProjectInactive, NotFound, BadRequest, QuotaExceeded)
UPLOAD_ERRORS = responses(*ACCESS_ERRORS, ProtocolError, Conflict, PayloadTooLarge, BudgetExhausted)
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
    responses=responses(*ACCESS_ERRORS, BudgetExhausted),
    summary="Start a PSI run (authorizes, builds or reuses the setup)",
)
def create_session(body: SessionCreate, principal: PrincipalDep, runtime: RuntimeDep) -> SessionOut:
    info = PsiService(runtime).create_session(
        principal, body.project, body.dataset, body.column, body.mode, body.size
    )
    return SessionOut(**asdict(info))


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=responses(*ACCESS_ERRORS))
def get_session(session_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> SessionOut:
    return SessionOut(**asdict(PsiService(runtime).session(principal, session_id)))


@router.get(
    "/sessions/{session_id}/setup",
    response_class=Response,
    responses={200: PROTOBUF, **responses(*ACCESS_ERRORS, Conflict)},
    summary="The session's ServerSetup (intersection, cardinality) or the lab's Request (cohort)",
)
def get_setup(session_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    return Response(PsiService(runtime).artifact(principal, session_id), media_type=MEDIA_TYPE)


@router.post(
    "/sessions/{session_id}/request",
    response_class=Response,
    responses={200: PROTOBUF, 202: {"model": PartAccepted}, **UPLOAD_ERRORS},
    summary="Upload (a part of) the encrypted client set; the last part returns the response",
)
async def post_request(
    session_id: str, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    service = PsiService(runtime)
    body = await _envelope(request, service.max_body_bytes)
    outcome = await run_in_threadpool(submit_request, service, principal, session_id, body)
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
    session_id: str, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> CohortOut:
    body = await _envelope(request, runtime.settings.max_request_bytes)
    result = await run_in_threadpool(finish_cohort, PsiService(runtime), principal, session_id, body)
    return CohortOut(**asdict(result))
