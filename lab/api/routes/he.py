"""Homomorphic computation: parameter sets, public contexts, material, encrypted score and lookup.

Two routers. :data:`router` serves a project's HE work under ``/api/v1/projects/{project}/he/…``
(contexts, the material it may use, plans, calls): the path decides (:data:`~lab.api.deps.ProjectDep`:
a caller who may not know of the project gets ``project-not-found``, as on DP routes), a context or
call of another project is not found, and a ``project`` in a call's JSON body or frame header must
name the path's (``project-mismatch``). :data:`lab_router` serves what is no project's under
``/api/v1/he/…``: the approved parameter sets, the bureau's publication of models and tables, and
the overseers' listing of all of them.

Contexts are uploaded as raw bytes (``application/octet-stream``, bounded by the parameter set's
limit). ``score`` and ``lookup`` take and return an HE frame (``application/vnd.lab.he-frame``,
see ``he_compute.frames``): the request header is the call (context, model or table, records),
the blobs the operator's ciphertexts; the response header is the result's metadata (derived
record, quota, approximation error), the blobs the encrypted results. Bodies may be sent chunked;
the service bounds them by the declared records. A call whose ciphertexts exceed one request body
is opened (``POST …/calls/{op}``), sent in parts (``PUT …/calls/{id}/parts/{k}``, results kept
server-side, nothing charged) and committed once (``POST …/calls/{id}/commit``: one charge, one
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
from lab.api.deps import PrincipalDep, ProjectDep, RuntimeDep, read_body
from lab.api.problems import responses
from lab.errors import (
    BadRequest,
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
from lab.identity import Principal
from lab.runtime import Runtime

router = APIRouter(prefix="/api/v1/projects/{project}/he", tags=["he"])
lab_router = APIRouter(prefix="/api/v1/he", tags=["he"])
FRAME = "application/vnd.lab.he-frame"
ACCESS = (Unauthenticated, Forbidden, NotInGrant, ProjectInactive, ProjectNotFound, NotFound, BadRequest)
WORKER = (HeInputRejected, WorkerCrashed, WorkerMemoryExceeded, WorkerTimeout, WorkerBusy, PayloadTooLarge)
CALL_ERRORS = responses(*ACCESS, *WORKER, ProjectMismatch, QuotaExceeded, Conflict)
FRAME_BODY = {"content": {FRAME: {}}, "description": "an HE frame: JSON header + ciphertexts"}


# -- what is no project's: /api/v1/he/… -----------------------------------------------------------
@lab_router.get("/params", response_model=list[ParamSetOut], responses=responses(Unauthenticated))
def list_params(principal: PrincipalDep) -> list[ParamSetOut]:
    """The approved CKKS parameter sets (the only ones a context may use)."""
    return [ParamSetOut.model_validate(p.describe()) for p in params.APPROVED.values()]


def _no_project(project: str | None, kind: str) -> None:
    """The listings took ``?project=`` before they moved under the project's path: say where they went."""
    if project is not None:
        raise BadRequest(f"a project's {kind} are listed at GET /api/v1/projects/{{project}}/he/{kind}")


#: the retired ``?project=`` of the listings (refused, so that no caller silently gets everything)
Retired = Annotated[str | None, Query(include_in_schema=False)]
LIST_ERRORS = responses(Unauthenticated, Forbidden, BadRequest)


@lab_router.get("/models", response_model=list[ModelOut], responses=LIST_ERRORS)
def list_all_models(principal: PrincipalDep, runtime: RuntimeDep, project: Retired = None) -> list[Any]:
    """Every model (the bureau and auditors; a project's operators: ``/projects/{project}/he/models``)."""
    _no_project(project, "models")
    return manage.listing(runtime, principal, "model", None)


@lab_router.get("/tables", response_model=list[TableOut], responses=LIST_ERRORS)
def list_all_tables(principal: PrincipalDep, runtime: RuntimeDep, project: Retired = None) -> list[Any]:
    """Every statistics table (the bureau and auditors; operators: ``/projects/{project}/he/tables``)."""
    _no_project(project, "tables")
    return manage.listing(runtime, principal, "table", None)


@lab_router.post("/models", response_model=ModelOut, status_code=201, responses=responses(*ACCESS, Conflict))
def publish_model(body: PublishModel, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Publish a model for every project's encrypted scoring (bureau)."""
    return manage.publish_model(runtime, principal, body)


@lab_router.post("/tables", response_model=TableOut, status_code=201, responses=responses(*ACCESS, Conflict))
def publish_table(body: PublishTable, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Publish a statistics table for every project's encrypted lookups (bureau)."""
    return manage.publish_table(runtime, principal, body)


# -- a project's: /api/v1/projects/{project}/he/… -------------------------------------------------
@router.post(
    "/contexts",
    response_model=ContextOut,
    status_code=201,
    responses=responses(*ACCESS, ContextRejected, PayloadTooLarge, *WORKER),
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
    summary="Register a public CKKS context (no secret key; approved parameters)",
)
async def register_context(
    project: ProjectDep, request: Request, principal: PrincipalDep, runtime: RuntimeDep, param_set: str
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
def list_contexts(project: ProjectDep, principal: PrincipalDep, runtime: RuntimeDep) -> list[ContextOut]:
    """Your contexts in the project (the bureau and auditors: everyone's)."""
    return [ContextOut.of(r) for r in manage.list_contexts(runtime, principal, project)]


@router.delete("/contexts/{context_id}", status_code=204, responses=responses(*ACCESS))
def delete_context(
    project: ProjectDep, context_id: str, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    manage.delete_context(runtime, principal, project, context_id)
    return Response(status_code=204)


@router.get("/models", response_model=list[ModelOut], responses=responses(*ACCESS))
def list_models(project: ProjectDep, principal: PrincipalDep, runtime: RuntimeDep) -> list[Any]:
    """Models the project may score with (its own and bureau-published); never their weights."""
    return manage.listing(runtime, principal, "model", project)


@router.get("/tables", response_model=list[TableOut], responses=responses(*ACCESS))
def list_tables(project: ProjectDep, principal: PrincipalDep, runtime: RuntimeDep) -> list[Any]:
    """Statistics tables the project may look up in; never their values."""
    return manage.listing(runtime, principal, "table", project)


@router.post("/plan/{op}", responses=CALL_ERRORS, summary="Dry run of a score or lookup: checks and layout")
def plan(
    project: ProjectDep, op: service.Op, body: service.CallSpec, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return service.plan_call(runtime, principal, op, service.scoped(body, project)).header()


async def _call(
    op: service.Op, project: str, request: Request, principal: Principal, runtime: Runtime
) -> Response:
    pool = get_pool(runtime.settings.he)
    answer, blobs = await service.run(
        runtime, pool, principal, project, op, request.stream(), max_records=pool.limits.max_records
    )
    return Response(frames.encode(answer.header(), blobs), media_type=FRAME)


@router.post(
    "/score",
    response_class=Response,
    responses={200: FRAME_BODY, **CALL_ERRORS},
    openapi_extra={"requestBody": {"content": {FRAME: {}}, "required": True}},
    summary="Score encrypted feature columns with a server-side model",
)
async def score(
    project: ProjectDep, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    return await _call("score", project, request, principal, runtime)


@router.post(
    "/lookup",
    response_class=Response,
    responses={200: FRAME_BODY, **CALL_ERRORS},
    openapi_extra={"requestBody": {"content": {FRAME: {}}, "required": True}},
    summary="Look encrypted one-hot categories up in a DP statistics table",
)
async def lookup(
    project: ProjectDep, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    return await _call("lookup", project, request, principal, runtime)


@router.post(
    "/calls/{op}",
    status_code=201,
    responses=responses(*ACCESS, *WORKER, ProjectMismatch, QuotaExceeded, Conflict, calls.TooManyOpenCalls),
    summary="Open a multi-part score or lookup (at most a few open per caller and per project)",
)
def open_call(
    project: ProjectDep, op: service.Op, body: service.CallSpec, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Every check of a plan; answers the layout with ``call``, ``parts`` and ``part_batches``."""
    limits = get_pool(runtime.settings.he).limits
    return calls.open_call(runtime, principal, op, service.scoped(body, project), limits=limits).header()


@router.put(
    "/calls/{call_id}/parts/{part}",
    responses=CALL_ERRORS,
    openapi_extra={"requestBody": {"content": {FRAME: {}}, "required": True}},
    summary="Send one part of a multi-part call (evaluated; results kept; nothing charged)",
)
async def call_part(
    project: ProjectDep,
    call_id: str,
    part: int,
    request: Request,
    principal: PrincipalDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    pool = get_pool(runtime.settings.he)
    received = await calls.run_part(runtime, pool, principal, project, call_id, part, request.stream())
    return {**received}  # the response's schema stays a plain object


@router.post(
    "/calls/{call_id}/commit",
    response_class=Response,
    responses={200: FRAME_BODY, **CALL_ERRORS},
    summary="Charge a multi-part call once and return all its result ciphertexts",
)
def commit_call(project: ProjectDep, call_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    answer, blobs = calls.commit_call(runtime, principal, project, call_id)
    return Response(frames.encode(answer.header(), blobs), media_type=FRAME)


@router.delete("/calls/{call_id}", status_code=204, responses=responses(*ACCESS, Conflict))
def abandon_call(project: ProjectDep, call_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    """Drop an open call and its stored parts (nothing was charged)."""
    calls.abandon_call(runtime, principal, project, call_id)
    return Response(status_code=204)
