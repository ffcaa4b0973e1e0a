"""DP channel: queries, previews, table releases, model training, and the project's DP artifacts.

Heavy handlers are admitted (:mod:`lab.api.admission`), then the service runs in the admission
pool's thread and computes in its worker processes; the service commits before returning, so a
result never leaves the server unless its charge, derived record and ledger entry are committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from lab.api.admission import Admission
from lab.api.deps import PrincipalDep, RuntimeDep
from lab.api.problems import responses
from lab.catalog.service import CatalogReader
from lab.catalog.visibility import exact_for, shown_size
from lab.dp import service, training
from lab.dp.plan import estimated_cost, plan_query
from lab.dp.schemas import ModelOut, PreviewOut, QueryOut, TableOut
from lab.dp.spec import QuerySpec, TableSpec, TrainSpec
from lab.dp.workers import Offload
from lab.errors import (
    BudgetExhausted,
    Busy,
    DatasetNotFound,
    Forbidden,
    InvalidQuery,
    NotFound,
    NotInGrant,
    PrivacyLeak,
    ProjectInactive,
    ProjectNotFound,
    Unauthenticated,
)
from lab.identity import Principal
from lab.runtime import Runtime

router = APIRouter(prefix="/api/v1/projects/{project}/dp", tags=["dp"])
RUN_ERRORS = responses(
    Busy,
    InvalidQuery,
    Unauthenticated,
    Forbidden,
    NotInGrant,
    ProjectInactive,
    NotFound,
    DatasetNotFound,
    BudgetExhausted,
)
TRAIN_ERRORS = {**RUN_ERRORS, **responses(PrivacyLeak)}  # a library's leak warning: refused, not released
READ_ERRORS = responses(Unauthenticated, Forbidden, ProjectNotFound)


def admission(request: Request) -> Admission:
    """The app's admission control (created on first use; see :mod:`lab.api.admission`)."""
    adm: Admission | None = getattr(request.app.state, "admission", None)
    if adm is None:
        adm = request.app.state.admission = Admission(request.app.state.runtime.settings.admission)
    return adm


def _cost(runtime: Runtime, principal: Principal, spec: QuerySpec | TrainSpec) -> float:
    """Estimated engine work of ``spec`` on the dataset's current version (a bad spec raises its 4xx).

    The size is the one ``principal`` may see (:mod:`lab.catalog.visibility`): admission refuses a
    request whose cost pushes the in-flight total past a limit, so an operator who times two of its
    own requests against each other would otherwise read the exact size of a non-open dataset off
    the ``busy`` answers, to about 1/F for F features.
    """
    with runtime.reading() as session:
        version = CatalogReader(session).get(spec.dataset)
    rows = version.row_count
    if not exact_for(principal, version.policy):
        key = runtime.settings.encryption_key
        rows = shown_size(rows, version.entity_count, key, version.dataset, version.version)
    if isinstance(spec, TrainSpec):
        return float(rows * (len(spec.features) + 1))
    return estimated_cost(plan_query(spec, version.policy), rows)


R = TypeVar("R")


async def _heavy(
    request: Request,
    runtime: Runtime,
    principal: Principal,
    project: str,
    spec: Any,
    fn: Callable[[Offload], R],
) -> R:
    """Admit, then run ``fn(offload)`` in the heavy pool; its compute goes to the worker processes."""
    adm = admission(request)
    target = spec.as_query() if isinstance(spec, TableSpec) else spec
    cost = await run_in_threadpool(_cost, runtime, principal, target)  # light: a catalog read and a plan
    with adm.admit(principal.name, project, cost):
        return await adm.run(lambda: fn(adm.workers))


@router.post("/query", response_model=QueryOut, responses=RUN_ERRORS, summary="Run a DP query (charged)")
async def query(
    request: Request, project: str, spec: QuerySpec, principal: PrincipalDep, runtime: RuntimeDep
) -> QueryOut:
    return await _heavy(
        request,
        runtime,
        principal,
        project,
        spec,
        lambda w: service.query(runtime, principal, project, spec, offload=w),
    )


@router.post(
    "/preview",
    response_model=PreviewOut,
    responses=RUN_ERRORS,
    summary="Cost and error bounds of a query (free)",
)
async def preview(
    request: Request,
    project: str,
    spec: QuerySpec,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    assumed_count: Annotated[int | None, Query(ge=1, le=10**10)] = None,
) -> PreviewOut:
    return await _heavy(
        request,
        runtime,
        principal,
        project,
        spec,
        lambda _: service.preview(runtime, principal, project, spec, assumed_count),
    )


@router.post(
    "/tables",
    response_model=TableOut,
    status_code=201,
    responses=RUN_ERRORS,
    summary="Release a DP statistics table",
)
async def release_table(
    request: Request, project: str, spec: TableSpec, principal: PrincipalDep, runtime: RuntimeDep
) -> TableOut:
    return await _heavy(
        request,
        runtime,
        principal,
        project,
        spec,
        lambda w: service.release_table(runtime, principal, project, spec, offload=w),
    )


@router.post(
    "/train", response_model=ModelOut, status_code=201, responses=TRAIN_ERRORS, summary="Train a DP model"
)
async def train(
    request: Request, project: str, spec: TrainSpec, principal: PrincipalDep, runtime: RuntimeDep
) -> ModelOut:
    return await _heavy(
        request,
        runtime,
        principal,
        project,
        spec,
        lambda w: training.train(runtime, principal, project, spec, offload=w),
    )


@router.get(
    "/models", response_model=list[ModelOut], responses=READ_ERRORS, summary="The project's DP models"
)
def models(project: str, principal: PrincipalDep, runtime: RuntimeDep) -> list[ModelOut]:
    with runtime.transaction() as session:
        return training.list_models(session, principal, project)


@router.get(
    "/tables", response_model=list[TableOut], responses=READ_ERRORS, summary="The project's DP tables"
)
def tables(project: str, principal: PrincipalDep, runtime: RuntimeDep) -> list[TableOut]:
    with runtime.transaction() as session:
        return service.list_tables(session, principal, project)
