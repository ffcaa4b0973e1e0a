"""The DP service on SQLite and PostgreSQL with real SeaweedFS: charges, replays, refusals, concurrency,
tables, models and cohorts."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from lab.artifacts.models import ModelRow, StatTableRow
from lab.budgets import Budget
from lab.catalog.service import CatalogFetcher, DatasetVersion
from lab.dp import service, training
from lab.dp.spec import QuerySpec, TableSpec, TrainSpec
from lab.errors import BudgetExhausted, InvalidQuery, LabError, NotFound, NotInGrant
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.integration._dp import ALICE, counts, dp_project, import_dp_sample, make_cohort, remaining

pytestmark = pytest.mark.integration
TOWNS = 18


def spec(select: list[dict[str, Any]], **kw: Any) -> QuerySpec:
    return QuerySpec.model_validate({"dataset": "population", "select": select, **kw})


def run(runtime: Runtime, project: str, s: QuerySpec, seed: int | None = None) -> dict[str, Any]:
    rng = np.random.RandomState(seed) if seed is not None else None
    return service.query(runtime, ALICE, project, s, rng).model_dump()


@pytest.fixture
def sample(runtime: Runtime) -> dict[str, DatasetVersion]:
    return import_dp_sample(runtime)


def test_query_is_charged_once_with_its_record_and_ledger_entry(
    runtime: Runtime, sample: dict[str, DatasetVersion]
) -> None:
    pid = dp_project(runtime)
    s = spec(
        [{"agg": "count"}, {"agg": "mean", "column": "monthly_income", "bounds": [0, 20000]}],
        group_by=["town"],
        epsilon="0.5",
    )
    out = run(runtime, pid, s)
    assert out["cached"] is False and out["epsilon_spent"] == "0.5" and out["remaining"]["epsilon"] == "2.5"
    assert remaining(runtime, pid) == Budget.of("2.5", "0.00001")
    assert len(out["rows"]) == 2 * TOWNS
    assert {tuple(r["group"]) for r in out["rows"]} == {
        (t,) for t in sample["population"].policy.column("town").domain
    }
    count_rows = [r for r in out["rows"] if r["agg"] == "count"]
    assert all(r["error_95"] > 0 and r["mechanism"].startswith("Geometric") for r in count_rows)
    mean = out["aggregations"][1]
    assert mean["bounds"] == [0.0, 20000.0] and [c["quantity"] for c in mean["components"]] == [
        "count",
        "centered_sum",
    ]
    with runtime.transaction() as session:
        record = session.get(DerivedRecordRow, out["record_id"])
        assert record is not None and record.epsilon == "0.5" and record.operation == "query"
        entry = runtime.ledger(session).entry(record.ledger_index)
    assert entry.kind == "derived.record" and entry.entry["body"]["parameters"]["spec"]["group_by"] == [
        "town"
    ]
    assert entry.entry["body"]["result_sha256"] == record.result_digest
    assert counts(runtime, pid) == (1, 1)


def test_identical_query_replays_the_first_answer_for_free(runtime: Runtime, sample: dict[str, Any]) -> None:
    pid = dp_project(runtime, epsilon="1.2", per_query="1")
    s = spec([{"agg": "sum", "column": "household_size"}], group_by=["gender"], epsilon="0.6")
    first = run(runtime, pid, s)
    again = run(
        runtime, pid, spec([{"agg": "sum", "column": "household_size"}], group_by=["gender"], epsilon=0.60)
    )
    assert again["cached"] is True and again["epsilon_spent"] == "0"
    assert again["record_id"] == first["record_id"] and again["rows"] == first["rows"]
    assert remaining(runtime, pid).epsilon == Decimal("0.6") and counts(runtime, pid) == (1, 1)
    other = run(
        runtime, pid, spec([{"agg": "sum", "column": "household_size"}], group_by=["gender"], epsilon="0.5")
    )
    assert other["cached"] is False and other["rows"] != first["rows"]
    with pytest.raises(BudgetExhausted):  # 0.1 left
        run(runtime, pid, spec([{"agg": "count"}], epsilon="0.2"))
    replay = run(runtime, pid, s)  # the budget is spent, but replaying costs nothing
    assert replay["cached"] is True and replay["rows"] == first["rows"]
    assert counts(runtime, pid) == (2, 2)


REFUSED = [
    (
        "widened bounds",
        {"select": [{"agg": "mean", "column": "monthly_income", "bounds": [0, 60000]}]},
        InvalidQuery,
    ),
    (
        "non-filterable column",
        {"select": [{"agg": "count"}], "where": [{"column": "household_size", "value": 3}]},
        InvalidQuery,
    ),
    (
        "identifier filter",
        {"select": [{"agg": "count"}], "where": [{"column": "resident_id", "value": "x"}]},
        InvalidQuery,
    ),
    ("non-group-by column", {"select": [{"agg": "count"}], "group_by": ["age"]}, InvalidQuery),
    ("histogram of a non-domain column", {"select": [{"agg": "histogram", "column": "phone"}]}, InvalidQuery),
    (
        "value outside the domain",
        {"select": [{"agg": "count"}], "where": [{"column": "town", "value": "纽约"}]},
        InvalidQuery,
    ),
    ("numeric aggregate of a category", {"select": [{"agg": "sum", "column": "town"}]}, InvalidQuery),
    ("over the per-query cap", {"select": [{"agg": "count"}], "epsilon": "1.5"}, NotInGrant),
    ("unknown cohort", {"select": [{"agg": "count"}], "cohort": "co_" + "1" * 32}, NotFound),
]


@pytest.mark.parametrize(("why", "body", "error"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_queries_charge_nothing(
    runtime: Runtime, sample: dict[str, Any], why: str, body: dict[str, Any], error: type[LabError]
) -> None:
    pid = dp_project(runtime)
    before = remaining(runtime, pid)
    with pytest.raises(error) as caught:
        run(runtime, pid, spec(**{"epsilon": "0.5", **body}))
    assert 400 <= caught.value.status < 500
    assert remaining(runtime, pid) == before and counts(runtime, pid) == (0, 0)


def test_parallel_queries_never_overspend(runtime: Runtime, sample: dict[str, Any]) -> None:
    pid = dp_project(runtime, epsilon="1.0", per_query="0.3")
    outcomes: list[Any] = []

    def worker(i: int) -> None:
        try:
            s = spec([{"agg": "count"}], group_by=["town"], epsilon=f"0.{30 - i}")
            outcomes.append(run(runtime, pid, s)["epsilon_spent"])
        except LabError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = [Decimal(o) for o in outcomes if isinstance(o, str)]
    refused = [o for o in outcomes if not isinstance(o, str)]
    assert len(spent) + len(refused) == 8 and all(isinstance(e, BudgetExhausted) for e in refused)
    assert 3 <= len(spent) <= 4 and sum(spent) <= 1
    assert remaining(runtime, pid).epsilon == Decimal("1.0") - sum(spent)
    with runtime.transaction() as s:
        charged = [
            Decimal(r.epsilon)
            for r in s.execute(select(DerivedRecordRow).where(DerivedRecordRow.project_id == pid)).scalars()
        ]
    assert sorted(charged) == sorted(spent)


def test_identical_parallel_queries_are_charged_once(runtime: Runtime, sample: dict[str, Any]) -> None:
    pid = dp_project(runtime)
    answers: list[Any] = []

    def worker() -> None:
        answers.append(run(runtime, pid, spec([{"agg": "count"}], group_by=["education"], epsilon="0.4")))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 4 and sum(not a["cached"] for a in answers) == 1
    assert len({a["record_id"] for a in answers}) == 1
    assert all(a["rows"] == answers[0]["rows"] for a in answers)
    assert remaining(runtime, pid).epsilon == Decimal("2.6") and counts(runtime, pid) == (1, 1)


def test_gaussian_query_spends_delta(runtime: Runtime, sample: dict[str, Any]) -> None:
    pid = dp_project(runtime)
    out = run(
        runtime,
        pid,
        spec(
            [{"agg": "count"}, {"agg": "quantile", "column": "age", "quantiles": [0.5]}],
            epsilon="0.8",
            delta="0.000001",
        ),
        seed=3,
    )
    assert out["noise"] == "gaussian" and out["delta_spent"] == "0.000001"
    count, median = out["aggregations"]
    assert count["components"][0]["mechanism"] == "GaussianAnalytic" and count["delta"] == "0.000001"
    assert median["components"][0]["mechanism"] == "Exponential" and median["delta"] == "0"
    assert remaining(runtime, pid) == Budget.of("2.2", "0.000009")
    [med] = [r for r in out["rows"] if r["agg"] == "quantile"]
    assert med["unit"] == "score" and 0 <= med["value"] <= 110


def test_table_release_is_row_major_over_the_domains(runtime: Runtime, sample: dict[str, Any]) -> None:
    pid = dp_project(runtime)
    ts = TableSpec.model_validate(
        {
            "dataset": "population",
            "statistic": {"agg": "mean", "column": "monthly_income"},
            "dims": ["town", "education"],
            "epsilon": "0.5",
            "name": "income_by_town",
        }
    )
    out = service.release_table(runtime, ALICE, pid, ts, np.random.RandomState(5)).model_dump()
    policy = sample["population"].policy
    towns, edu = policy.column("town").domain, policy.column("education").domain
    assert out["dims"] == [
        {"column": "town", "domain": list(towns)},
        {"column": "education", "domain": list(edu)},
    ]
    assert len(out["values"]) == len(towns) * len(edu) == len(out["errors_95"])
    assert out["statistic"] == "mean(monthly_income)" and out["name"] == "income_by_town"
    assert all(0 <= v <= 50000 for v in out["values"])
    assert remaining(runtime, pid).epsilon == Decimal("2.5")
    with runtime.transaction() as s:
        row = s.get(StatTableRow, out["id"])
        assert row is not None and row.values == out["values"] and row.record_id == out["record_id"]
        listed = service.list_tables(s, ALICE, pid)
    assert [t.id for t in listed] == [out["id"]]


@pytest.mark.parametrize(
    ("model", "target", "features"),
    [
        ("logistic", "employed", ["age", "monthly_income"]),
        ("linear", "monthly_income", ["age", "household_size"]),
        ("gaussian_nb", "education", ["age", "monthly_income"]),
    ],
)
def test_training_stores_a_model_the_he_channel_can_read(
    runtime: Runtime, sample: dict[str, Any], model: str, target: str, features: list[str]
) -> None:
    pid = dp_project(runtime)
    ts = TrainSpec.model_validate(
        {"dataset": "population", "model": model, "target": target, "features": features, "epsilon": "1"}
    )
    out = training.train(runtime, ALICE, pid, ts, np.random.RandomState(11)).model_dump()
    with runtime.transaction() as s:
        row = s.get(ModelRow, out["id"])
        assert row is not None and row.kind == model and row.record_id == out["record_id"]
        params = row.params
    assert params["features"] == features and set(params["bounds"]) == set(features)
    if model == "gaussian_nb":
        assert params["classes"] == list(sample["population"].policy.column("education").domain)
        assert np.array(params["theta"]).shape == (5, 2)
    else:
        assert len(params["coef"]) == 2 and isinstance(params["intercept"], float)
        assert out["coef"] == params["coef"]
    if model == "logistic":
        assert params["classes"] == [0, 1]
    assert remaining(runtime, pid).epsilon == Decimal("2")


def test_cohort_restricts_the_query_to_its_keys(runtime: Runtime, sample: dict[str, DatasetVersion]) -> None:
    pid = dp_project(runtime)
    version = sample["population"]
    path = CatalogFetcher(runtime.store).fetch(version, runtime.cache_dir)
    keys = pq.read_table(path, columns=["person_id"]).column(0).to_pylist()[:400]
    cohort = make_cohort(runtime, pid, version, keys)
    out = run(runtime, pid, spec([{"agg": "count"}], cohort=cohort, epsilon="1"), seed=2)
    [row] = out["rows"]
    assert abs(row["value"] - 400) <= row["error_95"] * 3 and out["cohort"] == cohort
    other = make_cohort(runtime, pid, sample["health_visits"], keys)
    with pytest.raises(InvalidQuery):
        run(runtime, pid, spec([{"agg": "count"}], cohort=other, epsilon="1"))
    elsewhere = make_cohort(runtime, dp_project(runtime), version, keys)
    with pytest.raises(NotFound):
        run(runtime, pid, spec([{"agg": "count"}], cohort=elsewhere, epsilon="0.9"))
    assert counts(runtime, pid) == (1, 1)


def test_filters_select_the_rows_they_say(runtime: Runtime, sample: dict[str, DatasetVersion]) -> None:
    import datetime as dt

    import pandas as pd

    pid = dp_project(runtime)
    path = CatalogFetcher(runtime.store).fetch(sample["population"], runtime.cache_dir)
    df = pd.read_parquet(path)
    towns = list(sample["population"].policy.column("town").domain[:5])
    where = [
        {"column": "town", "op": "in", "value": towns},
        {"column": "gender", "op": "ne", "value": "男"},
        {"column": "age", "op": "between", "value": [20, 60]},
        {"column": "birth_date", "op": "ge", "value": "1975-06-01"},
        {"column": "education", "op": "not_in", "value": ["小学及以下"]},
    ]
    truth = df[
        df.town.isin(towns)
        & (df.gender != "男")
        & df.age.between(20, 60)
        & (df.birth_date >= dt.date(1975, 6, 1))
        & ~df.education.isin(["小学及以下"])
    ]
    out = run(
        runtime,
        pid,
        spec([{"agg": "count"}, {"agg": "sum", "column": "employed"}], where=where, epsilon="1"),
        seed=4,
    )
    count, employed = out["rows"]
    assert abs(count["value"] - len(truth)) <= 2 * count["error_95"]
    assert abs(employed["value"] - truth.employed.sum()) <= 2 * employed["error_95"]
    assert 0 < len(truth) < len(df) / 5


def test_compute_runs_outside_any_transaction_and_a_new_version_meanwhile_charges_nothing(
    runtime: Runtime, sample: dict[str, DatasetVersion]
) -> None:
    pid = dp_project(runtime)
    s = spec([{"agg": "count"}], group_by=["town"], epsilon="0.5")
    seen: list[str] = []

    def offload(fn: Any, *args: Any) -> Any:
        with runtime.transaction() as other:  # a writer gets the database while the query computes
            seen.append(remaining_in(other, pid))
        import_dp_sample(runtime, ("population",))  # the steward imports version 2 meanwhile
        return fn(*args)

    with pytest.raises(LabError) as caught:
        service.query(runtime, ALICE, pid, s, offload=offload)
    assert caught.value.status == 409 and "version 2" in caught.value.detail
    assert seen == ["3"] and remaining(runtime, pid).epsilon == Decimal("3")  # nothing charged
    with runtime.transaction() as sess:
        assert sess.execute(select(DerivedRecordRow)).first() is None
    assert service.query(runtime, ALICE, pid, s, np.random.RandomState(1)).version == 2


def remaining_in(session: Any, pid: str) -> str:
    from lab.projects.access import budget_remaining

    left = budget_remaining(session, pid, "population")
    assert left is not None
    return left.as_strings()["epsilon"]
