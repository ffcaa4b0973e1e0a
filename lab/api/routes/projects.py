"""Projects: apply, review, resubmit, suspend, resume, end, members, budgets, and the authorize question.

Thin: each route parses, calls :class:`lab.projects.workflow.ProjectWorkflow` and returns its schema.
Others' projects answer 404 (never 403), so a project id is not confirmed to non-members.
The router's lifespan runs the periodic project sweep (``settings.projects.sweep_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Body, FastAPI, Path, Query

from lab.api.deps import PrincipalDep, RuntimeDep
from lab.api.problems import responses
from lab.errors import (
    BadRequest,
    BudgetExhausted,
    Conflict,
    DatasetNotFound,
    Forbidden,
    InvalidTransition,
    NotInGrant,
    ProjectInactive,
    ProjectNotFound,
    QuotaExceeded,
    Unauthenticated,
)
from lab.projects.errors import InvalidProject, SelfReview
from lab.projects.models import ProjectStatus
from lab.projects.schemas import (
    ApplicationIn,
    BudgetReport,
    CheckIn,
    CheckOut,
    MembersIn,
    ProjectOut,
    ProjectSummary,
    ReasonIn,
    ResubmitIn,
    ReviewIn,
)
from lab.projects.sweep import run_periodically
from lab.projects.workflow import ProjectWorkflow


@asynccontextmanager
async def _sweeper(app: FastAPI) -> AsyncIterator[None]:
    seconds = app.state.runtime.settings.projects.sweep_seconds
    stop = asyncio.Event()
    task = asyncio.create_task(run_periodically(app.state.runtime, seconds, stop)) if seconds > 0 else None
    try:
        yield
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task


router = APIRouter(prefix="/api/v1/projects", tags=["projects"], lifespan=_sweeper)
AUTH = (Unauthenticated, Forbidden)
READ = responses(*AUTH, ProjectNotFound)
ACT = responses(*AUTH, ProjectNotFound, InvalidTransition)
Id = Annotated[str, Path(max_length=32, description="project id")]
NoReason = Body(default=None)


@router.post(
    "",
    response_model=ProjectOut,
    status_code=201,
    responses=responses(*AUTH, InvalidProject),
    summary="Apply for a project (operators)",
)
def apply(application: ApplicationIn, principal: PrincipalDep, runtime: RuntimeDep) -> ProjectOut:
    """Refused at once (400 ``invalid-project``) if any request exceeds a dataset policy's caps."""
    return ProjectWorkflow(runtime).apply(principal, application)


@router.get("", response_model=list[ProjectSummary], responses=responses(*AUTH), summary="List projects")
def list_projects(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    status: ProjectStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[ProjectSummary]:
    """The caller's projects (as applicant or member); every project for the bureau and auditors."""
    return ProjectWorkflow(runtime).list(principal, status.value if status else None, limit)


@router.get("/{project_id}", response_model=ProjectOut, responses=READ, summary="One project")
def get_project(project_id: Id, principal: PrincipalDep, runtime: RuntimeDep) -> ProjectOut:
    """Members, grant, budgets, approvals so far and every event."""
    return ProjectWorkflow(runtime).get(principal, project_id)


@router.post(
    "/{project_id}/review",
    response_model=ProjectOut,
    responses=responses(*AUTH, SelfReview, ProjectNotFound, InvalidProject, InvalidTransition, Conflict),
    summary="Review an application (bureau)",
)
def review(project_id: Id, decision: ReviewIn, principal: PrincipalDep, runtime: RuntimeDep) -> ProjectOut:
    """``approve`` (``grants``/``days`` may only reduce), ``reject`` or ``changes`` (both need a reason)."""
    return ProjectWorkflow(runtime).review(principal, project_id, decision)


@router.post(
    "/{project_id}/resubmit",
    response_model=ProjectOut,
    responses=responses(*AUTH, ProjectNotFound, InvalidProject, InvalidTransition),
    summary="Resubmit after changes were requested",
)
def resubmit(project_id: Id, changes: ResubmitIn, principal: PrincipalDep, runtime: RuntimeDep) -> ProjectOut:
    return ProjectWorkflow(runtime).resubmit(principal, project_id, changes)


@router.post("/{project_id}/suspend", response_model=ProjectOut, responses=ACT, summary="Suspend (bureau)")
def suspend(
    project_id: Id, principal: PrincipalDep, runtime: RuntimeDep, body: ReasonIn | None = NoReason
) -> ProjectOut:
    """Serve nothing until resumed; the data stays; members lose Hub access at once."""
    return ProjectWorkflow(runtime).suspend(principal, project_id, body.reason if body else "")


@router.post("/{project_id}/resume", response_model=ProjectOut, responses=ACT, summary="Resume (bureau)")
def resume(
    project_id: Id, principal: PrincipalDep, runtime: RuntimeDep, body: ReasonIn | None = NoReason
) -> ProjectOut:
    return ProjectWorkflow(runtime).resume(principal, project_id, body.reason if body else "")


@router.post(
    "/{project_id}/end", response_model=ProjectOut, responses=ACT, summary="End and dispose (bureau)"
)
def end(
    project_id: Id, principal: PrincipalDep, runtime: RuntimeDep, body: ReasonIn | None = NoReason
) -> ProjectOut:
    """Access is revoked and the project's cohorts, keys and working objects are deleted."""
    return ProjectWorkflow(runtime).end(principal, project_id, body.reason if body else "")


@router.post(
    "/{project_id}/members",
    response_model=ProjectOut,
    responses=responses(*AUTH, ProjectNotFound, InvalidTransition),
    summary="Add members",
)
def add_members(project_id: Id, body: MembersIn, principal: PrincipalDep, runtime: RuntimeDep) -> ProjectOut:
    """The applicant while the application is pending; the bureau at any time before the project ends."""
    return ProjectWorkflow(runtime).add_members(principal, project_id, body.users, body.reason)


@router.delete(
    "/{project_id}/members",
    response_model=ProjectOut,
    responses=responses(*AUTH, BadRequest, ProjectNotFound, InvalidTransition),
    summary="Remove members",
)
def remove_members(
    project_id: Id, body: MembersIn, principal: PrincipalDep, runtime: RuntimeDep
) -> ProjectOut:
    """Their Hub access ends at once (and their server stops if no other project serves them)."""
    return ProjectWorkflow(runtime).remove_members(principal, project_id, body.users, body.reason)


@router.get("/{project_id}/budget", response_model=BudgetReport, responses=READ, summary="Budgets and quotas")
def budget(project_id: Id, principal: PrincipalDep, runtime: RuntimeDep) -> BudgetReport:
    """Per dataset: ε/δ total, spent and remaining (exact decimal strings); quota counters."""
    return ProjectWorkflow(runtime).budget(principal, project_id)


@router.post(
    "/{project_id}/check",
    response_model=CheckOut,
    responses=responses(
        *AUTH,
        BadRequest,
        NotInGrant,
        ProjectInactive,
        ProjectNotFound,
        DatasetNotFound,
        BudgetExhausted,
        QuotaExceeded,
    ),
    summary="May I? (the authorize answer a channel would get)",
)
def check(project_id: Id, question: CheckIn, principal: PrincipalDep, runtime: RuntimeDep) -> CheckOut:
    """200 with the limits, remaining budget and quota if allowed; otherwise the channel's refusal."""
    return ProjectWorkflow(runtime).check(principal, project_id, question)
