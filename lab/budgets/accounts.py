"""One privacy-loss account per dataset, across every project and channel.

A non-open dataset's policy declares its account (``account:`` — lifetime ε/δ per person and an
allowance per calendar year). Every charged release of every channel goes through
:func:`lab.projects.access.commit_result`, which calls :func:`lock_and_check` (row lock on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and then :func:`record_charge` in the transaction that
writes the derived record and its ledger entry: concurrent releases, from any number of API
processes, can never overspend the account, and a refused release charges nothing.
:func:`check` is the same test without the lock, run by ``authorize()`` before any computation.

Composition: :mod:`lab.budgets.accounting` — each account has one rule for its life, declared in
its policy (``account.composition``): ``basic`` (exact Σε, Σδ) or ``zcdp`` (Σρ, converted to ε at
the account's δ). The lifetime account and the period allowance are each a filter under that rule.

>>> period_of(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC))
'2026'
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lab.budgets.accounting import Charge, Rule, Spent, compose
from lab.budgets.models import DatasetAccountRow, DatasetChargeRow
from lab.budgets.value import Budget
from lab.catalog.policy import AccountPolicy
from lab.db.base import utcnow
from lab.errors import BudgetExhausted


def period_of(now: dt.datetime) -> str:
    """The calendar-year period (UTC) that ``now`` falls in."""
    return str(now.astimezone(dt.UTC).year)


@dataclass(frozen=True)
class AccountState:
    """Limits and spending of one dataset account (lifetime and the current period)."""

    dataset: str
    limit: Budget
    period: str
    period_limit: Budget
    spent: Spent
    period_spent: Spent

    @property
    def rule(self) -> Rule:
        return self.spent.rule

    @property
    def remaining(self) -> Budget:
        return _floor(self.limit - self.spent.budget)

    @property
    def period_remaining(self) -> Budget:
        return _floor(self.period_limit - self.period_spent.budget)

    @property
    def fits(self) -> bool:
        return self.spent.budget.fits_within(self.limit) and self.period_spent.budget.fits_within(
            self.period_limit
        )

    def period_fraction(self) -> Decimal:
        """The larger of ε and δ spent over the period's allowance (0 … ≥1).

        Under ``zcdp`` the stated δ is the allowance's δ the ρ is converted at, not δ consumed: only
        ε measures how much of the allowance is used.
        """
        spent = self.period_spent
        parts = [spent.budget.epsilon / self.period_limit.epsilon]
        if self.period_limit.delta > 0 and spent.rule == "basic":
            parts.append(spent.budget.delta / self.period_limit.delta)
        return max(parts)

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "lifetime": {
                "limit": self.limit.as_strings(),
                "spent": self.spent.budget.as_strings(),
                "remaining": self.remaining.as_strings(),
                "composition": self.spent.rule,
            },
            "period": {
                "period": self.period,
                "limit": self.period_limit.as_strings(),
                "spent": self.period_spent.budget.as_strings(),
                "remaining": self.period_remaining.as_strings(),
                "composition": self.period_spent.rule,
            },
        }


def _floor(b: Budget) -> Budget:
    return Budget(max(b.epsilon, Decimal(0)), max(b.delta, Decimal(0)))


def charges(
    session: Session, dataset: str, period: str | None = None, extra: tuple[Budget, bool] | None = None
) -> list[Charge]:
    """The account's charges (of one ``period``, or all), grouped by cost; ``extra``: one more."""
    q = select(
        DatasetChargeRow.epsilon, DatasetChargeRow.delta, DatasetChargeRow.gaussian, func.count()
    ).where(DatasetChargeRow.dataset_id == dataset)
    if period is not None:
        q = q.where(DatasetChargeRow.period == period)
    q = q.group_by(DatasetChargeRow.epsilon, DatasetChargeRow.delta, DatasetChargeRow.gaussian)
    out = [Charge(Budget.of(e, d), bool(g) and Decimal(d) > 0, int(n)) for e, d, g, n in session.execute(q)]
    if extra is not None:
        out.append(Charge(extra[0], extra[1] and extra[0].delta > 0))
    return out


def state(
    session: Session,
    dataset: str,
    account: AccountPolicy,
    *,
    extra: tuple[Budget, bool] | None = None,
    now: dt.datetime | None = None,
) -> AccountState:
    """The account of ``dataset`` now (or as it would be after one more release ``extra``).

    Both figures are composed under the account's own rule, whatever the other rule would give.
    """
    period = period_of(now or utcnow())
    limit = Budget(account.epsilon, account.delta)
    period_limit = Budget(account.period_epsilon, account.period_delta)
    rule = account.composition
    return AccountState(
        dataset=dataset,
        limit=limit,
        period=period,
        period_limit=period_limit,
        spent=compose(rule, charges(session, dataset, None, extra), limit.delta),
        period_spent=compose(rule, charges(session, dataset, period, extra), period_limit.delta),
    )


def check(
    session: Session, dataset: str, account: AccountPolicy | None, cost: Budget, *, gaussian: bool = False
) -> None:
    """Raise :class:`BudgetExhausted` naming the account if ``cost`` would not fit it (no lock)."""
    if account is None or cost.is_zero:
        return
    after = state(session, dataset, account, extra=(cost, gaussian))
    if after.fits:
        return
    current = state(session, dataset, account)
    lifetime = after.spent.budget.fits_within(after.limit)
    scope = "period" if lifetime else "lifetime"
    left = current.period_remaining if lifetime else current.remaining
    where = f"its {current.period} allowance" if lifetime else "its lifetime account"
    raise BudgetExhausted(
        f"{cost} does not fit the privacy-loss account of dataset {dataset}: {where} has {left} left "
        "(shared by every project)",
        account={
            "kind": "dataset",
            "dataset": dataset,
            "scope": scope,
            "period": current.period,
            "composition": current.rule,
        },
        remaining=left.as_strings(),
    )


def lock_and_check(
    session: Session, dataset: str, account: AccountPolicy | None, cost: Budget, *, gaussian: bool = False
) -> DatasetAccountRow | None:
    """Lock the account row (creating it once), then :func:`check` under the lock."""
    if account is None or cost.is_zero:
        return None
    row = _locked(session, dataset)
    check(session, dataset, account, cost, gaussian=gaussian)
    return row


def record_charge(
    session: Session,
    row: DatasetAccountRow,
    cost: Budget,
    *,
    gaussian: bool,
    project_id: str,
    organization: str,
    record_id: str,
    ledger_index: int,
    channel: str,
    operation: str,
) -> None:
    """Debit the locked account ``row`` and write the charge (same transaction as the record)."""
    now = utcnow()
    total = Budget.of(row.epsilon_spent, row.delta_spent) + cost
    row.epsilon_spent, row.delta_spent = total.as_strings()["epsilon"], total.as_strings()["delta"]
    row.spends += 1
    row.updated_at = now
    strings = cost.as_strings()
    session.add(
        DatasetChargeRow(
            dataset_id=row.dataset_id,
            period=period_of(now),
            project_id=project_id,
            organization=organization,
            record_id=record_id,
            ledger_index=ledger_index,
            channel=channel,
            operation=operation,
            epsilon=strings["epsilon"],
            delta=strings["delta"],
            gaussian=gaussian and cost.delta > 0,
            at=now,
        )
    )


def _locked(session: Session, dataset: str) -> DatasetAccountRow:
    dialect = session.get_bind().dialect.name
    values = {
        "dataset_id": dataset,
        "epsilon_spent": "0",
        "delta_spent": "0",
        "spends": 0,
        "updated_at": utcnow(),
    }
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(DatasetAccountRow).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(DatasetAccountRow).values(**values).on_conflict_do_nothing())
    q = (
        select(DatasetAccountRow)
        .where(DatasetAccountRow.dataset_id == dataset)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.execute(q).scalar_one()
