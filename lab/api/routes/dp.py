"""DP channel: queries, previews, table releases, model training, and the project's DP artifacts.

Each handler opens its own transaction and commits it before returning, so a result never
leaves the server unless its charge, derived record and ledger entry are committed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from lab.api.deps import PrincipalDep, RuntimeDep
from lab.api.problems import responses
from lab.dp import service, training
from lab.dp.schemas import ModelOut, PreviewOut, QueryOut, TableOut
from lab.dp.spec import QuerySpec, TableSpec, TrainSpec
from lab.errors import (
    BudgetExhausted,
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

router = APIRouter(prefix="/api/v1/projects/{project}/dp", tags=["dp"])
RUN_ERRORS = responses(
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


@router.post("/query", response_model=QueryOut, responses=RUN_ERRORS, summary="Run a DP query (charged)")
def query(project: str, spec: QuerySpec, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.transaction() as session:
        return service.query(runtime, session, principal, project, spec)


@router.post(
    "/preview",
    response_model=PreviewOut,
    responses=RUN_ERRORS,
    summary="Cost and error bounds of a query (free)",
)
def preview(
    project: str,
    spec: QuerySpec,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    assumed_count: Annotated[int | None, Query(ge=1, le=10**10)] = None,
) -> dict[str, Any]:
    with runtime.transaction() as session:
        return service.preview(runtime, session, principal, project, spec, assumed_count)


@router.post(
    "/tables",
    response_model=TableOut,
    status_code=201,
    responses=RUN_ERRORS,
    summary="Release a DP statistics table",
)
def release_table(
    project: str, spec: TableSpec, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    with runtime.transaction() as session:
        return service.release_table(runtime, session, principal, project, spec)


@router.post(
    "/train", response_model=ModelOut, status_code=201, responses=TRAIN_ERRORS, summary="Train a DP model"
)
def train(project: str, spec: TrainSpec, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.transaction() as session:
        return training.train(runtime, session, principal, project, spec)


@router.get(
    "/models", response_model=list[ModelOut], responses=READ_ERRORS, summary="The project's DP models"
)
def models(project: str, principal: PrincipalDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    with runtime.transaction() as session:
        return training.list_models(session, principal, project)


@router.get(
    "/tables", response_model=list[TableOut], responses=READ_ERRORS, summary="The project's DP tables"
)
def tables(project: str, principal: PrincipalDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    with runtime.transaction() as session:
        return service.list_tables(session, principal, project)
