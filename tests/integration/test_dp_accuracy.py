"""Accuracy on the sample population at scale 100k: 200 seeded runs against the engine.

Counts and means at ε = 1 must fall within their stated 95% bound in at least 90% of runs, and the
count bound must match the geometric mechanism's closed form — both the formula and the empirical
coverage it predicts (which also catches over-noising: a broken mechanism that adds too much noise
would cover far more than 95%).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lab.catalog.service import CatalogFetcher
from lab.db.migrate import upgrade
from lab.dp.engine import DuckEngine
from lab.dp.plan import plan_query
from lab.dp.release import release
from lab.dp.spec import QuerySpec
from lab.mechanisms import GeometricCount
from lab.runtime import Runtime
from lab.storage.seaweed import SeaweedServer
from tests.conftest import make_settings
from tests.factories import import_sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RUNS = 200


@pytest.fixture(scope="module")
def population(seaweed: SeaweedServer) -> Iterator[tuple[Any, Path, DuckEngine]]:
    """The 100k sample imported through the real catalog (SQLite + SeaweedFS), fetched and verified."""
    base = Path(tempfile.mkdtemp(prefix="lab-dp-accuracy-"))
    settings = make_settings(f"sqlite:///{base / 'lab.sqlite'}", base / "data", seaweed)
    upgrade(settings.db_url)
    rt = Runtime(settings)
    rt.store.ensure_buckets()
    version = import_sample(rt, ["population"], 100_000, base)["population"]
    path = CatalogFetcher(rt.store).fetch(version, rt.cache_dir)
    eng = DuckEngine(rt.cache_dir, "accuracy-salt")
    yield (
        version,
        eng.bounded(path, version.sha256, "person_id", [c.name for c in version.policy.columns], 1),
        eng,
    )
    rt.close()


def _runs(
    version: Any, source: Path, eng: DuckEngine, body: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, Any]:
    plan = plan_query(QuerySpec.model_validate({"dataset": "population", **body}), version.policy)
    values, bounds = [], []
    for seed in range(RUNS):
        out = release(plan, eng.aggregate(plan, source), np.random.RandomState(seed))
        values.append([v.value for v in out])
        bounds.append([v.error_95 for v in out])
    return np.array(values), np.array(bounds, dtype=float), plan


def test_counts_at_epsilon_1_match_the_geometric_bound(population: Any) -> None:
    version, source, eng = population
    truth = pd.read_parquet(source, columns=["town"]).groupby("town").size()
    values, bounds, plan = _runs(
        version, source, eng, {"select": [{"agg": "count"}], "group_by": ["town"], "epsilon": "1"}
    )
    expected = truth.reindex([k[0] for k in plan.cell_keys()]).to_numpy()
    alpha = math.exp(-1.0)
    t = math.ceil(math.log(0.05 * (1 + alpha) / 2) / math.log(alpha)) - 1  # closed form, Δ = 1
    assert t == 3 and np.all(bounds == t) and GeometricCount(1.0, 1).bound() == t
    covered = np.abs(values - expected) <= bounds
    theory = 1 - 2 * alpha ** (t + 1) / (1 + alpha)  # P(|Z| <= t) = 0.9732
    assert covered.mean() >= 0.90
    assert abs(covered.mean() - theory) < 0.015, (covered.mean(), theory)
    assert (covered.mean(axis=1) >= 0.5).all()  # no run is wildly off
    errors = (values - expected).ravel()
    assert (
        abs(errors.mean()) < 0.1 and abs(errors.var() - 2 * alpha / (1 - alpha) ** 2) < 0.3
    )  # unbiased, var


@pytest.mark.parametrize("group_by", [["town"], []], ids=["by-town", "overall"])
def test_means_at_epsilon_1_fall_within_their_bound(population: Any, group_by: list[str]) -> None:
    version, source, eng = population
    frame = pd.read_parquet(source, columns=["town", "monthly_income"])
    body = {
        "select": [{"agg": "mean", "column": "monthly_income", "bounds": [0, 20000]}],
        "group_by": group_by,
        "epsilon": "1",
    }
    values, bounds, plan = _runs(version, source, eng, body)
    clipped = frame.assign(v=frame.monthly_income.clip(0, 20000))
    if group_by:
        expected = clipped.groupby("town").v.mean().reindex([k[0] for k in plan.cell_keys()]).to_numpy()
    else:
        expected = np.array([clipped.v.mean()])
    covered = np.abs(values - expected) <= bounds
    assert covered.mean() >= 0.90
    assert np.all(bounds > 0) and np.all(bounds < 20000)
    # the stated bound tracks the real error: generous (a union bound) but not vacuous
    typical = np.median(np.abs(values - expected))
    assert typical < np.median(bounds) < 40 * max(typical, 1e-9)
