"""Turn exact aggregates into released values: noise, post-processing and 95% error bounds.

Sensitivities (privacy unit: one entity, added or removed, with at most ``k`` rows; clamping to
``[lo, hi]``, ``mid = (lo + hi)/2``, ``h = (hi - lo)/2``) — the same for every cell, since one
entity's rows spread over cells add up to at most ``k`` (L1; L2 is at most ``k`` too):

============================  ==========================  =========================
component                     sensitivity                 noise
============================  ==========================  =========================
count, histogram bin          ``k``                       Geometric / Gaussian
sum                           ``k · max(|lo|, |hi|)``     fixed-point Geometric / Gaussian
centered sum ``Σ(v - mid)``   ``k · h``                   fixed-point Geometric / Gaussian
centered sum of squares       ``k · h²``                  fixed-point Geometric / Gaussian
quantile score                ``k · max(q, 1 - q)``       Exponential (tie-aware score)
============================  ==========================  =========================

Derived values and their bounds use only noisy values (post-processing), with a union bound over
the components, each taken at confidence ``1 - 0.05/c``:

* mean = mid + clamp(S'/N', −h, h); error ≤ min((t_S + h·t_N) / N', (t_S + |S'/N'|·t_N) / (N' − t_N), 2h)
  (from the exact identity S'/N' − (mean − mid) = (e_S − (mean − mid)·e_N) / N');
* variance = clamp(Q'/N' − clamp(S'/N', −h, h)², 0, h²); error ≤ min(d_Q + 2h·d_S, h²) with
  d_Q = (t_Q + h²·t_N)/N', d_S = (t_S + h·t_N)/N'; stddev = √variance, error ≤ √(variance error);
* when the noisy count N' < 1 the value is the midpoint of its range and the bound is the half-range.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lab.dp.engine import Exact
from lab.dp.plan import COMPONENTS, PlannedAgg, QueryPlan
from lab.mechanisms import NoiseInfo, QuantileChoice, Rng, count_noise, quantile_grid, sum_noise

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Value:
    """One released value of one cell."""

    cell: int
    name: str
    agg: str
    column: str | None
    key: str | None  # quantile level or histogram bin
    value: float
    error_95: float | None
    unit: str
    mechanism: str
    flag: str | None


@dataclass(frozen=True)
class AggRelease:
    """How one aggregation was (or would be) released."""

    name: str
    agg: str
    column: str | None
    bounds: tuple[float, float] | None
    epsilon: str
    delta: str
    split: str
    components: list[NoiseInfo]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agg": self.agg,
            "column": self.column,
            "bounds": list(self.bounds) if self.bounds else None,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "split": self.split,
            "components": [c.as_dict() for c in self.components],
        }


def mechanisms_for(a: PlannedAgg, k: int) -> dict[str, Any]:
    """The noise of each component of ``a`` (fixed by the plan; no data involved)."""
    eps, delta = a.component_budget()
    if a.agg == "quantile":
        grid = quantile_grid(a.low, a.high, a.integer)
        return {f"q={q:g}": QuantileChoice(eps, k, grid, q) for q in a.levels}
    return {
        comp: count_noise(eps, delta, k) if comp == "count" else sum_noise(eps, delta, k, a.magnitude(comp))
        for comp in COMPONENTS[a.agg]
    }


def describe(plan: QueryPlan) -> list[AggRelease]:
    """Mechanisms, parameters and component bounds of every aggregation (what :func:`preview` shows)."""
    out = []
    for a in plan.aggs:
        mechs = mechanisms_for(a, plan.rows_per_entity)
        numeric = a.agg not in ("count", "histogram")
        out.append(
            AggRelease(
                name=a.label,
                agg=a.agg,
                column=a.spec.column,
                bounds=(a.low, a.high) if numeric else None,
                epsilon=format(a.epsilon, "f"),
                delta=format(a.delta, "f"),
                split=a.split_note(),
                components=[m.info(comp) for comp, m in mechs.items()],
            )
        )
    return out


def _ratio_bound(t_num: float, t_den: float, weight: float, noisy_den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (t_num + weight * t_den) / noisy_den


def release(plan: QueryPlan, exact: Exact, rng: Rng) -> list[Value]:
    """Noisy values for every cell of every aggregation, with their 95% error bounds."""
    out = []
    for i, a in enumerate(plan.aggs):
        for cell, key, value, err, unit, mech, flag in _release_one(plan, i, a, exact, rng):
            bound = None if err is None else float(err)
            out.append(Value(cell, a.label, a.agg, a.spec.column, key, float(value), bound, unit, mech, flag))
    return out


Emitted = tuple[int, str | None, float, float | None, str, str, str | None]


def _release_one(plan: QueryPlan, i: int, a: PlannedAgg, exact: Exact, rng: Rng) -> Iterator[Emitted]:
    mechs = mechanisms_for(a, plan.rows_per_entity)
    cells = range(plan.cells)
    if a.agg == "quantile":
        below, above = exact.ranks[i]
        for (name, m), q in zip(mechs.items(), a.levels, strict=True):
            label, bound = m.info(name).label(), m.bound()
            for c in cells:
                yield c, f"{q:g}", m.choose(below[c], above[c], rng), bound, "score", label, None
        return
    labels = " + ".join(m.info(comp).label() for comp, m in mechs.items())
    if a.agg == "histogram":
        m, counts = mechs["count"], exact.histograms[i]
        noisy = m.randomise(counts.reshape(-1), rng).reshape(counts.shape)
        for c in cells:
            for j, b in enumerate(a.bins):
                v = max(int(noisy[c, j]), 0)
                yield c, b, v, m.bound(), "value", labels, _low(v, plan)
        return
    noisy = {comp: m.randomise(exact.scalars[f"{i}:{comp}"], rng) for comp, m in mechs.items()}
    if a.agg == "count":
        for c in cells:
            v = max(int(noisy["count"][c]), 0)
            yield c, None, v, mechs["count"].bound(), "value", labels, _low(v, plan)
    elif a.agg == "sum":
        for c in cells:
            yield c, None, noisy["sum"][c], mechs["sum"].bound(), "value", labels, None
    else:
        values, errors = _moments(a, mechs, noisy)
        for c in cells:
            yield c, None, values[c], errors[c], "value", labels, _low(noisy["count"][c], plan)


def _low(noisy_count: float, plan: QueryPlan) -> str | None:
    return "low_count" if noisy_count < plan.min_cell_count else None


def _moments(
    a: PlannedAgg, mechs: dict[str, Any], noisy: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Mean, variance or stddev from noisy components, with union-bound 95% errors."""
    parts = len(mechs)
    conf = 1 - (1 - CONFIDENCE) / parts
    t = {comp: m.bound(conf) for comp, m in mechs.items()}
    n = noisy["count"].astype(np.float64)
    ok = n >= 1
    safe_n = np.where(ok, n, 1.0)
    h, mid = a.half, a.mid
    centered = noisy["centered_sum"] / safe_n
    d_s = _ratio_bound(t["centered_sum"], t["count"], h, safe_n)
    if a.agg == "mean":
        shift = np.clip(centered, -h, h)
        value = np.where(ok, mid + shift, mid)
        # the same event also gives |err| <= (t_S + |shift|·t_N) / (N' - t_N) when N' > t_N
        with np.errstate(divide="ignore", invalid="ignore"):
            tight = np.where(
                n > t["count"], (t["centered_sum"] + np.abs(shift) * t["count"]) / (n - t["count"]), np.inf
            )
        error = np.where(ok, np.minimum(np.minimum(d_s, tight), 2 * h), h)
        return value, error
    second = noisy["centered_sum_of_squares"] / safe_n
    d_q = _ratio_bound(t["centered_sum_of_squares"], t["count"], h * h, safe_n)
    var = np.clip(second - np.clip(centered, -h, h) ** 2, 0, h * h)
    var_err = np.minimum(d_q + 2 * h * d_s, h * h)
    var = np.where(ok, var, h * h / 2)
    var_err = np.where(ok, var_err, h * h / 2)
    if a.agg == "variance":
        return var, var_err
    return np.sqrt(var), np.minimum(np.sqrt(var_err), math.sqrt(h * h))
