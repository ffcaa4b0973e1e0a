"""Homomorphic computation: parameter sets, public contexts, material, encrypted score and lookup.

Contexts are uploaded as raw bytes (``application/octet-stream``, bounded by the parameter set's
limit). ``score`` and ``lookup`` take and return an HE frame (``application/vnd.lab.he-frame``,
see ``he_compute.frames``): the request header is the call (project, context, model or table,
records), the blobs the operator's ciphertexts; the response header is the result's metadata
(derived record, quota, approximation error), the blobs the encrypted results. Bodies may be
sent chunked; the service bounds them by the declared records. A call whose ciphertexts exceed one
request body is opened (``POST /calls/{op}``), sent in parts (``PUT /calls/{id}/parts/{k}``, results
kept server-side, nothing charged) and committed once (``POST /calls/{id}/commit``: one charge, one
derived record, all results). See ``docs/he.md``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from he_compute import calls, frames, manage, params, service
from he_compute.contexts import ContextRejected
from he_compute.schemas import ContextOut, ModelOut, ParamSetOut, PublishModel, PublishTable, TableOut
from he_compute.worker import (
    HeInputRejected,
    WorkerBusy,
    WorkerCrashed,
    WorkerMemoryExceeded,
    WorkerTimeout,
    get_pool,
)
from lab.api.deps import PrincipalDep, RuntimeDep, read_body
from lab.api.problems import responses
from lab.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    NotInGrant,
    PayloadTooLarge,
    ProjectInactive,
    QuotaExceeded,
    Unauthenticated,
)

router = APIRouter(prefix="/api/v1/he", tags=["he"])
FRAME = "application/vnd.lab.he-frame"
ACCESS = (Unauthenticated, Forbidden, NotInGrant, ProjectInactive, NotFound, BadRequest)
WORKER = (HeInputRejected, WorkerCrashed, WorkerMemoryExceeded, WorkerTimeout, WorkerBusy, PayloadTooLarge)
CALL_ERRORS = responses(*ACCESS, *WORKER, QuotaExceeded, Conflict)
FRAME_BODY = {"content": {FRAME: {}}, "description": "an HE frame: JSON header + ciphertexts"}
Project = Annotated[str, Query(min_length=1, max_length=32)]


@router.get("/params", response_model=list[ParamSetOut], responses=responses(Unauthenticated))
def list_params(principal: PrincipalDep) -> list[ParamSetOut]:
    """The approved CKKS parameter sets (the only ones a context may use)."""
    return [ParamSetOut.model_validate(p.describe()) for p in params.APPROVED.values()]


@router.post(
    "/contexts",
    response_model=ContextOut,
    status_code=201,
    responses=responses(*ACCESS, ContextRejected, PayloadTooLarge, *WORKER),
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
    summary="Register a public CKKS context (no secret key; approved parameters)",
)
async def register_context(
    request: Request, principal: PrincipalDep, runtime: RuntimeDep, project: Project, param_set: str
) -> ContextOut:
    limit = params.get(param_set).max_context_bytes
    body = await read_body(request, limit, f"a {param_set} context is at most {limit} bytes")
    row = await run_in_threadpool(
        manage.register,
        runtime,
        get_pool(runtime.settings.he),
        principal,
        project,
        param_set,
        body,
    )
    return ContextOut.of(row)


@router.get("/contexts", response_model=list[ContextOut], responses=responses(*ACCESS))
def list_contexts(principal: PrincipalDep, runtime: RuntimeDep, project: Project) -> list[ContextOut]:
    """Your contexts in a project (the bureau and auditors: everyone's)."""
    return [ContextOut.of(r) for r in manage.list_contexts(runtime, principal, project)]


@router.delete("/contexts/{context_id}", status_code=204, responses=responses(*ACCESS))
def delete_context(
    context_id: str, principal: PrincipalDep, runtime: RuntimeDep, project: Project
) -> Response:
    manage.delete_context(runtime, principal, project, context_id)
    return Response(status_code=204)


@router.get("/models", response_model=list[ModelOut], responses=responses(*ACCESS))
def list_models(principal: PrincipalDep, runtime: RuntimeDep, project: str | None = None) -> list[Any]:
    """Models a project may score with (its own and bureau-published); never their weights."""
    return manage.listing(runtime, principal, "model", project)


@router.get("/tables", response_model=list[TableOut], responses=responses(*ACCESS))
def list_tables(principal: PrincipalDep, runtime: RuntimeDep, project: str | None = None) -> list[Any]:
    """Statistics tables a project may look up in; never their values."""
    return manage.listing(runtime, principal, "table", project)


@router.post("/models", response_model=ModelOut, status_code=201, responses=responses(*ACCESS, Conflict))
def publish_model(body: PublishModel, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Publish a model for every project's encrypted scoring (bureau)."""
    return manage.publish_model(runtime, principal, body)


@router.post("/tables", response_model=TableOut, status_code=201, responses=responses(*ACCESS, Conflict))
def publish_table(body: PublishTable, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Publish a statistics table for every project's encrypted lookups (bureau)."""
    return manage.publish_table(runtime, principal, body)


@router.post("/plan/{op}", responses=CALL_ERRORS, summary="Dry run of a score or lookup: checks and layout")
def plan(
    op: service.Op, body: service.CallSpec, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return service.plan_call(runtime, principal, op, body)


async def _call(op: service.Op, request: Request, principal: Any, runtime: Any) -> Response:
    def note(spec: service.CallSpec) -> None:
        request.state.audit_project = spec.project

    pool = get_pool(runtime.settings.he)
    header, blobs = await service.run(
        runtime, pool, principal, op, request.stream(), max_records=pool.limits.max_records, on_spec=note
    )
    return Response(frames.encode(header, blobs), media_type=FRAME)


@router.post(
    "/score",
    response_class=Response,
    responses={200: FRAME_BODY, **CALL_ERRORS},
    openapi_extra={"requestBody": {"content": {FRAME: {}}, "required": True}},
    summary="Score encrypted feature columns with a server-side model",
)
async def score(request: Request, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    return await _call("score", request, principal, runtime)


@router.post(
    "/lookup",
    response_class=Response,
    responses={200: FRAME_BODY, **CALL_ERRORS},
    openapi_extra={"requestBody": {"content": {FRAME: {}}, "required": True}},
    summary="Look encrypted one-hot categories up in a DP statistics table",
)
async def lookup(request: Request, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    return await _call("lookup", request, principal, runtime)


@router.post(
    "/calls/{op}",
    status_code=201,
    responses=responses(*ACCESS, *WORKER, QuotaExceeded, Conflict, calls.TooManyOpenCalls),
    summary="Open a multi-part score or lookup (at most a few open per caller and per project)",
)
def open_call(
    op: service.Op, body: service.CallSpec, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Every check of a plan; answers the layout with ``call``, ``parts`` and ``part_batches``."""
    return calls.open_call(runtime, principal, op, body, limits=get_pool(runtime.settings.he).limits)


@router.put(
    "/calls/{call_id}/parts/{part}",
    responses=CALL_ERRORS,
    openapi_extra={"requestBody": {"content": {FRAME: {}}, "required": True}},
    summary="Send one part of a multi-part call (evaluated; results kept; nothing charged)",
)
async def call_part(
    call_id: str, part: int, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    def note(project: str) -> None:
        request.state.audit_project = project

    return await calls.run_part(
        runtime, get_pool(runtime.settings.he), principal, call_id, part, request.stream(), on_project=note
    )


@router.post(
    "/calls/{call_id}/commit",
    response_class=Response,
    responses={200: FRAME_BODY, **CALL_ERRORS},
    summary="Charge a multi-part call once and return all its result ciphertexts",
)
def commit_call(call_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    header, blobs = calls.commit_call(runtime, principal, call_id)
    return Response(frames.encode(header, blobs), media_type=FRAME)


@router.delete("/calls/{call_id}", status_code=204, responses=responses(*ACCESS, Conflict))
def abandon_call(call_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    """Drop an open call and its stored parts (nothing was charged)."""
    calls.abandon_call(runtime, principal, call_id)
    return Response(status_code=204)
