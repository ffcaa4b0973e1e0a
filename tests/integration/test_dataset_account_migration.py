"""Upgrading a populated database starts every dataset account at exactly what was already spent."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import func, select

from lab.budgets.models import DatasetAccountRow, DatasetChargeRow
from lab.db.migrate import alembic_config, upgrade
from lab.errors import BudgetExhausted
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.factories import active_project
from tests.integration._projects import import_catalog, spend

pytestmark = pytest.mark.integration


def test_migrated_database_starts_each_dataset_account_at_the_sum_spent(runtime: Runtime) -> None:
    import_catalog(runtime, ["population", "enterprise_registry"])
    grant = {"dp": {"epsilon": "5", "epsilon_per_query": "1"}}
    pids = [active_project(runtime, {"population": grant, "enterprise_registry": grant}) for _ in range(2)]
    for pid, amounts in zip(pids, (["1", "1", "0.75"], ["1", "0.5", "1", "1"]), strict=True):
        for eps in amounts:
            spend(runtime, "alice", pid, "population", eps)
        spend(runtime, "alice", pid, "enterprise_registry", "1")  # open: no account
    url = runtime.settings.db_url
    # back to the schema before accounts existed: the tables go, the spends stay in the records
    command.downgrade(alembic_config(url), "0050_products")
    with runtime.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DerivedRecordRow)).scalar_one() == 9
    upgrade(url)
    with runtime.transaction() as s:
        accounts = {
            a.dataset_id: (a.epsilon_spent, a.spends) for a in s.execute(select(DatasetAccountRow)).scalars()
        }
        charges = s.execute(select(DatasetChargeRow).order_by(DatasetChargeRow.id)).scalars().all()
        records = {r.id: r for r in s.execute(select(DerivedRecordRow)).scalars()}
    assert accounts == {"population": ("6.25", 7)}
    assert len(charges) == 7 and all(c.dataset_id == "population" and not c.gaussian for c in charges)
    for c in charges:  # each step points at its derived record and ledger entry
        assert records[c.record_id].ledger_index == c.ledger_index
        assert records[c.record_id].epsilon == c.epsilon and c.organization == "Test Co."
    # the year's allowance is 8: 6.25 already spent, so 1.75 more fits and nothing beyond
    third = active_project(runtime, {"population": grant})
    spend(runtime, "alice", third, "population", "1")
    spend(runtime, "alice", third, "population", "0.75")
    with pytest.raises(BudgetExhausted, match="privacy-loss account of dataset population"):
        spend(runtime, "alice", third, "population", "0.01")
