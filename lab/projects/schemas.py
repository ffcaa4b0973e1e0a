"""Request and response shapes of the projects capability (pydantic; apart from the table models).

The API, the web pages and the CLI share them: ``ApplicationIn`` / ``ResubmitIn`` / ``ReviewIn`` /
``MembersIn`` / ``CheckIn`` in, ``ProjectOut`` / ``ProjectSummary`` / ``BudgetReport`` / ``CheckOut`` out.
Channel requests stay plain mappings here: :mod:`lab.projects.grants` validates them against each
dataset's policy with messages naming the dataset, channel, field and cap.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from lab.projects.errors import InvalidProject

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")]
DatasetId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,62}$")]
ChannelRequests = dict[Literal["dp", "psi", "he"], dict[str, Any] | None]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationIn(_In):
    """A project application (article 18: purpose, datasets, operations and budgets it needs)."""

    title: str = Field(min_length=3, max_length=200)
    purpose: str = Field(min_length=10, max_length=4000, description="what the project is for")
    scenario: str = Field(min_length=3, max_length=4000, description="application scenario (应用场景)")
    organization: str = Field(min_length=2, max_length=200, description="the authorized operating entity")
    contact: str = Field(min_length=3, max_length=200, description="contact person, phone or e-mail")
    members: list[Username] = Field(
        default_factory=list, max_length=50, description="operators; the applicant is always a member"
    )
    datasets: dict[DatasetId, ChannelRequests] = Field(
        min_length=1, max_length=20, description="dataset -> channel -> requested limits"
    )
    days: int = Field(90, ge=1, le=3650, description="requested duration in days")
    commitment: str = Field(
        min_length=10, max_length=8000, description="the signed security commitment (承诺) text"
    )


class ResubmitIn(_In):
    """Changes made after a reviewer asked for them; omitted fields stay as they were."""

    title: str | None = Field(None, min_length=3, max_length=200)
    purpose: str | None = Field(None, min_length=10, max_length=4000)
    scenario: str | None = Field(None, min_length=3, max_length=4000)
    organization: str | None = Field(None, min_length=2, max_length=200)
    contact: str | None = Field(None, min_length=3, max_length=200)
    datasets: dict[DatasetId, ChannelRequests] | None = Field(None, min_length=1, max_length=20)
    days: int | None = Field(None, ge=1, le=3650)
    commitment: str | None = Field(None, min_length=10, max_length=8000)
    note: str = Field("", max_length=4000, description="what changed, for the reviewers")


class ReviewIn(_In):
    """A reviewer's decision. ``grants`` reduces the request (dataset/channel -> null drops it)."""

    decision: Literal["approve", "reject", "changes"]
    reason: str = Field("", max_length=4000)
    grants: dict[DatasetId, dict[str, dict[str, Any] | None] | None] | None = None
    days: int | None = Field(None, ge=1, le=3650, description="a shorter term than requested")


class ReasonIn(_In):
    reason: str = Field("", max_length=4000)


class MembersIn(_In):
    users: list[Username] = Field(min_length=1, max_length=50)
    reason: str = Field("", max_length=4000)


class CheckParams(_In):
    """The parameters :func:`lab.projects.access.authorize` recognizes, typed (a quota of ``"abc"``
    or a set size given as text is a 422 here, not a failure inside the access decision)."""

    epsilon: Decimal | None = Field(None, ge=0, le=100, decimal_places=20)
    delta: Decimal | None = Field(None, ge=0, lt=1, decimal_places=20)
    mode: str | None = Field(None, max_length=32)
    column: str | None = Field(None, max_length=64)
    set_size: int | None = Field(None, ge=0, le=10**9)
    model: str | None = Field(None, max_length=128)
    table: str | None = Field(None, max_length=128)
    units: int | None = Field(None, ge=0, le=10**9)


class CheckIn(_In):
    """The authorize question: may I do ``operation`` on ``dataset`` through ``channel`` with ``params``?"""

    dataset: DatasetId
    channel: Literal["dp", "psi", "he"]
    operation: str = Field("query", min_length=1, max_length=32)
    params: CheckParams = Field(default_factory=CheckParams)


class MemberOut(BaseModel):
    username: str
    added_at: dt.datetime
    removed_at: dt.datetime | None = None


class BudgetOut(BaseModel):
    """A project's privacy budget on one dataset; exact decimal strings."""

    dataset: str
    epsilon_total: str
    epsilon_spent: str
    epsilon_remaining: str
    delta_total: str
    delta_spent: str
    delta_remaining: str
    spends: int
    fraction_spent: str = Field(description="ε spent / ε total, 4 decimals")
    dataset_epsilon_lifetime: str | None = Field(
        None,
        description="the dataset account's lifetime ε per person (shared by every project); None if open",
    )
    dataset_epsilon_allowance: str | None = Field(
        None, description="the dataset account's ε allowance for the current period; None if open"
    )
    dataset_epsilon_remaining: str | None = Field(
        None,
        description="ε left on the dataset's account (the smaller of lifetime and this period); None if open",
    )
    dataset_delta_remaining: str | None = None
    dataset_period: str | None = Field(None, description="the account's current period, e.g. 2026")
    dataset_composition: str | None = Field(
        None, description="the account's composition rule for its life: basic or zcdp; None if open"
    )
    binding: str = Field("project", description="which limit binds the next release: project or dataset")


class UsageOut(BaseModel):
    dataset: str
    channel: str
    period: str
    used: int


class BudgetReport(BaseModel):
    project: str
    budgets: list[BudgetOut]
    usage: list[UsageOut]


class EventOut(BaseModel):
    id: int
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    reason: str
    details: dict[str, Any]
    at: dt.datetime
    ledger_index: int


class ApprovalsOut(BaseModel):
    """Approvals collected in the current review round."""

    required: int
    by: list[str]
    changes: list[dict[str, Any]] = []  # changes under review that voided approvals (see review.py)


class ProjectSummary(BaseModel):
    id: str
    title: str
    organization: str
    applicant: str
    status: str
    serving: bool
    datasets: list[str]
    created_at: dt.datetime
    ends_at: dt.datetime | None


class ProjectOut(ProjectSummary):
    purpose: str
    scenario: str
    contact: str
    requested_days: int
    requested: dict[str, Any]
    commitment: str
    commitment_signed_by: str
    updated_at: dt.datetime
    starts_at: dt.datetime | None
    disposed_at: dt.datetime | None
    members: list[MemberOut]
    grants: dict[str, Any]
    budgets: list[BudgetOut]
    approvals: ApprovalsOut
    hub_synced: bool
    events: list[EventOut]


class CheckOut(BaseModel):
    allowed: Literal[True] = True
    project: str
    dataset: str
    version: int
    channel: str
    operation: str
    limits: dict[str, Any]
    remaining: dict[str, str] | None = None
    quota: dict[str, int] | None = None


def parse(model: type[_In], data: Any, what: str) -> Any:
    """Validate ``data`` (e.g. a YAML file's content) as ``model``; errors name the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InvalidProject(f"{what}: {field}: {first['msg']}", field=field) from None
