"""The catalog's noisy size: a distinct-entity count, noise at the stated ε with sensitivity one entity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lab.catalog.policy import load_policy
from lab.catalog.visibility import CATALOG_EPSILON, ROUNDING, SENSITIVITY, noisy_entity_count, shown_entry
from lab.identity import Principal, Role

KEY = b"unit-test-key-".ljust(32, b"k")
POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "health_visits.yaml")


def _entry(rows: int, entities: int | None, version: int = 1) -> dict[str, object]:
    return {"id": "health_visits", "version": version, "row_count": rows, "entity_count": entities}


def test_operators_see_the_entity_count_and_the_bureau_the_exact_rows() -> None:
    operator = Principal(name="alice", kind="user", roles=frozenset({Role.operator}))
    bureau = Principal(name="bureau1", kind="user", roles=frozenset({Role.bureau}))
    seen = shown_entry(_entry(5000, 1000), POLICY, operator, KEY)
    assert seen["counted"] == "entities" and not seen["row_count_exact"]
    assert seen["row_count"] == seen["entity_count"] == noisy_entity_count(1000, KEY, "health_visits", 1)
    assert abs(seen["row_count"] - 1000) < 200  # near the 1,000 residents, nowhere near the 5,000 rows
    exact = shown_entry(_entry(5000, 1000), POLICY, bureau, KEY)
    assert (exact["row_count"], exact["entity_count"], exact["counted"]) == (5000, 1000, "rows")


def test_noise_scale_is_the_stated_epsilon_with_sensitivity_one() -> None:
    """Across versions (independent seeds) the error has a two-sided geometric's variance at ε = 0.1.

    Var Z = 2α/(1−α)² with α = exp(−ε/Δ): 199.6 for Δ = 1; a sensitivity of k rows would scale the
    standard deviation by k (Δ = 2 already gives 809). Rounding to 10 adds at most 10²/12 ≈ 8.3.
    """
    assert (CATALOG_EPSILON, SENSITIVITY) == (0.1, 1)
    m, n = 10_000, 4000
    err = np.array([noisy_entity_count(m, KEY, "health_visits", v) - m for v in range(1, n + 1)], dtype=float)
    alpha = math.exp(-CATALOG_EPSILON / SENSITIVITY)
    expected = 2 * alpha / (1 - alpha) ** 2 + ROUNDING**2 / 12
    assert abs(err.mean()) < 1.5  # unbiased (standard error ≈ 0.23)
    assert 0.85 * expected < err.var() < 1.15 * expected, (err.var(), expected)
    assert (err % ROUNDING == 0).all()


def test_repeated_reads_return_one_value_per_version() -> None:
    a = [noisy_entity_count(321, KEY, "health_visits", 7) for _ in range(5)]
    assert len(set(a)) == 1
