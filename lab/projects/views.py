"""Reading projects: who sees what, project detail, budgets, and the authorize question as an answer.

Visibility: bureau reviewers and auditors see every project; the applicant and current members see
theirs; anyone else is told the project does not exist (404, so ids of others' projects are not
confirmed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lab.budgets import Budget, accounts
from lab.catalog.policy import AccountPolicy
from lab.catalog.service import CatalogReader
from lab.db.base import utcnow
from lab.decimals import plain
from lab.identity import Principal
from lab.projects.access import OVERSEERS, quota_limit, quota_period, remaining, visible_project
from lab.projects.models import (
    BudgetRow,
    GrantRow,
    ProjectEventRow,
    ProjectMemberRow,
    ProjectRow,
    ProjectStatus,
    UsageRow,
)
from lab.projects.review import changes_under_review, required_approvals, review_round
from lab.projects.schemas import (
    ApprovalsOut,
    BudgetOut,
    BudgetReport,
    CheckIn,
    CheckOut,
    EventOut,
    MemberOut,
    ProjectOut,
    ProjectSummary,
    UsageOut,
)
from lab.projects.service import policies_of
from lab.settings import ProjectsSettings


def visible(session: Session, principal: Principal, project_id: str) -> ProjectRow:
    """The project if ``principal`` may see it; :class:`ProjectNotFound` otherwise (see
    :func:`lab.projects.access.visible_project`)."""
    return visible_project(session, principal, project_id)


def serving(project: ProjectRow, now: dt.datetime | None = None) -> bool:
    """Active and within its term (what authorize requires)."""
    if project.status != ProjectStatus.active:
        return False
    return project.ends_at is None or (now or utcnow()) < project.ends_at


def _summary(project: ProjectRow, datasets: list[str], now: dt.datetime) -> dict[str, object]:
    return {
        "id": project.id,
        "title": project.title,
        "organization": project.organization,
        "applicant": project.applicant,
        "status": project.status,
        "serving": serving(project, now),
        "datasets": datasets,
        "created_at": project.created_at,
        "ends_at": project.ends_at,
    }


def list_projects(
    session: Session, principal: Principal, status: str | None = None, limit: int = 200
) -> list[ProjectSummary]:
    """Every project for overseers; one's own (as applicant or current member) for anyone else."""
    q = select(ProjectRow).order_by(ProjectRow.created_at.desc()).limit(limit)
    if status:
        q = q.where(ProjectRow.status == status)
    if not principal.has(*OVERSEERS):
        mine = select(ProjectMemberRow.project_id).where(
            ProjectMemberRow.username == principal.name, ProjectMemberRow.removed_at.is_(None)
        )
        q = q.where(or_(ProjectRow.applicant == principal.name, ProjectRow.id.in_(mine)))
    now = utcnow()
    return [ProjectSummary(**_summary(p, sorted(p.requested), now)) for p in session.execute(q).scalars()]


def budgets_of(session: Session, project_id: str) -> list[BudgetOut]:
    rows = session.execute(
        select(BudgetRow).where(BudgetRow.project_id == project_id).order_by(BudgetRow.dataset_id)
    ).scalars()
    out = []
    for r in rows:
        left = remaining(r)
        total = Decimal(r.epsilon_total)
        frac = (Decimal(r.epsilon_spent) / total) if total else Decimal(0)
        shared = _dataset_account(session, r.dataset_id)
        left_shared = shared.left if shared else None
        binding = "dataset" if shared is not None and not shared.fits(session, left.epsilon) else "project"
        out.append(
            BudgetOut(
                dataset_epsilon_lifetime=shared.state.limit.as_strings()["epsilon"] if shared else None,
                dataset_epsilon_allowance=shared.state.period_limit.as_strings()["epsilon"]
                if shared
                else None,
                dataset_epsilon_remaining=left_shared.as_strings()["epsilon"] if left_shared else None,
                dataset_delta_remaining=left_shared.as_strings()["delta"] if left_shared else None,
                dataset_period=shared.state.period if shared else None,
                dataset_composition=shared.state.rule if shared else None,
                binding=binding,
                dataset=r.dataset_id,
                epsilon_total=r.epsilon_total,
                epsilon_spent=r.epsilon_spent,
                epsilon_remaining=left.as_strings()["epsilon"],
                delta_total=r.delta_total,
                delta_spent=r.delta_spent,
                delta_remaining=left.as_strings()["delta"],
                spends=r.spends,
                fraction_spent=plain(frac.quantize(Decimal("0.0001"), ROUND_HALF_EVEN)),
            )
        )
    return out


@dataclass(frozen=True)
class _Shared:
    """A dataset account's state and what it has left (lifetime and period, the smaller)."""

    state: accounts.AccountState
    left: Budget
    account: AccountPolicy

    def fits(self, session: Session, epsilon: Decimal) -> bool:
        """Would a pure release of ``epsilon`` fit the account (under its own rule)?

        Under ``basic`` this is ``epsilon ≤ left.epsilon``; under ``zcdp`` the release's ρ = ε²/2 is
        added to Σρ, so what is left in ε is not additive and only this test says which limit binds.
        """
        if epsilon == 0:
            return True
        after = accounts.state(session, self.state.dataset, self.account, extra=(Budget(epsilon), False))
        return after.fits


def _dataset_account(session: Session, dataset: str) -> _Shared | None:
    """The dataset's account as an operator sees it (None for open data)."""
    account = CatalogReader(session).get(dataset).policy.account
    if account is None:
        return None
    st = accounts.state(session, dataset, account)
    life, period = st.remaining, st.period_remaining
    return _Shared(st, Budget(min(life.epsilon, period.epsilon), min(life.delta, period.delta)), account)


def budget_report(session: Session, project: ProjectRow) -> BudgetReport:
    """Budgets spent and remaining per dataset, and quota usage counters."""
    usage = session.execute(
        select(UsageRow)
        .where(UsageRow.project_id == project.id)
        .order_by(UsageRow.dataset_id, UsageRow.channel, UsageRow.period)
    ).scalars()
    return BudgetReport(
        project=project.id,
        budgets=budgets_of(session, project.id),
        usage=[
            UsageOut(dataset=u.dataset_id, channel=u.channel, period=u.period, used=u.used) for u in usage
        ],
    )


def project_view(session: Session, project: ProjectRow, cfg: ProjectsSettings) -> ProjectOut:
    """Everything about one project: members, grant, budgets, approvals, events."""
    now = utcnow()
    members = session.execute(
        select(ProjectMemberRow)
        .where(ProjectMemberRow.project_id == project.id)
        .order_by(ProjectMemberRow.username)
    ).scalars()
    grants = {
        g.dataset_id: g.limits
        for g in session.execute(select(GrantRow).where(GrantRow.project_id == project.id)).scalars()
    }
    events = session.execute(
        select(ProjectEventRow).where(ProjectEventRow.project_id == project.id).order_by(ProjectEventRow.id)
    ).scalars()
    if project.status == ProjectStatus.pending:
        approvals = ApprovalsOut(
            required=required_approvals(policies_of(session, project.requested), cfg),
            by=[e.actor for e in review_round(session, project.id)],
            changes=changes_under_review(session, project.id),
        )
    else:
        approvals = ApprovalsOut(required=0, by=[])
    return ProjectOut(
        **_summary(project, sorted(project.requested), now),
        purpose=project.purpose,
        scenario=project.scenario,
        contact=project.contact,
        requested_days=project.requested_days,
        requested=project.requested,
        commitment=project.commitment,
        commitment_signed_by=project.commitment_signed_by,
        updated_at=project.updated_at,
        starts_at=project.starts_at,
        disposed_at=project.disposed_at,
        members=[
            MemberOut(
                username=m.username,
                added_at=m.added_at,
                removed_at=m.removed_at,
            )
            for m in members
        ],
        grants=grants,
        budgets=budgets_of(session, project.id),
        approvals=approvals,
        hub_synced=project.hub_synced_version >= project.hub_version,
        events=[
            EventOut(
                id=e.id,
                actor=e.actor,
                action=e.action,
                from_status=e.from_status,
                to_status=e.to_status,
                reason=e.reason,
                details=e.details,
                at=e.at,
                ledger_index=e.ledger_index,
            )
            for e in events
        ],
    )


def check(session: Session, principal: Principal, project_id: str, q: CheckIn) -> CheckOut:
    """Answer "may I?" exactly as a channel would (raises the same refusal a channel would)."""
    visible(session, principal, project_id)
    from lab.channels import authorize_any  # the channels import this package

    access = authorize_any(session, principal, project_id, q.dataset, q.channel, q.operation, q.params)
    left: Budget | None = None
    row = session.execute(
        select(BudgetRow).where(BudgetRow.project_id == project_id, BudgetRow.dataset_id == q.dataset)
    ).scalar_one_or_none()
    if row is not None and q.channel == "dp":
        left = remaining(row)
    quota = None
    limit = quota_limit(access)
    if limit is not None:
        usage = session.execute(
            select(UsageRow.used).where(
                UsageRow.project_id == project_id,
                UsageRow.dataset_id == q.dataset,
                UsageRow.channel == q.channel,
                UsageRow.period == quota_period(q.channel),
            )
        ).scalar_one_or_none()
        quota = {"limit": limit, "used": int(usage or 0)}
    return CheckOut(
        project=project_id,
        dataset=q.dataset,
        version=access.dataset.version,
        channel=q.channel,
        operation=q.operation,
        limits=access.limits,
        remaining=left.as_strings() if left else None,
        quota=quota,
    )
