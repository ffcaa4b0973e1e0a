"""The one access decision every channel calls, and the one atomic way to charge for a result.

Grant limits per dataset (``GrantRow.limits``)::

    {"dp":  {"epsilon": "1.0", "delta": "0", "epsilon_per_query": "0.5", "delta_per_query": "0"},
     "psi": {"modes": ["intersection"], "columns": ["uscc"], "quota": 20},
     "he":  {"models": ["m-1"], "tables": ["income_by_town"], "record_quota": 10000}}

:func:`authorize` checks the caller, the project's state and term, the grant and the dataset's
policy, and (as a pre-check) the remaining budget, the dataset's privacy-loss account and quota.
:func:`commit_result` runs in the same transaction that returns the result: it locks the budget
row and the dataset's account row (:mod:`lab.budgets.accounts`), checks again, debits both, counts
usage, writes the derived record and appends its ledger entry, so that concurrent requests
can never overspend either and no result exists without its charge.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar, overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.budgets import Budget, accounts
from lab.catalog.policy import AccountPolicy, Policy
from lab.catalog.service import CatalogReader, DatasetVersion
from lab.db.base import utcnow
from lab.errors import (
    BadRequest,
    BudgetExhausted,
    Forbidden,
    NotInGrant,
    ProjectInactive,
    ProjectMismatch,
    ProjectNotFound,
    QuotaExceeded,
)
from lab.identity import Principal, Role
from lab.ledger import Ledger
from lab.projects.models import BudgetRow, GrantRow, ProjectMemberRow, ProjectRow, ProjectStatus, UsageRow
from lab.projects.typed_grants import DpGrant, Grant, HeGrant, PsiGrant, grant_of
from lab.records.models import DerivedRecordRow

Channel = Literal["dp", "psi", "he"]


@dataclass(frozen=True)
class Ask:
    """What a call asks of the generic access rules: a DP spend and the quota units it consumes.

    ``cost`` is a DP spend (checked against the per-query caps, the budget and the dataset's
    account; required by the DP channel, whose zero or missing cost is refused); ``gaussian`` when
    the whole release is one Gaussian mechanism (accounted by RDP on the dataset account); ``units``
    are quota units (PSI runs, HE records). A channel's own parameters are its typed part, checked
    by its :data:`ParamCheck`.

    >>> Ask.spend("0.5")
    Ask(cost=Budget(epsilon=Decimal('0.5'), delta=Decimal('0')), gaussian=False, units=0)
    >>> Ask(units=3).cost is None
    True
    """

    cost: Budget | None = None
    gaussian: bool = False
    units: int = 0

    @classmethod
    def spend(cls, epsilon: Any, delta: Any = 0, *, gaussian: bool = False, units: int = 0) -> Ask:
        """A DP spend of (``epsilon``, ``delta``), parsed exactly (:meth:`Budget.of`)."""
        return cls(Budget.of(epsilon, delta), gaussian, units)


@dataclass(frozen=True)
class Access:
    """A granted access: who, which project, which dataset version, under which limits."""

    principal: Principal
    project: ProjectRow
    dataset: DatasetVersion
    channel: Channel
    operation: str
    limits: dict[str, Any]
    ask: Ask = Ask()

    @property
    def policy(self) -> Policy:
        return self.dataset.policy

    @property
    def grant(self) -> Grant:
        """The channel's grant on the dataset, typed (``limits`` is its stored JSON)."""
        return grant_of(self.channel, self.limits)


#: Roles that may see and read every project.
OVERSEERS = (Role.bureau, Role.auditor)


def load_project(session: Session, project_id: str, *, lock: bool = False) -> ProjectRow:
    """The project (for callers that decided access already); :class:`ProjectNotFound` if unknown."""
    project = load_project_or_none(session, project_id, lock=lock)
    if project is None:
        raise ProjectNotFound(f"no project {project_id}")
    return project


def visible_project(
    session: Session, principal: Principal, project_id: str, *, lock: bool = False
) -> ProjectRow:
    """The project if ``principal`` may know of it: the bureau, auditors, its applicant, its members.

    Anyone else gets :class:`ProjectNotFound` with the same message whether the project exists or
    not, so a project id is never an existence oracle. Every lookup of a caller-named project goes
    through here (channels, project pages, products, HE material).
    """
    project = load_project_or_none(session, project_id, lock=lock) if len(project_id) <= 32 else None
    if project is not None and (
        principal.has(*OVERSEERS)
        or project.applicant == principal.name
        or is_member(session, project.id, principal.name)
    ):
        return project
    raise ProjectNotFound(f"no project {project_id}")


def same_project(path: str, named: str | None, where: str) -> str:
    """The route's project ``path``, refusing a ``named`` other one (what a body, envelope or frame
    header ``where`` says) with :class:`ProjectMismatch`: a channel's path is authoritative.

    >>> same_project("p1", None, "the body")
    'p1'
    >>> same_project("p1", "p2", "the body")
    Traceback (most recent call last):
    ...
    lab.errors.ProjectMismatch: the body names project 'p2', the path 'p1'
    """
    if named is not None and named != path:
        raise ProjectMismatch(f"{where} names project {named!r}, the path {path!r}")
    return path


def load_project_or_none(session: Session, project_id: str, *, lock: bool = False) -> ProjectRow | None:
    q = select(ProjectRow).where(ProjectRow.id == project_id)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)  # never a stale row
    return session.execute(q).scalar_one_or_none()


def is_member(session: Session, project_id: str, username: str) -> bool:
    """Is ``username`` a current member of ``project_id``?"""
    return (
        session.execute(
            select(ProjectMemberRow.id).where(
                ProjectMemberRow.project_id == project_id,
                ProjectMemberRow.username == username,
                ProjectMemberRow.removed_at.is_(None),
            )
        ).first()
        is not None
    )


def member_projects(session: Session, username: str) -> set[str]:
    """The projects ``username`` is a current member of."""
    q = select(ProjectMemberRow.project_id).where(
        ProjectMemberRow.username == username, ProjectMemberRow.removed_at.is_(None)
    )
    return set(session.execute(q).scalars())


def may_read(session: Session, principal: Principal, project_id: str) -> bool:
    """May ``principal`` read what project ``project_id`` holds (its artifacts, records, ledger
    entries)? The bureau and auditors may read every project, members their own; the applicant
    alone may see the project (:func:`visible_project`) but not read its results."""
    return principal.has(*OVERSEERS) or is_member(session, project_id, principal.name)


def readable_project(
    session: Session, principal: Principal, project_id: str, *, lock: bool = False
) -> ProjectRow:
    """The project if ``principal`` may read it (:func:`may_read`).

    Whoever may not even know of it gets :class:`ProjectNotFound` (:func:`visible_project`, the
    existence oracle stays closed); whoever may know of it but not read it gets :class:`Forbidden`.
    """
    project = visible_project(session, principal, project_id, lock=lock)
    if not may_read(session, principal, project_id):
        raise Forbidden(f"{principal.name} is not a member of project {project_id}")
    return project


def operated_project(
    session: Session, principal: Principal, project_id: str, *, lock: bool = False
) -> ProjectRow:
    """The project if ``principal`` is an operator and a member of it (who runs its channels).

    As :func:`readable_project`: :class:`ProjectNotFound` for whoever may not know of it,
    :class:`Forbidden` for everyone else who is not an operator member.
    """
    project = visible_project(session, principal, project_id, lock=lock)
    if not (principal.has(Role.operator) and is_member(session, project_id, principal.name)):
        raise Forbidden(f"{principal.name} is not an operator member of project {project_id}")
    return project


def check_serving(project: ProjectRow, now: dt.datetime | None = None) -> None:
    """Raise :class:`ProjectInactive` unless the project is active and within its term."""
    now = now or utcnow()
    if project.status != ProjectStatus.active:
        raise ProjectInactive(f"project {project.id} is {project.status}", project_status=project.status)
    if project.ends_at is not None and now >= project.ends_at:
        raise ProjectInactive(
            f"project {project.id} expired on {project.ends_at.date()}", project_status="expired"
        )


def _budget(session: Session, project_id: str, dataset: str, *, lock: bool) -> BudgetRow | None:
    q = select(BudgetRow).where(BudgetRow.project_id == project_id, BudgetRow.dataset_id == dataset)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)  # never a stale row
    return session.execute(q).scalar_one_or_none()


def remaining(row: BudgetRow) -> Budget:
    return Budget.of(row.epsilon_total, row.delta_total) - Budget.of(row.epsilon_spent, row.delta_spent)


def _usage(
    session: Session, project_id: str, dataset: str, channel: str, period: str, *, lock: bool
) -> UsageRow | None:
    q = select(UsageRow).where(
        UsageRow.project_id == project_id,
        UsageRow.dataset_id == dataset,
        UsageRow.channel == channel,
        UsageRow.period == period,
    )
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)  # never a stale row
    return session.execute(q).scalar_one_or_none()


def quota_period(channel: Channel, now: dt.datetime | None = None) -> str:
    """PSI quotas count requests per UTC day; HE quotas count records over the project's life."""
    return (now or utcnow()).date().isoformat() if channel == "psi" else "total"


def quota_limit(access: Access) -> int | None:
    """The smaller of the grant's and the policy's quota (PSI: runs per day; HE: records)."""
    grant, channels = access.grant, access.policy.channels
    if isinstance(grant, PsiGrant):
        caps = [grant.quota, channels.psi.daily_quota if channels.psi else None]
    elif isinstance(grant, HeGrant):
        caps = [grant.record_quota, channels.he.record_quota if channels.he else None]
    else:
        return None
    given = [q for q in caps if q]
    return min(given) if given else None


def per_query_cap(access: Access) -> Budget:
    """The most one DP spend may cost: the smaller of the grant's and the policy's per-query caps."""
    dp = access.policy.channels.dp
    grant = access.grant if isinstance(access.grant, DpGrant) else DpGrant.of({})  # PSI cohort: policy's
    eps = [Decimal(str(x)) for x in (grant.epsilon_per_query, dp.epsilon_per_query if dp else None) if x]
    dl = [
        Decimal(str(x)) for x in (grant.delta_per_query, dp.delta_per_query if dp else None) if x is not None
    ]
    return Budget(min(eps) if eps else Decimal(0), min(dl) if dl else Decimal(0))


#: A channel's typed parameters (``psi_service.access.PsiParams``, ``he_compute.access.HeParams``;
#: ``None`` for DP, whose parameters are all in the :class:`Ask`).
P = TypeVar("P")

#: A channel's own parameter rules (``psi_service.access``, ``he_compute.access``), given the
#: :class:`Access` under construction and the channel's typed parameters: raise a
#: :class:`~lab.errors.LabError` to refuse.
ParamCheck = Callable[[Access, P], None]


def no_channel_params(access: Access, params: None) -> None:
    """The :data:`ParamCheck` of a channel whose parameters are all generic (DP: ε, δ)."""


def _check_cost(session: Session, access: Access, ask: Ask) -> None:
    if access.channel == "dp" or ask.cost is not None:
        cost = ask.cost or Budget.zero()
        if cost.epsilon <= 0:
            raise BadRequest("epsilon must be positive")
        cap = per_query_cap(access)
        if not cost.fits_within(cap):
            raise NotInGrant(
                f"{cost} exceeds the per-query cap {cap} on {access.dataset.dataset}",
                per_query_cap=cap.as_strings(),
            )
        row = _budget(session, access.project.id, access.dataset.dataset, lock=False)
        if row is None:
            raise NotInGrant(f"project {access.project.id} has no privacy budget on {access.dataset.dataset}")
        left = remaining(row)
        if not cost.fits_within(left):
            raise BudgetExhausted(f"{cost} exceeds the remaining budget {left}", remaining=left.as_strings())
        accounts.check(
            session,
            access.dataset.dataset,
            account_of(access.policy, access.dataset.dataset),  # authorize read the current version
            cost,
            gaussian=ask.gaussian,
        )


def _check_quota(session: Session, access: Access, ask: Ask) -> None:
    units = ask.units
    limit = quota_limit(access)
    if units and limit is not None:
        row_u = _usage(
            session,
            access.project.id,
            access.dataset.dataset,
            access.channel,
            quota_period(access.channel),
            lock=False,
        )
        used = row_u.used if row_u else 0
        if used + units > limit:
            raise QuotaExceeded(
                f"{access.channel} quota on {access.dataset.dataset} is {limit}; {used} used",
                quota=limit,
                used=used,
            )


def dataset_account(session: Session, dataset: str) -> AccountPolicy | None:
    """The privacy-loss account the dataset's current policy declares (None for open datasets).

    A non-open dataset whose stored policy predates accounts has none: its charged releases are
    refused until the steward imports a version that declares one (fail closed).
    """
    return account_of(CatalogReader(session).get(dataset).policy, dataset)


def account_of(policy: Policy, dataset: str) -> AccountPolicy | None:
    """``policy``'s account; refuses a non-open policy without one (see :func:`dataset_account`)."""
    if policy.needs_account and policy.account is None:
        raise BudgetExhausted(
            f"dataset {dataset} has no privacy-loss account; "
            "the steward must import a policy version that declares one",
            account={"kind": "dataset", "dataset": dataset, "scope": "missing"},
        )
    return policy.account


@overload
def authorize(
    session: Session,
    principal: Principal,
    project_id: str,
    dataset: str,
    channel: Channel,
    operation: str,
    ask: Ask = ...,
    *,
    check: ParamCheck[None],
    params: None = None,
) -> Access: ...


@overload
def authorize(
    session: Session,
    principal: Principal,
    project_id: str,
    dataset: str,
    channel: Channel,
    operation: str,
    ask: Ask = ...,
    *,
    check: ParamCheck[P],
    params: P,
) -> Access: ...


def authorize(
    session: Session,
    principal: Principal,
    project_id: str,
    dataset: str,
    channel: Channel,
    operation: str,
    ask: Ask = Ask(),
    *,
    check: ParamCheck[Any],
    params: Any = None,
) -> Access:
    """May ``principal`` do ``operation`` on ``dataset`` via ``channel`` in ``project_id``, asking ``ask``?

    The checks every channel shares live here: membership, the project's state, the grant, the
    policy, and the generic :class:`Ask` — its ``cost`` (a DP spend; ``gaussian`` when the whole
    release is one Gaussian mechanism, its ρ on a zCDP dataset account) and ``units`` (quota
    units this call will consume). The channel's own typed ``params`` (PSI's mode, column and set
    size; HE's model or table; none for DP) are checked by the channel's ``check`` (required: a
    caller cannot forget it), given the :class:`Access` under construction. Raises a
    :class:`~lab.errors.LabError` subclass when the answer is no; returns the :class:`Access` otherwise.
    """
    project = operated_project(session, principal, project_id)
    check_serving(project)
    grant = session.execute(
        select(GrantRow).where(GrantRow.project_id == project_id, GrantRow.dataset_id == dataset)
    ).scalar_one_or_none()
    if grant is None:
        raise NotInGrant(f"dataset {dataset} is not in project {project_id}'s grant")
    limits = (grant.limits or {}).get(channel)
    if limits is None:
        raise NotInGrant(f"channel {channel} is not granted on {dataset} in project {project_id}")
    version = CatalogReader(session).get(dataset)
    if getattr(version.policy.channels, channel) is None:
        raise NotInGrant(f"the policy of {dataset} does not open the {channel} channel")
    access = Access(principal, project, version, channel, operation, limits, ask)
    _check_cost(session, access, ask)
    check(access, params)
    _check_quota(session, access, ask)
    return access


def commit_result(
    session: Session,
    ledger: Ledger,
    access: Access,
    *,
    cost: Budget | None = None,
    units: int = 0,
    parameters: dict[str, Any],
    result_digest: str,
    extra_datasets: list[DatasetVersion] = (),  # type: ignore[assignment]
    gaussian: bool = False,
) -> DerivedRecordRow:
    """Charge ``cost`` and ``units``, write the derived record and its ledger entry — atomically.

    Must run in the transaction whose commit releases the result. The project, budget, dataset
    account and usage rows are locked and re-read (never the stale copies the caller may have loaded
    earlier); ``cost`` is debited from the project's budget **and** the dataset's account
    (:mod:`lab.budgets.accounts`; ``gaussian`` = the whole release is one Gaussian mechanism).
    Raises :class:`BudgetExhausted` / :class:`QuotaExceeded` if a concurrent request got there first.
    """
    cost = cost or Budget.zero()
    project = load_project(session, access.project.id, lock=True)
    check_serving(project)
    ds = access.dataset.dataset
    if not cost.is_zero:
        row = _budget(session, project.id, ds, lock=True)
        if row is None:
            raise NotInGrant(f"project {project.id} has no privacy budget on {ds}")
        left = remaining(row)
        if not cost.fits_within(left):
            raise BudgetExhausted(f"{cost} exceeds the remaining budget {left}", remaining=left.as_strings())
        spent = Budget.of(row.epsilon_spent, row.delta_spent) + cost
        row.epsilon_spent, row.delta_spent = spent.as_strings()["epsilon"], spent.as_strings()["delta"]
        row.spends += 1
    account = accounts.lock_and_check(
        session, ds, dataset_account(session, ds) if not cost.is_zero else None, cost, gaussian=gaussian
    )
    if units:
        period = quota_period(access.channel)
        usage = _usage(session, project.id, ds, access.channel, period, lock=True)
        if usage is None:
            usage = UsageRow(
                project_id=project.id, dataset_id=ds, channel=access.channel, period=period, used=0
            )
            session.add(usage)
        limit = quota_limit(access)
        if limit is not None and usage.used + units > limit:
            raise QuotaExceeded(
                f"{access.channel} quota on {ds} is {limit}; {usage.used} used", quota=limit, used=usage.used
            )
        usage.used += units
    record_id = "dr_" + uuid.uuid4().hex
    datasets = [
        {"id": v.dataset, "version": v.version, "sha256": v.sha256} for v in (access.dataset, *extra_datasets)
    ]
    entry = ledger.append(
        "derived.record",
        {
            "record": record_id,
            "project": project.id,
            "channel": access.channel,
            "operation": access.operation,
            "datasets": datasets,
            "parameters": parameters,
            "cost": cost.as_strings(),
            "units": units,
            "result_sha256": result_digest,
        },
        actor=access.principal.name,
    )
    record = DerivedRecordRow(
        id=record_id,
        project_id=project.id,
        caller=access.principal.name,
        channel=access.channel,
        operation=access.operation,
        datasets=datasets,
        parameters=parameters,
        epsilon=cost.as_strings()["epsilon"],
        delta=cost.as_strings()["delta"],
        result_digest=result_digest,
        created_at=utcnow(),
        ledger_index=entry.index,
    )
    session.add(record)
    if account is not None:
        accounts.record_charge(
            session,
            account,
            cost,
            gaussian=gaussian,
            project_id=project.id,
            organization=project.organization,
            record_id=record_id,
            ledger_index=entry.index,
            channel=access.channel,
            operation=access.operation,
        )
    session.flush()
    return record


def budget_remaining(session: Session, project_id: str, dataset: str) -> Budget | None:
    """The remaining budget of a project on a dataset (None if it has none)."""
    row = _budget(session, project_id, dataset, lock=False)
    return remaining(row) if row else None
