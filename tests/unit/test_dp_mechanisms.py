"""The mechanisms' stated 95% bounds match theory and the diffprivlib samplers (seeded, no I/O)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.dp.plan import down
from lab.mechanisms import (
    GaussianValue,
    GeometricCount,
    LaplaceSum,
    QuantileChoice,
    count_noise,
    quantile_grid,
)

N = 20_000


def _coverage(mech: GeometricCount | LaplaceSum | GaussianValue, seed: int = 7) -> float:
    noisy = mech.randomise(np.zeros(N), np.random.RandomState(seed))
    return float(np.mean(np.abs(noisy) <= mech.bound()))


@pytest.mark.parametrize(("epsilon", "k"), [(1.0, 1), (0.5, 1), (1.0, 3), (0.1, 2)])
def test_geometric_bound_is_the_closed_form_and_holds(epsilon: float, k: int) -> None:
    m = GeometricCount(epsilon, k)
    alpha = math.exp(-epsilon / k)
    t = int(m.bound())
    tail = lambda s: 2 * alpha**s / (1 + alpha)  # noqa: E731 - P(|Z| >= s), s >= 1
    assert tail(t + 1) <= 0.05 < (tail(t) if t >= 1 else 1.0)  # the least such integer
    theory = 1 - tail(t + 1)
    assert abs(_coverage(m) - theory) < 4 * math.sqrt(theory * (1 - theory) / N)


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(1.0, 1.0), (0.25, 100.0)])
def test_laplace_bound_is_b_ln_20_and_holds(epsilon: float, sensitivity: float) -> None:
    m = LaplaceSum(epsilon, sensitivity)
    assert m.bound() == pytest.approx(sensitivity / epsilon * math.log(20))
    assert abs(_coverage(m) - 0.95) < 4 * math.sqrt(0.95 * 0.05 / N)


def test_gaussian_bound_uses_the_analytic_sigma() -> None:
    m = GaussianValue(0.5, 1e-6, 2.0)
    classic = math.sqrt(2 * math.log(1.25 / 1e-6)) * 2.0 / 0.5
    assert 0 < m.scale < classic  # the analytic calibration is tighter than the classic one
    assert m.bound() == pytest.approx(1.959964 * m.scale, rel=1e-5)
    assert abs(_coverage(m) - 0.95) < 4 * math.sqrt(0.95 * 0.05 / N)
    counts = count_noise(0.5, 1e-6, 2)
    assert (
        isinstance(counts, GaussianValue)
        and counts.integer
        and counts.bound() == pytest.approx(m.bound() + 0.5)
    )
    assert counts.randomise(np.array([10.0]), np.random.RandomState(0)).dtype == np.int64


def test_exponential_quantile_is_within_its_score_bound() -> None:
    rng = np.random.RandomState(3)
    data = np.sort(rng.uniform(0, 100, 5000))
    grid = quantile_grid(0, 100, integer=False)
    below = np.searchsorted(data, grid, side="left").astype(float)
    above = len(data) - np.searchsorted(data, grid, side="right").astype(float)
    m = QuantileChoice(0.5, 1, grid, 0.5)
    ranks = [np.searchsorted(data, m.choose(below, above, rng), side="right") for _ in range(300)]
    errors = np.abs(np.array(ranks) - 2500)
    assert np.mean(errors <= m.bound() + 10) >= 0.95  # + the grid's own spacing (~5 rows per step)
    assert m.bound() == pytest.approx(2 * 0.5 / 0.5 * (math.log(len(grid)) + math.log(20)))
    assert list(quantile_grid(0, 10, integer=True)) == list(range(11))


def test_tie_aware_score_finds_a_heavily_tied_median() -> None:
    """All values equal: the old ``|#{v ≤ c} - q·n|`` scored every candidate n/2 (a uniform pick)."""
    grid = quantile_grid(0, 100, integer=True)
    data = np.full(1000, 37.0)
    below = np.searchsorted(data, grid, side="left").astype(float)
    above = len(data) - np.searchsorted(data, grid, side="right").astype(float)
    m = QuantileChoice(1.0, 1, grid, 0.5)
    picks = [m.choose(below, above, np.random.RandomState(s)) for s in range(50)]
    assert all(p == 37.0 for p in picks)


def test_float_shares_never_exceed_their_decimal() -> None:
    from decimal import Decimal

    for text in ("0.1", "0.333333333333333", "0.2", "1"):
        assert Decimal(down(Decimal(text))) <= Decimal(text)


@pytest.mark.parametrize("delta", [0.0, 1e-6], ids=["geometric", "gaussian"])
def test_fixed_point_sums_carry_no_input_dependent_low_order_bits(delta: float) -> None:
    """Floating-point safety (Mironov 2012): a released sum is an exact integer number of quanta, and
    the noise is drawn without the input, so the released value minus the exact one has the same
    law — bit for bit — whatever the exact value is; nothing in the low-order bits tells two inputs apart."""
    from lab.mechanisms import sum_noise

    m = sum_noise(1.0, delta, 2, 12345.678)
    assert m.name == ("FixedPointGaussian" if delta else "FixedPointGeometric")
    q = m.quantum
    assert q == 2.0**-6 and 12345.678 / q < 2**20  # a power of two: units × q is exact
    a = m.randomise(np.array([0, 987_654_321], dtype=object), np.random.RandomState(5))
    b = m.randomise(np.array([1, 987_654_320], dtype=object), np.random.RandomState(5))
    assert all(float(v / q).is_integer() for v in [*a, *b])
    assert (a[0] - b[0], a[1] - b[1]) == (-q, q)  # the same noise, shifted by exactly the input's step
