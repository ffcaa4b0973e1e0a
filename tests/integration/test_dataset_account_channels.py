"""Every channel that charges goes through the dataset account: DP queries (Laplace and Gaussian),
DP tables for HE lookups, DP model training and PSI cohort sizes — each charged once, at release."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from lab.budgets.models import DatasetAccountRow, DatasetChargeRow
from lab.dp import service, training
from lab.dp.spec import QuerySpec, TableSpec, TrainSpec
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.factories import active_project, sample_dir
from tests.integration._dp import ALICE, dp_project, import_dp_sample
from tests.integration._psi import SAMPLE_BASE, grants, import_psi_sample, lab_client, operator_list

pytestmark = pytest.mark.integration


def charges(runtime: Runtime) -> list[tuple[str, str, str, bool]]:
    with runtime.transaction() as s:
        rows = s.execute(select(DatasetChargeRow).order_by(DatasetChargeRow.id)).scalars()
        return [(c.operation, c.epsilon, c.delta, c.gaussian) for c in rows]


def test_dp_queries_tables_and_models_are_charged_to_the_dataset_account(runtime: Runtime) -> None:
    import_dp_sample(runtime, ("population",))
    pid = dp_project(runtime, ("population",))

    def query(body: dict[str, Any]) -> dict[str, Any]:
        spec = QuerySpec.model_validate({"dataset": "population", **body})
        return service.query(runtime, ALICE, pid, spec, np.random.RandomState(1)).model_dump()

    query({"select": [{"agg": "count"}], "epsilon": "0.25"})
    query(
        {"select": [{"agg": "count"}, {"agg": "sum", "column": "age"}], "epsilon": "0.5", "delta": "0.000001"}
    )
    mixed = {
        "select": [{"agg": "count"}, {"agg": "quantile", "column": "age", "quantiles": [0.5]}],
        "epsilon": "0.5",
    }
    query({**mixed, "delta": "0.000001"})  # a quantile is not Gaussian: basic composition
    replay = query({"select": [{"agg": "count"}], "epsilon": "0.25"})  # identical: replayed, free
    assert replay["cached"] is True
    table = TableSpec.model_validate(
        {"dataset": "population", "statistic": {"agg": "count"}, "dims": ["town"], "epsilon": "0.3"}
    )
    service.release_table(runtime, ALICE, pid, table, np.random.RandomState(2))
    train = TrainSpec.model_validate(
        {
            "dataset": "population",
            "model": "linear",
            "features": ["age"],
            "target": "monthly_income",
            "epsilon": "0.4",
        }
    )
    training.train(runtime, ALICE, pid, train, np.random.RandomState(3))
    assert charges(runtime) == [
        ("query", "0.25", "0", False),
        ("query", "0.5", "0.000001", True),
        ("query", "0.5", "0.000001", False),
        ("release_table", "0.3", "0", False),
        ("train", "0.4", "0", False),
    ]
    with runtime.transaction() as s:
        account = s.get(DatasetAccountRow, "population")
        assert account is not None and (account.epsilon_spent, account.delta_spent) == ("1.95", "0.000002")
        records = s.execute(select(DerivedRecordRow.id)).scalars().all()
        linked = s.execute(select(DatasetChargeRow.record_id)).scalars().all()
    assert sorted(records) == sorted(linked)


@pytest.mark.hub
def test_a_psi_cohort_size_is_charged_to_the_dataset_account(
    api: Any, runtime: Runtime, hub: HubHandle
) -> None:
    import pyarrow.parquet as pq

    import_psi_sample(runtime, 1000, ("population",))
    pid = active_project(runtime, grants({"population": ["cohort"]}), members=["alice"])
    c = lab_client(api, hub.token_for("alice", ["operator"])).use(pid)
    table = pq.read_table(sample_dir(1000, SAMPLE_BASE) / "population.parquet").to_pandas()
    items, _ = operator_list(table["resident_id"].tolist(), "resident_id", n=200, inside=120, invalid=0)
    co = c.psi.intersect(items, dataset="population", column="resident_id", mode="cohort")
    assert charges(runtime) == [("cohort", "0.1", "0", False)]
    with runtime.transaction() as s:
        (charge,) = s.execute(select(DatasetChargeRow)).scalars().all()
    assert charge.record_id == co.record_id and charge.channel == "psi"


@pytest.mark.hub
def test_a_psi_cohort_is_refused_by_a_spent_dataset_account_before_any_computation(
    api: Any, runtime: Runtime, hub: HubHandle
) -> None:
    import pyarrow.parquet as pq

    from lab.client import BudgetExhausted
    from psi_service.models import PsiSessionRow
    from tests.integration._projects import spend

    import_psi_sample(runtime, 1000, ("population",))
    # two other operators spend the year's allowance of population (ε = 8) through DP queries
    others = [active_project(runtime, {"population": {"dp": {"epsilon": e}}}) for e in ("5", "3")]
    for pid, n in zip(others, (5, 3), strict=True):
        for _ in range(n):
            spend(runtime, "alice", pid, "population", "1")
    pid = active_project(runtime, grants({"population": ["cohort"]}), members=["alice"])
    c = lab_client(api, hub.token_for("alice", ["operator"])).use(pid)
    table = pq.read_table(sample_dir(1000, SAMPLE_BASE) / "population.parquet").to_pandas()
    items, _ = operator_list(table["resident_id"].tolist(), "resident_id", n=200, inside=120, invalid=0)
    before = charges(runtime)
    with pytest.raises(BudgetExhausted) as exc:
        c.psi.intersect(items, dataset="population", column="resident_id", mode="cohort")
    problem = exc.value.problem
    assert problem["status"] == 409 and problem["code"] == "budget-exhausted"
    assert problem["account"] == {"kind": "dataset", "dataset": "population", "scope": "period",
                                  "period": problem["account"]["period"], "composition": "basic"}  # fmt: skip
    with runtime.transaction() as s:  # refused at session creation: no session, no OPRF, no charge
        assert s.execute(select(PsiSessionRow)).scalars().all() == []
        own = s.execute(select(DerivedRecordRow).where(DerivedRecordRow.project_id == pid)).scalars().all()
    assert own == [] and charges(runtime) == before and len(before) == 8
