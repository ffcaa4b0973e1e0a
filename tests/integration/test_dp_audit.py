"""Empirical DP audit of every mechanism kind: count, sum, mean, quantile and models (naive Bayes, logistic).

The standard black-box audit (as in Jagielski et al. 2020, Nasr et al. 2021): two neighbouring
datasets ``D`` and ``D'`` that differ by one entity (with as many rows as the contribution bound
lets count, its values at the worst place for the statistic), the release run many times on each
with fixed seeds, the outputs binned into events. For every event ``E`` with enough mass the
Clopper–Pearson lower bound of ``P[M(D) ∈ E]`` divided by the upper bound of ``P[M(D') ∈ E]``
(both directions, Bonferroni over the events) must not exceed ``e^ε``: a mechanism whose noise is
too small for its sensitivity — the victim's rows not bounded, a sum's Δ off by a factor, a quantile
score with the wrong sensitivity, a model counting exact class sizes — fails here, while a correct
one passes except with probability about ``1e-4`` per test (the seeds are fixed, so the outcome is
reproducible). For count and sum the observed ratio must also come close to ``e^ε`` (the noise is
calibrated, not merely larger than needed).

Exact aggregates come from DuckDB over Parquet files (the real engine); no database.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import beta

from lab.catalog.policy import Policy, parse_policy
from lab.dp.engine import DuckEngine
from lab.dp.plan import plan_query, plan_training
from lab.dp.release import release
from lab.dp.spec import QuerySpec, TrainSpec
from lab.dp.training import fit

pytestmark = pytest.mark.integration
K = 2  # rows per entity
ALPHA = 1e-4  # the chance that a correct mechanism fails one test
MIN_MASS = 40  # events rarer than this (in both runs) carry no information


def policy() -> Policy:
    return parse_policy(
        {
            "dataset": "audit",
            "title": {"zh": "审计", "en": "audit"},
            "responsible_unit": "测试单位",
            "classification": "L3",
            "personal_information": True,
            "share": {"attribute": "conditional", "conditions": "tests"},
            "open": "non-open",
            "update_cycle": "yearly",
            "columns": [
                {"name": "pid", "role": "entity_key"},
                {"name": "kind", "role": "categorical", "domain": ["a", "b"]},
                {"name": "value", "role": "numeric", "type": "integer", "bounds": [0, 100]},
            ],
            "channels": {
                "dp": {
                    "epsilon_per_project": "10",
                    "epsilon_per_query": "5",
                    "max_rows_per_entity": K,
                    "filterable": ["kind", "value"],
                    "group_by": ["kind"],
                    "min_cell_count": 0,
                }
            },
        }
    )


def rows(victim: bool) -> list[tuple[str, str, int]]:
    rng = np.random.RandomState(0)
    out = [(f"p{i:03d}", "ab"[i % 2], int(rng.randint(0, 60))) for i in range(41)]
    # the victim: more rows than the bound, at the top of the range (the worst case for sums/quantiles)
    return out + ([("victim", "a", 100)] * 5 if victim else [])


def sources(tmp_path: Path) -> tuple[DuckEngine, Path, Path]:
    eng = DuckEngine(tmp_path / "cache", "audit-salt")
    paths = []
    for name, victim in (("with", True), ("without", False)):
        pid, kind, value = zip(*rows(victim), strict=True)
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"pid": list(pid), "kind": list(kind), "value": list(value)}), path)
        paths.append(eng.bounded(path, name, "pid", ["pid", "kind", "value"], K))
    return eng, paths[0], paths[1]


def clopper_pearson(hits: int, n: int, alpha: float) -> tuple[float, float]:
    lo = 0.0 if hits == 0 else float(beta.ppf(alpha / 2, hits, n - hits + 1))
    hi = 1.0 if hits == n else float(beta.ppf(1 - alpha / 2, hits + 1, n - hits))
    return lo, hi


def audit(a: Counter[Any], b: Counter[Any], runs: int, epsilon: float) -> tuple[float, float]:
    """(largest certified lower bound of the ratio, largest observed ratio) over both directions."""
    events = [e for e in set(a) | set(b) if a[e] >= MIN_MASS or b[e] >= MIN_MASS]
    alpha = ALPHA / max(1, 2 * len(events))
    certified, observed = 0.0, 0.0
    for e in events:
        for p, q in ((a, b), (b, a)):
            lo_p, _ = clopper_pearson(p[e], runs, alpha)
            _, hi_q = clopper_pearson(q[e], runs, alpha)
            certified = max(certified, lo_p / hi_q)
            if q[e] >= MIN_MASS and p[e] >= MIN_MASS:
                observed = max(observed, p[e] / q[e])
    return certified, observed


def run_query(
    tmp_path: Path, select: dict[str, Any], epsilon: float, runs: int, event: Callable[[float], Any]
) -> tuple[float, float]:
    eng, with_victim, without = sources(tmp_path)
    spec = QuerySpec.model_validate({"dataset": "audit", "select": [select], "epsilon": str(epsilon)})
    plan = plan_query(spec, policy())
    counts = []
    for source, seed in ((with_victim, 11), (without, 12)):
        exact, rng = eng.aggregate(plan, source), np.random.RandomState(seed)
        counts.append(Counter(event(release(plan, exact, rng)[0].value) for _ in range(runs)))
    return audit(counts[0], counts[1], runs, epsilon)


@pytest.mark.parametrize(
    ("select", "width", "calibrated"),
    [
        ({"agg": "count"}, 1.0, True),  # Δ = K rows
        ({"agg": "sum", "column": "value"}, 40.0, True),  # Δ = K · 100, scale 200 at ε = 1
        ({"agg": "mean", "column": "value"}, 2.0, False),  # count and centered sum, ε/2 each
        ({"agg": "quantile", "column": "value", "quantiles": [0.9]}, 1.0, False),  # tie-aware score
    ],
    ids=["count", "sum", "mean", "quantile"],
)
def test_neighbouring_datasets_stay_within_e_epsilon(
    tmp_path: Path, select: dict[str, Any], width: float, calibrated: bool
) -> None:
    eps = 1.0
    runs = 6000 if select["agg"] == "quantile" else 20_000
    certified, observed = run_query(tmp_path, select, eps, runs, lambda v: math.floor(v / width))
    assert certified <= math.exp(eps), f"an event's probability ratio is certainly above e^ε: {certified}"
    if calibrated:
        assert observed > math.exp(eps) * 0.7  # the bound is nearly reached: the audit has power


def test_a_broken_mechanism_fails_the_audit(tmp_path: Path) -> None:
    """The audit's own power: a count released with a tenth of the stated noise is caught."""
    certified, _ = run_query(tmp_path, {"agg": "count"}, 10.0, 20_000, lambda v: v)
    assert certified > math.exp(1.0)  # what the same release would have to satisfy at ε = 1


def test_naive_bayes_stays_within_e_epsilon(tmp_path: Path) -> None:
    """The model: the released class counts, priors and means of the victim's class."""
    spec = TrainSpec.model_validate(
        {"dataset": "audit", "model": "gaussian_nb", "features": ["value"], "target": "kind", "epsilon": "1"}
    )
    plan = plan_training(spec, policy())
    base = rows(False)
    with_victim = [*base, ("victim", "a", 100)]  # training keeps one row per entity
    eps, runs = 1.0, 8000
    outs = []
    for data, seed in ((with_victim, 21), (base, 22)):
        x = np.array([[float(r[2])] for r in data])
        y = np.array([r[1] for r in data], dtype=object)
        rng = np.random.RandomState(seed)
        events: Counter[Any] = Counter()
        for _ in range(runs):
            p = fit(plan, x, y, rng)  # what the service stores and returns
            prior = p["class_prior"][0]
            total = next((n for n in range(1, 400) if abs(prior * n - round(prior * n)) < 1e-9), 0)
            events[("total", total)] += 1  # the attacker's read-out of the row count
            events[("prior", math.floor(prior * 20))] += 1
            events[("theta", math.floor(p["theta"][0][0] / 5))] += 1
        outs.append(events)
    certified, observed = audit(outs[0], outs[1], runs, eps)
    assert certified <= math.exp(eps)
    assert observed > 1.0  # the victim does move the outputs


def test_logistic_regression_on_a_noisy_size_stays_within_e_epsilon(tmp_path: Path) -> None:
    """The regressions: the released noisy size and the weights, on neighbouring datasets (the victim
    at the top of the feature's range, in the rarer class). diffprivlib's analysis assumes a public
    row count; the lab releases a noisy one first, and this checks the whole release end to end."""
    spec = TrainSpec.model_validate(
        {"dataset": "audit", "model": "logistic", "features": ["value"], "target": "kind", "epsilon": "1"}
    )
    plan = plan_training(spec, policy())
    base = rows(False)
    with_victim = [*base, ("victim", "b", 100)]  # 'b' is the rarer class (20 of 41); one row per entity
    eps, runs = 1.0, 1000  # each fit is an L-BFGS solve (a few ms): kept to seconds
    outs = []
    for data, seed in ((with_victim, 31), (base, 32)):
        x = np.array([[float(r[2])] for r in data])
        y = np.array([r[1] for r in data], dtype=object)
        rng = np.random.RandomState(seed)
        events: Counter[Any] = Counter()
        for _ in range(runs):
            p = fit(plan, x, y, rng)
            events[("rows", p["noisy_rows"])] += 1  # a released exact size would fail here
            events[("coef", math.floor(p["coef"][0] * 25))] += 1
            events[("intercept", math.floor(p["intercept"] / 2))] += 1
        outs.append(events)
    certified, observed = audit(outs[0], outs[1], runs, eps)
    assert certified <= math.exp(eps)
    assert observed > 1.0
