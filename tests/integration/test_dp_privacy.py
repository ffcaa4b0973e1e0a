"""Privacy properties of the engine and the mechanisms, on small Parquet files (DuckDB, no mocks).

* every released value carries noise (two runs differ);
* removing one entity changes the output distribution by at most e^ε (empirical, seeded);
* group keys come only from declared domains; contribution bounding depends only on the entity's rows.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lab.catalog.policy import Policy, parse_policy
from lab.dp.engine import DuckEngine
from lab.dp.plan import plan_query
from lab.dp.release import release
from lab.dp.spec import QuerySpec
from lab.mechanisms import fixed_point_quantum

pytestmark = pytest.mark.integration
K = 3


def policy() -> Policy:
    return parse_policy(
        {
            "dataset": "visits",
            "title": {"zh": "测试", "en": "test"},
            "responsible_unit": "测试单位",
            "classification": "L3",
            "personal_information": True,
            "share": {"attribute": "conditional", "conditions": "tests"},
            "open": "non-open",
            "update_cycle": "yearly",
            "columns": [
                {"name": "pid", "role": "entity_key"},
                {"name": "town", "role": "categorical", "domain": ["A", "B", "C"]},
                {"name": "value", "role": "numeric", "type": "float", "bounds": [0, 100]},
            ],
            "account": {"epsilon": "100", "period_epsilon": "100"},
            "channels": {
                "dp": {
                    "epsilon_per_project": "10",
                    "epsilon_per_query": "5",
                    "max_rows_per_entity": K,
                    "filterable": ["town", "value"],
                    "group_by": ["town"],
                    "min_cell_count": 0,
                }
            },
        }
    )


def write(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    pid, town, value = zip(*rows, strict=True)
    pq.write_table(pa.table({"pid": list(pid), "town": list(town), "value": list(value)}), path)
    return path


def base_rows() -> list[tuple[str, str, float]]:
    rng = np.random.RandomState(0)
    rows = [
        (f"p{i:03d}", "ABC"[i % 3], float(rng.uniform(0, 100))) for i in range(60) for _ in range(1 + i % 2)
    ]
    return rows + [("victim", "A", 90.0 + j) for j in range(5)]  # 5 rows; at most K = 3 count


def engine(tmp_path: Path, salt: str = "test-salt") -> DuckEngine:
    return DuckEngine(tmp_path / "cache", salt)


def prepared(eng: DuckEngine, path: Path, tag: str) -> Path:
    return eng.bounded(path, tag, "pid", ["pid", "town", "value"], K)


def spec(select: list[dict[str, Any]], **kw: Any) -> QuerySpec:
    return QuerySpec.model_validate({"dataset": "visits", "select": select, **kw})


def test_two_runs_of_the_same_query_differ(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    source = prepared(eng, write(tmp_path / "d.parquet", base_rows()), "d")
    plan = plan_query(
        spec([{"agg": "count"}, {"agg": "mean", "column": "value"}], group_by=["town"], epsilon="1"), policy()
    )
    exact = eng.aggregate(plan, source)
    first, second = (release(plan, exact, None) for _ in range(2))  # production randomness
    assert [v.value for v in first] != [v.value for v in second]
    assert all(v.error_95 and v.error_95 > 0 for v in first)


def _ratio_check(a: Counter[Any], b: Counter[Any], epsilon: float, n: int) -> float:
    """Largest ratio of output frequencies over well-populated outputs, asserting it is ≤ e^ε up to
    four standard errors of the estimated log ratio."""
    worst = 0.0
    for x in set(a) & set(b):
        if a[x] >= 400 and b[x] >= 400:
            ratio = max(a[x] / b[x], b[x] / a[x])
            slack = 4 * math.sqrt(1 / a[x] + 1 / b[x])
            assert math.log(ratio) <= epsilon + slack, (x, a[x], b[x])
            worst = max(worst, ratio)
    return worst


@pytest.mark.parametrize("agg", ["count", "sum"])
def test_removing_one_entity_changes_outputs_by_at_most_e_epsilon(tmp_path: Path, agg: str) -> None:
    eng, rows, eps, n = engine(tmp_path), base_rows(), 1.0, 30_000
    with_victim = prepared(eng, write(tmp_path / "d.parquet", rows), "d")
    without = prepared(eng, write(tmp_path / "d2.parquet", [r for r in rows if r[0] != "victim"]), "d2")
    select = {"agg": "count"} if agg == "count" else {"agg": "sum", "column": "value"}
    plan = plan_query(spec([select], epsilon=str(eps)), policy())
    e1, e2 = eng.aggregate(plan, with_victim), eng.aggregate(plan, without)
    key = f"0:{agg}"
    unit = 1.0 if agg == "count" else fixed_point_quantum(100.0)  # sums are exact fixed-point integers
    gap = abs(e1.scalars[key][0] - e2.scalars[key][0]) * unit
    assert gap == K if agg == "count" else K * 90 <= gap <= K * 100  # the victim's kept rows, clamped
    width = 1 if agg == "count" else 50.0  # geometric scale is K·100/ε = 300; bins of a sixth of it
    outs = []
    for exact, seed in ((e1, 1), (e2, 2)):
        rng = np.random.RandomState(seed)
        outs.append(Counter(math.floor(release(plan, exact, rng)[0].value / width) for _ in range(n)))
    worst = _ratio_check(outs[0], outs[1], eps, n)
    assert worst > math.exp(eps) * 0.6  # calibrated, not merely over-noised: the bound is nearly reached


def test_the_contribution_bound_is_what_the_noise_is_calibrated_to(tmp_path: Path) -> None:
    eng, rows = engine(tmp_path), base_rows()
    plan = plan_query(spec([{"agg": "count"}], epsilon="1"), policy())
    a = eng.aggregate(plan, prepared(eng, write(tmp_path / "a.parquet", rows), "a")).scalars["0:count"][0]
    b = eng.aggregate(
        plan, prepared(eng, write(tmp_path / "b.parquet", [r for r in rows if r[0] != "victim"]), "b")
    ).scalars["0:count"][0]
    assert a - b == K  # the victim's 5 rows count 3 times, the sensitivity the geometric noise uses
    assert plan.rows_per_entity == K


def test_group_keys_come_only_from_the_declared_domain(tmp_path: Path) -> None:
    rows = [(f"p{i}", "A", 10.0) for i in range(30)] + [(f"q{i}", "Z", 20.0) for i in range(30)]
    eng = engine(tmp_path)
    source = prepared(eng, write(tmp_path / "d.parquet", rows), "d")
    plan = plan_query(spec([{"agg": "count"}, {"agg": "histogram", "column": "town"}], epsilon="1"), policy())
    grouped = plan_query(spec([{"agg": "count"}], group_by=["town"], epsilon="1"), policy())
    assert grouped.cell_keys() == [("A",), ("B",), ("C",)]
    out = release(grouped, eng.aggregate(grouped, source), np.random.RandomState(0))
    assert [grouped.cell_keys()[v.cell] for v in out] == [("A",), ("B",), ("C",)]  # empty B, C included
    hist = [
        v
        for v in release(plan, eng.aggregate(plan, source), np.random.RandomState(0))
        if v.agg == "histogram"
    ]
    assert [v.key for v in hist] == ["A", "B", "C"]  # 'Z' is in the data but never in the output


def test_bounding_keeps_k_rows_chosen_by_the_entitys_own_rows(tmp_path: Path) -> None:
    rows = base_rows()
    eng = engine(tmp_path)
    full = pq.read_table(prepared(eng, write(tmp_path / "a.parquet", rows), "a")).to_pylist()
    shuffled = list(reversed([r for r in rows if r[0] in ("victim", "p001", "p003")]))
    part = pq.read_table(prepared(eng, write(tmp_path / "b.parquet", shuffled), "b")).to_pylist()
    per_entity = Counter(r["pid"] for r in full)
    assert max(per_entity.values()) == K and per_entity["victim"] == K
    kept = sorted(r["value"] for r in full if r["pid"] == "victim")
    assert kept == sorted(
        r["value"] for r in part if r["pid"] == "victim"
    )  # order and neighbours don't matter
    choices = set()
    for salt in ("s1", "s2", "s3", "s4", "s5"):
        bounded = prepared(
            engine(tmp_path / salt, salt=salt), write(tmp_path / f"{salt}.parquet", rows), salt
        )
        choices.add(
            tuple(sorted(r["value"] for r in pq.read_table(bounded).to_pylist() if r["pid"] == "victim"))
        )
    assert len(choices) > 1  # which rows are kept depends on the secret salt


def test_clamping_uses_the_narrowed_bounds(tmp_path: Path) -> None:
    rows = [(f"p{i}", "B", float(i)) for i in range(100)]
    eng = engine(tmp_path)
    source = prepared(eng, write(tmp_path / "d.parquet", rows), "d")
    plan = plan_query(
        spec(
            [{"agg": "sum", "column": "value", "bounds": [10, 50]}],
            where=[{"column": "town", "value": "B"}],
            epsilon="1",
        ),
        policy(),
    )
    assert eng.aggregate(plan, source).scalars["0:sum"][0] * fixed_point_quantum(50.0) == pytest.approx(
        sum(min(max(i, 10), 50) for i in range(100))
    )
