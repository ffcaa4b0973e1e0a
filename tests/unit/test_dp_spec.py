"""DP specs and plans: shape checks, policy checks, budget splits, size bounds (no I/O)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lab.catalog.policy import load_policy
from lab.dp.plan import plan_query, plan_training
from lab.dp.spec import MAX_CELLS, QuerySpec, TableSpec, TrainSpec, canonical
from lab.errors import InvalidQuery

ROOT = Path(__file__).resolve().parents[2]
POPULATION = load_policy(ROOT / "policies" / "population.yaml")
HEALTH = load_policy(ROOT / "policies" / "health_visits.yaml")


def q(select: list[dict[str, Any]], **kw: Any) -> QuerySpec:
    return QuerySpec.model_validate({"dataset": "population", "select": select, "epsilon": "1", **kw})


def test_epsilon_is_split_evenly_or_as_given_and_never_exceeds_the_total() -> None:
    s = q([{"agg": "count"}, {"agg": "sum", "column": "age"}, {"agg": "mean", "column": "age"}])
    assert s.cost().epsilon == Decimal(1) and sum(s.shares()) <= Decimal(1)
    assert s.shares()[0] == Decimal("0.333333333333333")
    explicit = q([{"agg": "count", "epsilon": "0.7"}, {"agg": "sum", "column": "age"}])
    assert explicit.shares() == [Decimal("0.7"), Decimal("0.3")]
    only = QuerySpec.model_validate({"dataset": "population", "select": [{"agg": "count", "epsilon": 0.25}]})
    assert only.cost().epsilon == Decimal("0.25")
    for bad in (
        {"select": [{"agg": "count", "epsilon": "1.5"}]},
        {"select": [{"agg": "count", "epsilon": "0.5"}], "epsilon": "1"},
        {"select": [{"agg": "count"}], "epsilon": None},
        {"select": [{"agg": "count"}], "epsilon": "0"},
    ):
        with pytest.raises(ValidationError):
            QuerySpec.model_validate({"dataset": "population", "epsilon": "1", **bad})


def test_normalized_specs_are_identical_for_identical_questions() -> None:
    a = q([{"agg": "count"}], epsilon="0.50")
    b = q([{"agg": "count"}], epsilon=0.5)
    assert canonical(a) == canonical(b) and canonical(a)["epsilon"] == "0.5"
    assert "float" not in repr(canonical(a))


@pytest.mark.parametrize(
    "bad",
    [
        {"select": []},
        {"select": [{"agg": "count"}] * 21},
        {"select": [{"agg": "count", "column": "age"}]},
        {"select": [{"agg": "mean"}]},
        {"select": [{"agg": "quantile", "column": "age", "quantiles": [0.5, 1.0]}]},
        {"select": [{"agg": "quantile", "column": "age", "quantiles": [0.1] * 2}]},
        {"select": [{"agg": "count"}, {"agg": "count"}]},
        {"select": [{"agg": "mean", "column": "age", "bounds": [10, 5]}]},
        {"select": [{"agg": "count"}], "group_by": ["town", "gender", "education", "town"]},
        {"select": [{"agg": "count"}], "where": [{"column": "town", "op": "in", "value": "城桥镇"}]},
        {"select": [{"agg": "count"}], "where": [{"column": "age", "op": "between", "value": [1]}]},
        {"select": [{"agg": "count"}], "noise": "gaussian"},
        {"select": [{"agg": "count"}], "delta": "0.1", "noise": "laplace"},
        {"select": [{"agg": "count"}], "cohort": "'; DROP TABLE x"},
        {"select": [{"agg": "count"}], "sql": "SELECT 1"},
    ],
)
def test_malformed_specs_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QuerySpec.model_validate({"dataset": "population", "epsilon": "1", **bad})


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (q([{"agg": "mean", "column": "monthly_income", "bounds": [-1, 100]}]), "widen"),
        (q([{"agg": "mean", "column": "monthly_income", "bounds": [0, 50001]}]), "widen"),
        (q([{"agg": "count"}], group_by=["age"]), "not a group-by column"),
        (q([{"agg": "count"}], where=[{"column": "household_size", "value": 2}]), "not filterable"),
        (q([{"agg": "count"}], where=[{"column": "town", "value": "Springfield"}]), "not in the domain"),
        (q([{"agg": "count"}], where=[{"column": "town", "op": "lt", "value": "a"}]), "does not apply"),
        (
            q([{"agg": "count"}], where=[{"column": "birth_date", "op": "ge", "value": "yesterday"}]),
            "not a valid",
        ),
        (q([{"agg": "sum", "column": "town"}]), "not a numeric column"),
        (q([{"agg": "histogram", "column": "employed"}]), "histograms are allowed"),
        (q([{"agg": "histogram", "column": "town"}], group_by=["town"]), "also a group_by"),
        (q([{"agg": "sum", "column": "salary"}]), "no column"),
        (q([{"agg": "quantile", "column": "age"}], delta="0.000001"), "no aggregation uses Gaussian"),
    ],
)
def test_policy_violations_are_invalid_queries(spec: QuerySpec, needle: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        plan_query(spec, POPULATION)
    assert needle in caught.value.detail and caught.value.status == 400


def test_plans_narrow_bounds_split_components_and_list_every_domain_key() -> None:
    plan = plan_query(
        q(
            [{"agg": "mean", "column": "monthly_income", "bounds": [1000, 20000]}, {"agg": "count"}],
            group_by=["town", "gender"],
            where=[
                {"column": "age", "op": "ge", "value": 18},
                {"column": "birth_date", "op": "lt", "value": "2000-01-01"},
            ],
        ),
        POPULATION,
    )
    mean = plan.aggs[0]
    assert (mean.low, mean.high, mean.mid, mean.half) == (1000.0, 20000.0, 10500.0, 9500.0)
    assert mean.component_budget() == (0.25, 0.0) and "1/2" in mean.split_note()
    assert plan.cells == 36 and plan.cell_keys()[:2] == [("城桥镇", "男"), ("城桥镇", "女")]
    assert [w.sql for w in plan.where] == ['"age" >= ?', '"birth_date" < ?']
    assert plan.rows_per_entity == 1 and plan.noise == "laplace"
    gauss = plan_query(q([{"agg": "count"}, {"agg": "sum", "column": "age"}], delta="0.000001"), POPULATION)
    assert gauss.noise == "gaussian" and [a.delta for a in gauss.aggs] == [Decimal("5E-7")] * 2


def test_output_size_is_bounded() -> None:
    policy = POPULATION.model_copy(deep=True)
    assert plan_query(q([{"agg": "count"}], group_by=["town", "gender", "education"]), policy).cells == 180
    levels = [i / 20 for i in range(1, 20)]
    many = [{"agg": "quantile", "column": "age", "quantiles": levels, "name": f"q{i}"} for i in range(6)]
    with pytest.raises(InvalidQuery, match="would release 20520 values"):
        plan_query(q(many, group_by=["town", "gender", "education"]), policy)
    assert MAX_CELLS >= 180


def test_table_and_training_specs() -> None:
    t = TableSpec.model_validate(
        {
            "dataset": "population",
            "statistic": {"agg": "mean", "column": "monthly_income"},
            "dims": ["town"],
            "epsilon": "0.3",
        }
    )
    assert t.label == "mean_monthly_income_by_town" and t.as_query().group_by == ("town",)
    with pytest.raises(ValidationError):
        TableSpec.model_validate(
            {
                "dataset": "population",
                "statistic": {"agg": "histogram", "column": "town"},
                "dims": ["gender"],
                "epsilon": "0.3",
            }
        )
    with pytest.raises(InvalidQuery):
        TableSpec.model_validate(
            {
                "dataset": "population",
                "statistic": {"agg": "count"},
                "dims": ["town"],
                "epsilon": "0.3",
                "noise": "gaussian",
            }
        ).as_query()
    train = TrainSpec.model_validate(
        {
            "dataset": "health_visits",
            "model": "logistic",
            "target": "chronic",
            "features": ["visits", "cost"],
            "epsilon": 1,
            "bounds": {"cost": [0, 20000]},
        }
    )
    plan = plan_training(train, HEALTH)
    assert plan.bounds == {"visits": (0.0, 60.0), "cost": (0.0, 20000.0)} and plan.classes == (0, 1)
    for bad, needle in [
        ({"target": "age_band"}, "binary"),
        ({"bounds": {"cost": [0, 200000]}}, "widen"),
        ({"features": ["town"], "bounds": {}}, "not a numeric"),
        ({"model": "linear", "target": "town", "bounds": {}}, "not a numeric"),
    ]:
        with pytest.raises(InvalidQuery, match=needle):
            plan_training(train.model_copy(update=bad), HEALTH)
    with pytest.raises(ValidationError):
        TrainSpec.model_validate(
            {
                "dataset": "health_visits",
                "model": "logistic",
                "target": "chronic",
                "features": ["chronic"],
                "epsilon": 1,
            }
        )
