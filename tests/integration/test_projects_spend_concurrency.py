"""The atomic spend under concurrency and rollback, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from lab.errors import BudgetExhausted
from lab.ledger.models import LedgerEntryRow
from lab.projects.models import BudgetRow
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.factories import active_project
from tests.integration._projects import import_catalog, spend

pytestmark = pytest.mark.integration


def _counts(runtime: Runtime, pid: str) -> tuple[BudgetRow, int, int]:
    with runtime.transaction() as s:
        budget = s.execute(select(BudgetRow).where(BudgetRow.project_id == pid)).scalar_one()
        records = s.execute(
            select(func.count()).select_from(DerivedRecordRow).where(DerivedRecordRow.project_id == pid)
        ).scalar_one()
        entries = s.execute(
            select(func.count()).select_from(LedgerEntryRow).where(LedgerEntryRow.kind == "derived.record")
        ).scalar_one()
    return budget, records, entries


@pytest.mark.slow
def test_fifty_parallel_spends_charge_exactly_what_the_budget_allows(runtime: Runtime) -> None:
    import_catalog(runtime, ["population"])
    pid = active_project(runtime, {"population": {"dp": {"epsilon": "1.0", "epsilon_per_query": "0.5"}}})

    def attempt(_: int) -> str:
        try:
            spend(runtime, "alice", pid, "population", "0.1")
        except BudgetExhausted:
            return "refused"
        return "charged"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert outcomes.count("charged") == 10 and outcomes.count("refused") == 40
    budget, records, entries = _counts(runtime, pid)
    assert (budget.epsilon_spent, budget.spends) == ("1", 10)
    assert records == 10 and entries == 10
    with runtime.transaction() as s:
        assert sorted(r.epsilon for r in s.execute(select(DerivedRecordRow)).scalars()) == ["0.1"] * 10
        assert runtime.ledger(s).verify().ok


def test_a_rolled_back_transaction_charges_nothing(runtime: Runtime) -> None:
    import_catalog(runtime, ["population"])
    pid = active_project(runtime, {"population": {"dp": {"epsilon": "1.0"}}})
    spend(runtime, "alice", pid, "population", "0.3")
    with pytest.raises(RuntimeError, match="after charging"):
        spend(runtime, "alice", pid, "population", "0.3", fail_after=True)
    budget, records, entries = _counts(runtime, pid)
    assert (budget.epsilon_spent, budget.spends, records, entries) == ("0.3", 1, 1, 1)
    with runtime.transaction() as s:
        assert runtime.ledger(s).verify().ok
