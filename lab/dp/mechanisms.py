"""Noise from vetted diffprivlib mechanisms, with each mechanism's error bound in closed form.

* counts — :class:`diffprivlib.mechanisms.Geometric` (two-sided geometric, pure ε), or
  :class:`~diffprivlib.mechanisms.GaussianAnalytic` rounded to an integer for (ε, δ);
* sums — :class:`~diffprivlib.mechanisms.Laplace` (pure ε) or ``GaussianAnalytic`` (ε, δ);
* quantiles — :class:`~diffprivlib.mechanisms.Exponential` over a data-independent grid.

Every wrapper states its bound: the half-width ``t`` with ``P(|noise| <= t) >= confidence``.

* Geometric, ``α = exp(-ε/Δ)``: ``P(|Z| >= t) = 2 α^t / (1 + α)`` for integers ``t >= 1``;
  the bound is the least integer ``t`` with ``2 α^(t+1) / (1 + α) <= 1 - confidence``.
* Laplace, ``b = Δ/ε``: ``P(|Z| > t) = exp(-t/b)``, so ``t = b · ln(1 / (1 - confidence))``.
* Gaussian, ``σ`` from the analytic calibration (Balle & Wang 2018): ``t = σ · Φ⁻¹((1 + confidence)/2)``
  (plus 0.5 when rounded to an integer).
* Exponential over ``m`` candidates with utility sensitivity ``Δ``: the chosen candidate's utility is
  within ``(2Δ/ε) · (ln m + ln(1 / (1 - confidence)))`` of the best one (McSherry & Talwar 2007).

>>> round(GeometricCount(1.0, 1).bound(0.95)), round(LaplaceSum(1.0, 1.0).bound(0.95), 4)
(3, 2.9957)

``rng`` is ``None`` in production (diffprivlib then draws from :class:`secrets.SystemRandom`);
tests pass a seeded :class:`numpy.random.RandomState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from diffprivlib.mechanisms import Exponential, GaussianAnalytic, Geometric, Laplace

Rng = Any  # numpy RandomState, secrets.SystemRandom or None


def _ppf(confidence: float) -> float:
    return NormalDist().inv_cdf((1 + confidence) / 2)


@dataclass(frozen=True)
class NoiseInfo:
    """What a mechanism is, for responses: name, parameters, and its 95% bound."""

    quantity: str
    mechanism: str
    epsilon: float
    delta: float
    sensitivity: float
    scale: float
    error_95: float
    unit: str = "value"

    def label(self) -> str:
        extra = f", δ={self.delta:g}" if self.delta else ""
        return f"{self.mechanism}(ε={self.epsilon:g}{extra}, Δ={self.sensitivity:g})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "quantity": self.quantity,
            "mechanism": self.mechanism,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "sensitivity": self.sensitivity,
            "scale": self.scale,
            "error_95": self.error_95,
            "unit": self.unit,
        }


class GeometricCount:
    """Integer counts with the two-sided geometric mechanism (``Δ`` = rows per entity)."""

    name = "Geometric"

    def __init__(self, epsilon: float, sensitivity: int) -> None:
        self.epsilon, self.sensitivity, self.delta = epsilon, int(sensitivity), 0.0
        self.alpha = math.exp(-epsilon / self.sensitivity)

    @property
    def scale(self) -> float:
        return self.sensitivity / self.epsilon

    def bound(self, confidence: float = 0.95) -> float:
        beta = 1 - confidence
        t = math.ceil(math.log(beta * (1 + self.alpha) / 2) / math.log(self.alpha)) - 1
        return float(max(t, 0))

    def randomise(self, values: np.ndarray, rng: Rng) -> np.ndarray:
        mech = Geometric(epsilon=self.epsilon, sensitivity=self.sensitivity, random_state=rng)
        return np.array([mech.randomise(int(v)) for v in values], dtype=np.int64)

    def info(self, quantity: str) -> NoiseInfo:
        return NoiseInfo(quantity, self.name, self.epsilon, 0.0, self.sensitivity, self.scale, self.bound())


class LaplaceSum:
    """Real-valued sums with the Laplace mechanism (``Δ`` = rows per entity × largest |value|)."""

    name = "Laplace"

    def __init__(self, epsilon: float, sensitivity: float) -> None:
        self.epsilon, self.sensitivity, self.delta = epsilon, float(sensitivity), 0.0

    @property
    def scale(self) -> float:
        return self.sensitivity / self.epsilon

    def bound(self, confidence: float = 0.95) -> float:
        return self.scale * math.log(1 / (1 - confidence))

    def randomise(self, values: np.ndarray, rng: Rng) -> np.ndarray:
        mech = Laplace(epsilon=self.epsilon, sensitivity=self.sensitivity, random_state=rng)
        return np.array([mech.randomise(float(v)) for v in values], dtype=np.float64)

    def info(self, quantity: str) -> NoiseInfo:
        return NoiseInfo(quantity, self.name, self.epsilon, 0.0, self.sensitivity, self.scale, self.bound())


class GaussianValue:
    """(ε, δ) noise with the analytic Gaussian mechanism (``Δ`` is the L2 sensitivity);
    ``integer=True`` rounds the output (counts)."""

    name = "GaussianAnalytic"

    def __init__(self, epsilon: float, delta: float, sensitivity: float, integer: bool = False) -> None:
        self.epsilon, self.delta, self.sensitivity, self.integer = epsilon, delta, float(sensitivity), integer
        self._mech = GaussianAnalytic(epsilon=epsilon, delta=delta, sensitivity=self.sensitivity)

    @property
    def scale(self) -> float:
        return float(self._mech._scale)

    def bound(self, confidence: float = 0.95) -> float:
        return self.scale * _ppf(confidence) + (0.5 if self.integer else 0.0)

    def randomise(self, values: np.ndarray, rng: Rng) -> np.ndarray:
        mech = GaussianAnalytic(
            epsilon=self.epsilon, delta=self.delta, sensitivity=self.sensitivity, random_state=rng
        )
        out = np.array([mech.randomise(float(v)) for v in values], dtype=np.float64)
        return np.rint(out).astype(np.int64) if self.integer else out

    def info(self, quantity: str) -> NoiseInfo:
        return NoiseInfo(
            quantity, self.name, self.epsilon, self.delta, self.sensitivity, self.scale, self.bound()
        )


CountNoise = GeometricCount | GaussianValue
SumNoise = LaplaceSum | GaussianValue


def count_noise(epsilon: float, delta: float, rows_per_entity: int) -> CountNoise:
    """Noise for a count (or each count of a vector of disjoint counts)."""
    if delta > 0:
        return GaussianValue(epsilon, delta, rows_per_entity, integer=True)
    return GeometricCount(epsilon, rows_per_entity)


def sum_noise(epsilon: float, delta: float, sensitivity: float) -> SumNoise:
    """Noise for a bounded sum (or each sum of a vector of disjoint sums)."""
    if delta > 0:
        return GaussianValue(epsilon, delta, sensitivity)
    return LaplaceSum(epsilon, sensitivity)


class QuantileChoice:
    """The exponential mechanism choosing a grid point whose rank is closest to ``q · n``.

    Utility of candidate ``c_j``: ``-|#{v <= c_j} - q · n|``; adding or removing one entity (at most
    ``Δ`` rows) changes it by at most ``Δ``. Candidates are fixed by the bounds, never by the data.
    """

    name = "Exponential"

    def __init__(self, epsilon: float, sensitivity: int, candidates: np.ndarray) -> None:
        self.epsilon, self.sensitivity, self.candidates = epsilon, int(sensitivity), candidates

    @property
    def scale(self) -> float:
        return 2 * self.sensitivity / self.epsilon

    def bound(self, confidence: float = 0.95) -> float:
        """Rank error: the chosen point's rank is this close to ``q · n`` (up to the grid's spacing)."""
        return self.scale * (math.log(len(self.candidates)) + math.log(1 / (1 - confidence)))

    def choose(self, cumulative: np.ndarray, q: float, rng: Rng) -> float:
        """Pick a candidate given ``cumulative[j] = #{v <= c_j}`` (the last entry is ``n``)."""
        n = float(cumulative[-1])
        utility = (-np.abs(cumulative.astype(np.float64) - q * n)).tolist()
        mech = Exponential(
            epsilon=self.epsilon,
            sensitivity=self.sensitivity,
            utility=utility,
            candidates=self.candidates.tolist(),
            random_state=rng,
        )
        return float(mech.randomise())

    def info(self, quantity: str) -> NoiseInfo:
        return NoiseInfo(
            quantity, self.name, self.epsilon, 0.0, self.sensitivity, self.scale, self.bound(), "rank"
        )


def quantile_grid(low: float, high: float, integer: bool, max_points: int = 1001) -> np.ndarray:
    """Data-independent candidates: every integer in ``[low, high]`` if few enough, else an even grid."""
    if integer and math.floor(high) - math.ceil(low) + 1 <= max_points:
        return np.arange(math.ceil(low), math.floor(high) + 1, dtype=np.float64)
    return np.linspace(low, high, max_points)
