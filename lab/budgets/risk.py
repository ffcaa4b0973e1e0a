"""The bureau's risk view of dataset accounts (articles 29, 32): what was spent, by whom, when.

Read-only. :func:`dataset_risk` gathers one dataset's account (lifetime and period), the spending per
project and per operator organization, and every release behind it in order with the running total
(basic composition, exact, and under the account's one rule, ``basic`` or ``zcdp``);
:func:`account_alerts` lists the datasets past 50 / 80 / 100 % of their period allowance, for the
risk page and the request audit's anomalies.

>>> alert_level(Decimal("0.79")), alert_level(Decimal("0.8")), alert_level(Decimal("1"))
(50, 80, 100)
>>> alert_level(Decimal("0.2")) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.budgets.accounting import rho, spent_of
from lab.budgets.accounts import AccountState, state
from lab.budgets.models import DatasetChargeRow
from lab.budgets.value import Budget
from lab.catalog.models import DatasetRow
from lab.catalog.service import CatalogReader

#: Alert thresholds on the fraction of the period allowance spent.
THRESHOLDS = (100, 80, 50)


def alert_level(fraction: Decimal) -> int | None:
    """The highest threshold (percent) that ``fraction`` of the allowance has reached, if any."""
    return next((t for t in THRESHOLDS if fraction * 100 >= t), None)


class DatasetAlert(BaseModel):
    """A dataset past a threshold of its period allowance."""

    dataset: str
    period: str
    level: int
    fraction_spent: str
    epsilon_spent: str
    epsilon_allowance: str
    delta_spent: str
    delta_allowance: str


@dataclass(frozen=True)
class Share:
    """Spent by one project or organization: basic composition of its releases, and how many."""

    key: str
    label: str
    spent: Budget
    releases: int


@dataclass(frozen=True)
class Step:
    """One release; the running basic-composition total and the account's lifetime spent after it.

    ``accounted`` is composed under the account's one rule (at the lifetime δ), so it is what the
    account said it had spent right after this release: under ``basic`` it is ``cumulative``; under
    ``zcdp`` it is ε of the running Σρ (below ``cumulative`` for many Gaussian releases, above it for
    a few large pure ones).
    """

    charge: DatasetChargeRow
    cumulative: Budget
    accounted: Budget


@dataclass(frozen=True)
class DatasetRisk:
    dataset: str
    account: AccountState
    alert: DatasetAlert | None
    by_project: list[Share]
    by_organization: list[Share]
    steps: list[Step]


def _alert(acct: AccountState) -> DatasetAlert | None:
    frac = acct.period_fraction()
    level = alert_level(frac)
    if level is None:
        return None
    spent, allowance = acct.period_spent.budget.as_strings(), acct.period_limit.as_strings()
    return DatasetAlert(
        dataset=acct.dataset,
        period=acct.period,
        level=level,
        fraction_spent=str(frac.quantize(Decimal("0.0001"), ROUND_HALF_EVEN)),
        epsilon_spent=spent["epsilon"],
        epsilon_allowance=allowance["epsilon"],
        delta_spent=spent["delta"],
        delta_allowance=allowance["delta"],
    )


def accounts_overview(session: Session) -> list[tuple[str, AccountState]]:
    """Every dataset that has an account, with its state (title, state), ordered by dataset."""
    catalog = CatalogReader(session)
    out = []
    for ds in session.execute(select(DatasetRow.id).order_by(DatasetRow.id)).scalars():
        policy = catalog.get(ds).policy
        if policy.account is not None:
            out.append((ds, state(session, ds, policy.account)))
    return out


def account_alerts(session: Session) -> list[DatasetAlert]:
    """Datasets past 50 / 80 / 100 % of their period allowance, highest first."""
    alerts = [a for _, st in accounts_overview(session) if (a := _alert(st)) is not None]
    return sorted(alerts, key=lambda a: (-a.level, a.dataset))


def _shares(totals: dict[str, tuple[str, Budget, int]]) -> list[Share]:
    shares = [Share(k, label, b, n) for k, (label, b, n) in totals.items()]
    return sorted(shares, key=lambda s: (-s.spent.epsilon, s.key))


def dataset_risk(session: Session, dataset: str) -> DatasetRisk | None:
    """The risk view of ``dataset`` (None if it has no account: open data)."""
    policy = CatalogReader(session).get(dataset).policy
    if policy.account is None:
        return None
    acct = state(session, dataset, policy.account)
    charges = (
        session.execute(
            select(DatasetChargeRow)
            .where(DatasetChargeRow.dataset_id == dataset)
            .order_by(DatasetChargeRow.at, DatasetChargeRow.id)
        )
        .scalars()
        .all()
    )
    running, rho_total = Budget.zero(), Fraction(0)
    steps = []
    projects: dict[str, tuple[str, Budget, int]] = {}
    orgs: dict[str, tuple[str, Budget, int]] = {}
    for c in charges:
        cost = Budget.of(c.epsilon, c.delta)
        running = running + cost
        if acct.rule == "zcdp":
            rho_total += rho(cost, c.gaussian and cost.delta > 0)
        steps.append(Step(c, running, spent_of(acct.rule, running, rho_total, acct.limit.delta).budget))
        for bucket, key in ((projects, c.project_id), (orgs, c.organization)):
            label, total, n = bucket.get(key, (key, Budget.zero(), 0))
            bucket[key] = (label, total + cost, n + 1)
    return DatasetRisk(dataset, acct, _alert(acct), _shares(projects), _shares(orgs), steps)
