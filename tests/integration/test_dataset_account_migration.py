"""Upgrading a populated database starts every dataset account at exactly what was already spent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
from alembic import command
from sqlalchemy import func, select, update

from lab.budgets import Budget
from lab.budgets.accounting import Charge, compose
from lab.budgets.accounts import state
from lab.budgets.models import DatasetAccountRow, DatasetChargeRow
from lab.catalog.service import CatalogReader
from lab.db.base import utcnow
from lab.db.migrate import alembic_config, upgrade
from lab.errors import BudgetExhausted
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.factories import active_project
from tests.integration._projects import import_catalog, spend

pytestmark = pytest.mark.integration


def test_migrated_database_starts_each_dataset_account_at_the_sum_spent(runtime: Runtime) -> None:
    import_catalog(runtime, ["population", "health_visits", "enterprise_registry"])
    grant = {"dp": {"epsilon": "5", "epsilon_per_query": "1"}}
    grants = {"population": grant, "health_visits": grant, "enterprise_registry": grant}
    pids = [active_project(runtime, grants) for _ in range(2)]
    for pid, amounts in zip(pids, (["1", "1", "0.75"], ["1", "0.5", "1", "1"]), strict=True):
        for eps in amounts:
            spend(runtime, "alice", pid, "population", eps)
        spend(runtime, "alice", pid, "enterprise_registry", "1")  # open: no account
    last_year = spend(runtime, "alice", pids[0], "health_visits", "0.5")
    spend(runtime, "alice", pids[1], "health_visits", "0.25")
    url = runtime.settings.db_url
    # back to the schema before accounts existed: the tables go, the spends stay in the records
    command.downgrade(alembic_config(url), "0050_products")
    with runtime.engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(DerivedRecordRow)).scalar_one() == 11
        # one release was made last year: it counts for life, not in this year's allowance
        conn.execute(
            update(DerivedRecordRow)
            .where(DerivedRecordRow.id == last_year.id)
            .values(created_at=utcnow() - dt.timedelta(days=366))
        )
    upgrade(url)
    with runtime.transaction() as s:
        accounts = {
            a.dataset_id: (a.epsilon_spent, a.spends) for a in s.execute(select(DatasetAccountRow)).scalars()
        }
        charges = s.execute(select(DatasetChargeRow).order_by(DatasetChargeRow.id)).scalars().all()
        records = {r.id: r for r in s.execute(select(DerivedRecordRow)).scalars()}
        catalog = CatalogReader(s)
        health = state(s, "health_visits", catalog.get("health_visits").policy.account)  # type: ignore[arg-type]
    assert accounts == {"population": ("6.25", 7), "health_visits": ("0.75", 2)}
    assert len(charges) == 9 and all(not c.gaussian for c in charges)
    assert {c.dataset_id for c in charges} == {"population", "health_visits"}
    for c in charges:  # each step points at its derived record and ledger entry
        assert records[c.record_id].ledger_index == c.ledger_index
        assert records[c.record_id].epsilon == c.epsilon and c.organization == "Test Co."
    # health_visits' account is zCDP: both charges are in Σρ (ε²/2 each), nothing forgotten
    assert health.spent.rule == "zcdp" and health.spent.rho == Fraction(1, 8) + Fraction(1, 32)
    assert health.period_spent.rho == Fraction(1, 32)
    assert health.spent == compose(
        "zcdp", [Charge(Budget.of("0.5")), Charge(Budget.of("0.25"))], Decimal("0.00005")
    )
    # the year's allowance of population is 8: 6.25 already spent, so 1.75 more fits and nothing beyond
    third = active_project(runtime, {"population": grant})
    spend(runtime, "alice", third, "population", "1")
    spend(runtime, "alice", third, "population", "0.75")
    with pytest.raises(BudgetExhausted, match="privacy-loss account of dataset population"):
        spend(runtime, "alice", third, "population", "0.01")
