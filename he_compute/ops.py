"""Encrypted operations: plans (server-side, plaintext) and their evaluation (in the worker only).

**Layout — column-packed.** For ``score`` the operator sends, per batch of up to ``slots``
records, one CKKS vector per model feature, holding that feature of every record of the batch
(slot *i* = record *i*). A linear score is then ``Σ_j w_j·X_j + b``: one plaintext multiplication
per feature, no rotation, so the cost grows with the number of *ciphertexts* (records / slots),
not with the number of records. ``lookup`` uses the same layout with one vector per category of
each table dimension (an encrypted one-hot, column-packed): a D-dimensional table is contracted
dimension by dimension — plaintext products for the innermost one, ciphertext products after it
— so a lookup needs D levels.

**Logistic.** The logit is rescaled into ``u ∈ [-1, 1]`` over the model's input range (derived from
the feature bounds by interval arithmetic and folded into the weights), and the sigmoid is
replaced by its degree-d Chebyshev interpolant on that interval, evaluated in power form with
depth ``ceil(log2(d+1))``. :func:`sigmoid_approximation` reports the worst-case error on the range.
Operators should clip features to the model's bounds (the client does) — outside the range
the polynomial is not an approximation of anything.

**Declared records, masked slots.** A partial last batch is multiplied by a *vector* (weights or
table values times a 0/1 mask), so slots beyond the declared record count come back as zero:
quotas count records honestly even if a ciphertext was packed with more than declared.

Plans are typed (:class:`ScorePlan`, :class:`LookupPlan`) and travel to the worker as plain JSON
(``task()``, in a frame header); evaluation functions import TenSEAL lazily and are called only
inside :mod:`he_compute.worker`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tenseal as ts

#: Degrees allowed for the sigmoid polynomial.
DEGREES = (3, 5, 7, 9, 11, 13, 15)


class PlanError(ValueError):
    """A model or table cannot be evaluated as asked (the caller's mistake)."""


def poly_depth(degree: int) -> int:
    """Levels consumed by :func:`eval_poly` for a polynomial of ``degree`` (≥ 1)."""
    return max(1, math.ceil(math.log2(degree + 1)))


@dataclass(frozen=True)
class SigmoidApprox:
    """σ(mid + half·u) ≈ Σ coeffs[k]·u^k for u ∈ [-1, 1], i.e. logits in [lo, hi]."""

    degree: int
    lo: float
    hi: float
    coeffs: tuple[float, ...]
    max_error: float


def sigmoid_approximation(lo: float, hi: float, degree: int) -> SigmoidApprox:
    """Chebyshev interpolant of the sigmoid on ``[lo, hi]`` and its max error there.

    The error grows with the interval and falls with the degree:

    >>> a = sigmoid_approximation(-4.0, 4.0, 3)
    >>> a.coeffs[0], round(a.max_error, 3)
    (0.5, 0.035)
    >>> [round(sigmoid_approximation(-r, r, 7).max_error, 3) for r in (4.0, 8.0)]
    [0.002, 0.03]
    >>> sigmoid_approximation(-4.0, 4.0, 4)
    Traceback (most recent call last):
    ...
    he_compute.ops.PlanError: sigmoid degree must be one of (3, 5, 7, 9, 11, 13, 15)
    """
    if degree not in DEGREES:
        raise PlanError(f"sigmoid degree must be one of {DEGREES}")
    mid, half = (lo + hi) / 2, max((hi - lo) / 2, 1e-9)

    def f(u: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(mid + half * u)))

    cheb: Any = np.polynomial.chebyshev.chebinterpolate(f, degree)
    coeffs = np.polynomial.chebyshev.cheb2poly(cheb)
    grid = np.linspace(-1.0, 1.0, 20001)
    err = float(np.max(np.abs(np.polynomial.polynomial.polyval(grid, coeffs) - f(grid))))
    return SigmoidApprox(degree, lo, hi, tuple(float(c) for c in coeffs), err)


def logit_range(weights: list[float], bias: float, bounds: list[tuple[float, float]]) -> tuple[float, float]:
    """The exact range of ``w·x + b`` for x in the box ``bounds``."""
    lo = hi = bias
    for w, (a, b) in zip(weights, bounds, strict=True):
        lo += min(w * a, w * b)
        hi += max(w * a, w * b)
    return lo, hi


@dataclass(frozen=True)
class Approximation:
    """The sigmoid's polynomial as reported to the caller (and, degree and error, recorded)."""

    degree: int
    logit_range: tuple[float, float]
    max_error: float
    method: str = "chebyshev-interpolant"

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "degree": self.degree,
            "logit_range": list(self.logit_range),
            "max_error": self.max_error,
        }


@dataclass(frozen=True)
class ScorePlan:
    """The circuit of a ``score``: ``Σ_j weights_j·X_j + bias``, then ``poly`` (the sigmoid's
    polynomial in the rescaled logit) for a logistic probability; ``kind`` is the model's kind,
    ``classes`` and ``approximation`` what the caller is told of a probability.

    >>> p = score_plan("linear", {"coef": [2.0], "intercept": 1.0}, ["x"], degree=None,
    ...                output="score", levels=1)
    >>> p.width, p.multiplies, p.task()
    (1, False, {'weights': [2.0], 'bias': 1.0, 'poly': None})
    >>> p.meta()
    {'kind': 'linear', 'output': 'score'}
    """

    kind: str
    weights: tuple[float, ...]
    bias: float
    poly: tuple[float, ...] | None = None
    classes: tuple[Any, ...] = ()
    approximation: Approximation | None = None

    @property
    def width(self) -> int:
        """Ciphertexts per batch: one per feature."""
        return len(self.weights)

    @property
    def multiplies(self) -> bool:
        """Does the circuit multiply ciphertexts (needs relinearization keys)?"""
        return bool(self.poly)

    @property
    def output(self) -> str:
        return "probability" if self.poly else "score"

    def task(self) -> dict[str, Any]:
        """The plan as the worker reads it (plain JSON in the task frame's header)."""
        return {
            "weights": list(self.weights),
            "bias": self.bias,
            "poly": list(self.poly) if self.poly else None,
        }

    def meta(self) -> dict[str, Any]:
        """What the caller is told of the plan (merged into the call's summary)."""
        out: dict[str, Any] = {"kind": self.kind, "output": self.output}
        if self.approximation is not None:
            out |= {"classes": list(self.classes), "approximation": self.approximation.as_dict()}
        return out


@dataclass(frozen=True)
class LookupPlan:
    """The circuit of a ``lookup`` in a row-major table of ``shape``: ``values`` divided by
    ``scale`` (the client multiplies back); ``missing_cells`` are the flat indices of suppressed
    cells (looked up as 0).

    >>> p = lookup_plan([2, 2], [1.0, 2.0, 3.0, 4.0], levels=2, missing_cells=[3])
    >>> p.width, p.multiplies, p.meta()
    (4, True, {'scale': 4.0, 'missing_cells': [3]})
    """

    shape: tuple[int, ...]
    values: tuple[float, ...]
    scale: float
    missing_cells: tuple[int, ...] = ()

    @property
    def width(self) -> int:
        """Ciphertexts per batch: one one-hot vector per category of each dimension."""
        return sum(self.shape)

    @property
    def multiplies(self) -> bool:
        """Does the circuit multiply ciphertexts (more than one dimension)?"""
        return len(self.shape) > 1

    def task(self) -> dict[str, Any]:
        """The plan as the worker reads it (plain JSON in the task frame's header)."""
        return {"shape": list(self.shape), "values": list(self.values), "scale": self.scale}

    def meta(self) -> dict[str, Any]:
        """What the caller is told of the plan (merged into the call's summary)."""
        return {"scale": self.scale, "missing_cells": list(self.missing_cells)}


#: A planned circuit, one type per operation.
Plan = ScorePlan | LookupPlan


def score_plan(
    kind: str,
    params: dict[str, Any],
    features: list[str],
    *,
    degree: int | None,
    output: str,
    levels: int,
) -> ScorePlan:
    """The plan of a model's score (its circuit and what the caller is told of it).

    ``params``: linear ``{"coef", "intercept", "bounds"?}``; logistic ``{"coef", "intercept",
    "classes"?, "bounds"}`` — ``coef`` a flat list or a single row, ``bounds`` feature → [lo, hi].
    """
    weights, bias = _coef(params, len(features))
    if kind == "linear" or (kind == "logistic" and output == "logit"):
        if levels < 1:
            raise PlanError("the context has no level left for a plaintext multiplication")
        return ScorePlan(kind, tuple(weights), bias)
    if kind != "logistic":
        raise PlanError(f"models of kind {kind!r} cannot be scored homomorphically")
    if output != "probability":
        raise PlanError("output must be 'probability' or 'logit'")
    bounds = _bounds(params, features)
    max_degree = max((d for d in DEGREES if 1 + poly_depth(d) <= levels), default=None)
    if max_degree is None:
        raise PlanError(
            f"a logistic score needs at least {1 + poly_depth(3)} levels; this parameter set has "
            f"{levels} — create the context with 'ckks-8192-deep' or 'ckks-16384'"
        )
    degree = degree or max_degree
    if degree > max_degree:
        raise PlanError(
            f"a degree-{degree} sigmoid needs more levels; this parameter set allows {max_degree}"
        )
    lo, hi = logit_range(weights, bias, bounds)
    approx = sigmoid_approximation(lo, hi, degree)
    mid, half = (lo + hi) / 2, max((hi - lo) / 2, 1e-9)
    return ScorePlan(
        kind,
        tuple(w / half for w in weights),
        (bias - mid) / half,
        approx.coeffs,
        classes=tuple(params.get("classes") or [0, 1]),
        approximation=Approximation(approx.degree, (lo, hi), approx.max_error),
    )


def _coef(params: dict[str, Any], n_features: int) -> tuple[list[float], float]:
    coef, intercept = params.get("coef"), params.get("intercept", 0.0)
    if isinstance(coef, list) and len(coef) == 1 and isinstance(coef[0], list):
        coef = coef[0]
    if isinstance(intercept, list):
        if len(intercept) != 1:
            raise PlanError("multiclass models cannot be scored homomorphically (one intercept expected)")
        intercept = intercept[0]
    if not isinstance(coef, list) or len(coef) != n_features:
        raise PlanError(f"model coef must be a list of {n_features} numbers (one per feature)")
    try:
        weights, bias = [float(c) for c in coef], float(intercept)
    except (TypeError, ValueError):
        raise PlanError("model coef and intercept must be numbers") from None
    if not all(map(math.isfinite, [*weights, bias])):
        raise PlanError("model coef and intercept must be finite")
    if not any(weights):
        raise PlanError("a model with all-zero coefficients scores nothing")
    return weights, bias


def _bounds(params: dict[str, Any], features: list[str]) -> list[tuple[float, float]]:
    raw = params.get("bounds") or {}
    out = []
    for f in features:
        b = raw.get(f)
        if not (isinstance(b, list | tuple) and len(b) == 2):
            raise PlanError(f"the model declares no bounds for feature {f!r}")
        lo, hi = float(b[0]), float(b[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise PlanError(f"invalid bounds for feature {f!r}")
        out.append((lo, hi))
    return out


def lookup_plan(
    shape: list[int], values: list[float], levels: int, missing_cells: list[int] | tuple[int, ...] = ()
) -> LookupPlan:
    """The plan of a lookup in a row-major table of ``shape`` (``missing_cells``: its suppressed cells).

    Values are divided by ``scale``, the power of two at or above the largest magnitude, so that
    results stay within the last level's headroom (2^9 on ``ckks-8192-deep``); the client
    multiplies the decrypted values back.
    """
    if not shape or any(k < 1 for k in shape):
        raise PlanError("a table needs at least one non-empty dimension")
    if len(shape) > levels:
        raise PlanError(
            f"a lookup in a {len(shape)}-dimensional table needs {len(shape)} levels; this parameter set "
            f"has {levels} — use 'ckks-8192-deep' or 'ckks-16384'"
        )
    arr = np.asarray(values, dtype=float)
    if arr.size != math.prod(shape) or not np.all(np.isfinite(arr)):
        raise PlanError("table values do not match its dimensions or are not finite")
    top = float(np.max(np.abs(arr))) if arr.size else 0.0
    scale = 2.0 ** math.ceil(math.log2(top)) if top > 0 else 1.0
    return LookupPlan(tuple(shape), tuple((arr / scale).tolist()), scale, tuple(missing_cells))


# ---- evaluation (worker only) -----------------------------------------------------------------


class Evaluator:
    """Evaluates plans exactly, compensating TenSEAL's scale rounding.

    After each rescale TenSEAL resets a ciphertext's scale to exactly 2^40, although it divided
    by a prime q slightly below 2^40: every product comes back multiplied by 2^40/q (≈ 1 − 1e-7
    for ``ckks-8192``; several 1e-7 on a deep circuit, i.e. 0.04 on a 50,000 table value). The
    circuits here are static, so each term's accumulated factor is known in advance and folded
    into its plaintext constant. ``primes`` are the context's data primes (special prime excluded).
    """

    def __init__(self, primes: list[int], scale: float) -> None:
        self.primes, self.scale = primes, float(scale)

    def ratio(self, level: int) -> float:
        """Decoded/true factor of a product taken at ``level`` (rescales already done)."""
        return self.scale / float(self.primes[-1 - level])

    def times(
        self, ct: ts.CKKSVector, c: float, mask: list[float] | None, level: int
    ) -> ts.CKKSVector | None:
        """ct × c at ``level`` with factor 1; on a partial batch ct × (c·mask) zeroes undeclared slots.

        ``None`` for c = 0: a zero plaintext would make a transparent ciphertext, which a context
        without a secret or public key cannot re-encrypt — the term is simply left out.
        """
        if c == 0.0:
            return None
        c = float(c) / self.ratio(level)
        return ct * c if mask is None else ct * [c * m for m in mask]

    def affine(
        self, cols: list[ts.CKKSVector], weights: list[float], bias: float, mask: list[float] | None
    ) -> ts.CKKSVector:
        """``Σ_j w_j·cols_j + b`` from fresh ciphertexts (one level)."""
        acc = _sum([self.times(c, w, mask, 0) for c, w in zip(cols, weights, strict=True)])
        if acc is None:
            raise ValueError("a model with all-zero coefficients scores nothing")
        return acc + ([bias * m for m in mask] if mask is not None else float(bias))

    def poly(self, u: ts.CKKSVector, coeffs: list[float], level: int) -> ts.CKKSVector:
        """``Σ_k coeffs[k]·u^k`` for u at ``level``, depth ``ceil(log2(deg+1))``.

        c·u^k = u^p · (c·u^(k−p)) with p the largest power of two below k (k/2 if k is one).
        """
        powers: dict[int, tuple[ts.CKKSVector, int, float]] = {1: (u, level, 1.0)}

        def power(k: int) -> tuple[ts.CKKSVector, int, float]:  # k a power of two
            if k not in powers:
                ct, lv, f = power(k // 2)
                powers[k] = (ct * ct, lv + 1, f * f * self.ratio(lv))
            return powers[k]

        def term_level(k: int) -> int:
            if k == 1:
                return level + 1
            p = _split(k)
            return max(level + p.bit_length() - 1, term_level(k - p)) + 1

        def term(k: int, c: float) -> ts.CKKSVector:  # factor 1, c != 0
            if k == 1:
                return u * (c / self.ratio(level))
            p = _split(k)
            ct, lv, f = power(p)
            at = max(lv, term_level(k - p))
            return ct * term(k - p, c / (f * self.ratio(at)))

        acc = _sum([term(k, c) for k, c in enumerate(coeffs) if k >= 1 and c != 0.0])
        if acc is None:
            raise ValueError("a constant polynomial needs no ciphertext")
        return acc + float(coeffs[0])

    def score(
        self, cols: list[ts.CKKSVector], plan: dict[str, Any], mask: list[float] | None
    ) -> ts.CKKSVector:
        """The score of one batch."""
        z = self.affine(cols, plan["weights"], plan["bias"], mask)
        return self.poly(z, plan["poly"], 1) if plan.get("poly") else z

    def lookup(
        self, onehots: list[list[ts.CKKSVector]], plan: dict[str, Any], mask: list[float] | None
    ) -> ts.CKKSVector:
        """``Σ_{a,b,…} T[a,b,…]·oh1_a·oh2_b·…`` for one batch, innermost dimension first.

        The dimension with the most categories is innermost (plaintext products); the others are
        ordered by size, smallest outermost, so that the fewest ciphertext products are needed.
        """
        shape = plan["shape"]
        order = sorted(range(len(shape)), key=lambda d: shape[d])
        table = np.transpose(np.asarray(plan["values"], dtype=float).reshape(shape), order)
        dims = [onehots[d] for d in order]
        last = len(dims) - 1

        def contract(i: int, sub: np.ndarray, target: float) -> ts.CKKSVector | None:
            # result has factor ``target`` (None if ``sub`` is all zero)
            if i == last:
                return _sum([self.times(ct, v * target, mask, 0) for ct, v in zip(dims[i], sub, strict=True)])
            inner_target = target / self.ratio(last - i)  # the product is taken at level last - i
            inner = [contract(i + 1, sub[a], inner_target) for a in range(len(dims[i]))]
            return _sum([ct * x for ct, x in zip(dims[i], inner, strict=True) if x is not None])

        out = contract(0, table, 1.0)
        if out is None:  # an all-zero table: a near-zero ciphertext (2^-30 × a one-hot), masked
            out = self.times(onehots[0][0], 2.0**-30, mask, 0)
        assert out is not None
        return out


def _split(k: int) -> int:
    p = 1 << (k.bit_length() - 1)
    return k // 2 if p == k else p


def _sum(terms: list[ts.CKKSVector | None]) -> ts.CKKSVector | None:
    """The sum of the non-None terms (None if there are none)."""
    acc = None
    for t in terms:
        if t is not None:
            if acc is None:
                acc = t
            else:
                acc += t  # in place: every term is a fresh product
    return acc
