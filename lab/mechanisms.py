"""Noise from vetted diffprivlib mechanisms, with each mechanism's error bound in closed form.

* counts — :class:`diffprivlib.mechanisms.Geometric` (two-sided geometric, pure ε), or
  :class:`~diffprivlib.mechanisms.GaussianAnalytic` rounded to an integer for (ε, δ);
* sums (and the centered sums behind means, variances, naive Bayes) — **fixed point**: every clamped
  value is rounded to a multiple of a power-of-two quantum ``q`` fixed by the bounds (``M / q`` in
  ``[2^19, 2^20)`` for the largest magnitude ``M``), the engine sums those integers exactly, and the
  noise is the same integer noise as for counts with sensitivity ``k · ⌈M / q⌉`` units. No
  floating-point noise ever touches a released sum, so the attacks on floating-point Laplace
  samplers (Mironov 2012) have no low-order bits to read; the released float is the noisy integer
  times ``q`` (post-processing);
* quantiles — :class:`~diffprivlib.mechanisms.Exponential` over a data-independent grid, with
  OpenDP's tie-aware score.

Every wrapper states its bound: the half-width ``t`` with ``P(|noise| <= t) >= confidence``.

* Geometric, ``α = exp(-ε/Δ)``: ``P(|Z| >= t) = 2 α^t / (1 + α)`` for integers ``t >= 1``;
  the bound is the least integer ``t`` with ``2 α^(t+1) / (1 + α) <= 1 - confidence``.
* Laplace, ``b = Δ/ε``: ``P(|Z| > t) = exp(-t/b)``, so ``t = b · ln(1 / (1 - confidence))``.
* Gaussian, ``σ`` from the analytic calibration (Balle & Wang 2018): ``t = σ · Φ⁻¹((1 + confidence)/2)``
  (plus 0.5 when rounded to an integer).
* Fixed-point sums: the integer noise's bound times ``q`` (rounding adds at most ``q / 2`` per row).
* Exponential over ``m`` candidates with utility sensitivity ``Δ``: the chosen candidate's utility is
  within ``(2Δ/ε) · (ln m + ln(1 / (1 - confidence)))`` of the best one (McSherry & Talwar 2007).

>>> round(GeometricCount(1.0, 1).bound(0.95)), round(LaplaceSum(1.0, 1.0).bound(0.95), 4)
(3, 2.9957)

``rng`` is ``None`` in production (diffprivlib then draws from :class:`secrets.SystemRandom`);
tests pass a seeded :class:`numpy.random.RandomState`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from diffprivlib.mechanisms import Exponential, GaussianAnalytic, Geometric, Laplace

Rng = Any  # numpy RandomState, secrets.SystemRandom or None


def keyed_rng(key: bytes, label: str) -> np.random.RandomState:
    """A generator seeded by ``HMAC-SHA256(key, label)``: the same draw for the same label, every time.

    For a release that must repeat itself (a catalog size, a PSI padding count): asking again returns
    the value already released, so the noise cannot be averaged away; without ``key`` nobody can
    reproduce the draw.

    >>> a, b = keyed_rng(b"k", "x"), keyed_rng(b"k", "x")
    >>> a.randint(1 << 30) == b.randint(1 << 30), keyed_rng(b"k", "y").randint(1 << 30) == a.randint(1 << 30)
    (True, False)
    """
    tag = hmac.new(key, label.encode(), hashlib.sha256).digest()
    return np.random.RandomState(np.random.MT19937(np.random.SeedSequence(int.from_bytes(tag[:16], "big"))))


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
        log_alpha = -self.epsilon / self.sensitivity  # exact even when α rounds to 1.0
        t = math.ceil(math.log(beta * (1 + self.alpha) / 2) / log_alpha) - 1
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
        if self.integer:  # noise drawn without the input and rounded, then added as an integer
            noise = [int(np.rint(mech.randomise(0.0))) for _ in values]
            return np.array([int(v) + z for v, z in zip(values, noise, strict=True)], dtype=np.int64)
        return np.array([mech.randomise(float(v)) for v in values], dtype=np.float64)

    def info(self, quantity: str) -> NoiseInfo:
        return NoiseInfo(
            quantity, self.name, self.epsilon, self.delta, self.sensitivity, self.scale, self.bound()
        )


#: Fixed-point sums keep this many bits of the largest magnitude (relative rounding ≤ 2^-20 per row).
FIXED_POINT_BITS = 20


def fixed_point_quantum(magnitude: float) -> float:
    """The power of two ``q`` with ``magnitude / q`` in ``[2^19, 2^20)``.

    >>> fixed_point_quantum(50000.0) == 2.0**-4, 50000 / 2.0**-4 < 2**20
    (True, True)
    """
    if not (math.isfinite(magnitude) and magnitude > 0):
        raise ValueError("a fixed-point magnitude must be finite and positive")
    return math.ldexp(1.0, math.frexp(magnitude)[1] - FIXED_POINT_BITS)


class FixedPointSum:
    """A bounded sum released in fixed point: exact integer units of ``q`` plus integer noise.

    ``magnitude`` is the largest ``|value|`` of one row (after clamping), ``rows_per_entity`` the rows
    one entity may have; the engine supplies ``Σ round(value / q)`` as an exact integer.
    """

    def __init__(self, epsilon: float, delta: float, rows_per_entity: int, magnitude: float) -> None:
        self.epsilon, self.delta = epsilon, delta
        self.quantum = fixed_point_quantum(magnitude)
        self.units = int(rows_per_entity) * math.ceil(magnitude / self.quantum)
        self.sensitivity = self.units * self.quantum
        self._noise: GeometricCount | GaussianValue = (
            GaussianValue(epsilon, delta, self.units, integer=True)
            if delta > 0
            else GeometricCount(epsilon, self.units)
        )
        self.name = "FixedPointGaussian" if delta > 0 else "FixedPointGeometric"

    @property
    def scale(self) -> float:
        return self._noise.scale * self.quantum

    def bound(self, confidence: float = 0.95) -> float:
        return self._noise.bound(confidence) * self.quantum

    def randomise(self, units: np.ndarray, rng: Rng) -> np.ndarray:
        """Noisy sums (in value units) from exact integer sums in units of ``q``."""
        noise = self._noise.randomise(np.zeros(len(units), dtype=np.int64), rng)
        return np.array([(int(u) + int(z)) * self.quantum for u, z in zip(units, noise, strict=True)])

    def info(self, quantity: str) -> NoiseInfo:
        return NoiseInfo(
            quantity, self.name, self.epsilon, self.delta, self.sensitivity, self.scale, self.bound()
        )


CountNoise = GeometricCount | GaussianValue
SumNoise = FixedPointSum


def count_noise(epsilon: float, delta: float, rows_per_entity: int) -> CountNoise:
    """Noise for a count (or each count of a vector of disjoint counts)."""
    if delta > 0:
        return GaussianValue(epsilon, delta, rows_per_entity, integer=True)
    return GeometricCount(epsilon, rows_per_entity)


def sum_noise(epsilon: float, delta: float, rows_per_entity: int, magnitude: float) -> SumNoise:
    """Noise for a bounded sum (or each sum of a vector of disjoint sums), in fixed point."""
    return FixedPointSum(epsilon, delta, rows_per_entity, magnitude)


class QuantileChoice:
    """The exponential mechanism choosing the grid point that best splits the values at level ``q``.

    Tie-aware score, as OpenDP's ``make_quantile_score_candidates``: for candidate ``c_j``,
    ``score_j = |(1 - q) · #{v < c_j} - q · #{v > c_j}|`` (values equal to ``c_j`` count on neither
    side, so a heavy tie at the true quantile scores 0 instead of ``q · n``); utility ``-score``.
    Adding or removing one entity (at most ``k`` rows) moves one of the two counts by at most ``k``
    per row set, so the score changes by at most ``Δ = k · max(q, 1 - q)``. Candidates are fixed by
    the bounds, never by the data.
    """

    name = "Exponential"

    def __init__(self, epsilon: float, rows_per_entity: int, candidates: np.ndarray, q: float = 0.5) -> None:
        self.epsilon, self.candidates, self.q = epsilon, candidates, q
        self.rows_per_entity = int(rows_per_entity)
        self.sensitivity = self.rows_per_entity * max(q, 1 - q)

    @property
    def scale(self) -> float:
        return 2 * self.sensitivity / self.epsilon

    def bound(self, confidence: float = 0.95) -> float:
        """Score excess: with this confidence the chosen point's score is within this of the best
        grid point's (so at most ``q·n + bound + s*`` values lie below it and ``(1-q)·n + bound + s*``
        above it, ``s*`` being the best grid point's own score)."""
        return self.scale * (math.log(len(self.candidates)) + math.log(1 / (1 - confidence)))

    def score(self, below: np.ndarray, above: np.ndarray) -> np.ndarray:
        return np.abs((1 - self.q) * below.astype(np.float64) - self.q * above.astype(np.float64))

    def choose(self, below: np.ndarray, above: np.ndarray, rng: Rng) -> float:
        """Pick a candidate given ``below[j] = #{v < c_j}`` and ``above[j] = #{v > c_j}``."""
        mech = Exponential(
            epsilon=self.epsilon,
            sensitivity=self.sensitivity,
            utility=(-self.score(below, above)).tolist(),
            candidates=self.candidates.tolist(),
            random_state=rng,
        )
        return float(mech.randomise())

    def info(self, quantity: str) -> NoiseInfo:
        return NoiseInfo(
            quantity, self.name, self.epsilon, 0.0, self.sensitivity, self.scale, self.bound(), "score"
        )


def quantile_grid(low: float, high: float, integer: bool, max_points: int = 1001) -> np.ndarray:
    """Data-independent candidates: every integer in ``[low, high]`` if few enough, else an even grid."""
    if integer and math.floor(high) - math.ceil(low) + 1 <= max_points:
        return np.arange(math.ceil(low), math.floor(high) + 1, dtype=np.float64)
    return np.linspace(low, high, max_points)
