"""Composition of privacy losses on one dataset account: one rule per account, fixed for its life.

An account is a *privacy filter*: operators choose each release's ε and δ after seeing earlier
answers, and the account refuses a release once the composed total would pass its limit. Each
account therefore uses exactly one of two rules, declared in its policy and never switched per
check (a rule chosen per check — "whichever is smaller" — is not a proven filter):

* ``basic`` — exact decimals: ``Σ εᵢ ≤ ε``, ``Σ δᵢ ≤ δ``, every release of every mechanism. Basic
  composition is a valid filter under fully adaptive choices (Rogers, Roth, Ullman, Vadhan 2016).
* ``zcdp`` — every release is converted to a zero-concentrated DP parameter ρ (:func:`rho`) and the
  account is a filter on the scalar ``Σ ρᵢ ≤ ρ*``, where ρ* is fixed in advance by the account's
  (ε, δ): a release is refused iff ε at the account's δ of one Gaussian with ``ρ = Σρᵢ`` — Google's
  ``dp-accounting`` ``RdpAccountant`` on ``GaussianDpEvent(1/√(2ρ))`` — would pass ε. That
  conversion is non-decreasing in ρ, so the rule is exactly "refuse iff Σρ > ρ*", a zCDP filter
  valid for fully adaptive choices (Feldman & Zrnic 2021, Rényi filters; Whitehouse, Ramdas,
  Rogers, Wu 2023, fully adaptive composition for zCDP). The account's δ is used only for that
  conversion: under ``zcdp`` no release consumes δ.

ρ of a release (exact rationals, so the sum does not depend on order):

* pure (δ = 0): ``ε²/2`` (Bun & Steinke 2016, Prop. 1.4);
* wholly Gaussian (ε, δ): ``1/(2σ²)`` with ``σ = get_sigma_gaussian(ε, δ)`` shrunk by a relative
  ``1e-9`` (:func:`noise_multiplier`), so a channel whose own calibration sits a rounding error below
  the library's is never under-charged;
* mixed (δ > 0, not wholly Gaussian — a quantile next to Gaussian sums): ``ε²/2 + 1/(2σ(ε, δ)²)``.
  Its pure parts have ``Σ εᵢ ≤ ε``; its Gaussian parts have ``ε_g ≤ ε``, ``δ_g ≤ δ``, so
  ``σ(ε_g, δ_g) ≥ σ(ε, δ)``. This, and a Gaussian release whose ε is split across several
  aggregations, rely on ρ(·, δ) being superadditive in ε (checked numerically in the unit tests).

ε from the library is rounded up to 6 decimal places.

>>> spent = compose("basic", [Charge(Budget.of("0.5"))], Decimal("0"))
>>> (str(spent.budget), spent.rule)
('ε=0.5, δ=0', 'basic')
>>> g = [Charge(Budget.of("0.5", "0.000001"), gaussian=True, count=20)]
>>> str(compose("basic", g, Decimal("0.00005")).budget)
'ε=10, δ=0.00002'
>>> z = compose("zcdp", g, Decimal("0.00005"))
>>> z.rule, z.budget.epsilon, z.budget.delta
('zcdp', Decimal('2.216049'), Decimal('0.00005'))
>>> rho(Budget.of("0.1"), gaussian=False)
Fraction(1, 200)
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from typing import Literal

from lab.budgets.value import Budget

Rule = Literal["basic", "zcdp"]
RULES: tuple[Rule, ...] = ("basic", "zcdp")
#: Relative margin by which the library's Gaussian calibration is shrunk (conservative).
SIGMA_MARGIN = 1e-9
_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class Charge:
    """``count`` releases, each charged ``cost``; ``gaussian``: each is wholly one Gaussian mechanism."""

    cost: Budget
    gaussian: bool = False
    count: int = 1


@dataclass(frozen=True)
class Spent:
    """What an account has spent under its rule (``rho``: Σρ under ``zcdp``, else None)."""

    budget: Budget
    rule: Rule
    rho: Fraction | None = None


@functools.lru_cache(maxsize=256)
def noise_multiplier(cost: Budget) -> float:
    """The smallest σ/Δ with which a Gaussian mechanism is (ε, δ)-DP (slightly shrunk, see above).

    Cached: an account composes the same few per-release costs on every check.

    >>> round(noise_multiplier(Budget.of("0.5", "0.000001")), 4)
    8.0576
    """
    from dp_accounting import get_sigma_gaussian

    return float(get_sigma_gaussian(float(cost.epsilon), float(cost.delta))) * (1 - SIGMA_MARGIN)


@functools.lru_cache(maxsize=256)
def rho(cost: Budget, gaussian: bool) -> Fraction:
    """The zCDP ρ charged for one release of ``cost`` (see the module docstring).

    >>> float(rho(Budget.of("0.5", "0.000001"), gaussian=True)) == 1 / (2 * noise_multiplier(
    ...     Budget.of("0.5", "0.000001")) ** 2)
    True
    >>> rho(Budget.of("0.5", "0.000001"), False) == Fraction(1, 8) + rho(Budget.of("0.5", "0.000001"), True)
    True
    """
    pure = Fraction(cost.epsilon) ** 2 / 2
    if cost.delta == 0:
        return pure
    gauss = 1 / (2 * Fraction(noise_multiplier(cost)) ** 2)
    return gauss if gaussian else pure + gauss


@functools.lru_cache(maxsize=1024)
def zcdp_epsilon(total_rho: Fraction, delta: Decimal) -> Decimal:
    """ε at ``delta`` of one Gaussian mechanism that is ``total_rho``-zCDP, by the library.

    Non-decreasing in ``total_rho``; ρ is rounded up to a float and σ down, never the other way.

    >>> zcdp_epsilon(Fraction(0), Decimal("0.00005"))
    Decimal('0')
    """
    if total_rho == 0:
        return Decimal(0)
    if delta <= 0:
        raise ValueError("zCDP is converted to (ε, δ) at a δ > 0")
    from dp_accounting import GaussianDpEvent
    from dp_accounting.rdp import RdpAccountant

    r = float(total_rho)
    if Fraction(r) < total_rho:
        r = math.nextafter(r, math.inf)
    sigma = (1 / math.sqrt(2 * r)) * (1 - 4 * sys.float_info.epsilon)
    accountant = RdpAccountant()
    accountant.compose(GaussianDpEvent(sigma))
    eps = Decimal(repr(float(accountant.get_epsilon(float(delta)))))
    return eps.quantize(_PLACES, rounding=ROUND_CEILING).normalize()


def basic_total(charges: Iterable[Charge]) -> Budget:
    """Σε, Σδ of ``charges`` (exact decimals)."""
    total = Budget.zero()
    for c in charges:
        total = total + Budget(c.cost.epsilon * c.count, c.cost.delta * c.count)
    return total


def total_rho(charges: Iterable[Charge]) -> Fraction:
    """Σρ of ``charges`` (exact)."""
    return sum((rho(c.cost, c.gaussian) * c.count for c in charges), Fraction(0))


def spent_of(rule: Rule, basic: Budget, total: Fraction, delta: Decimal) -> Spent:
    """An account's spent figure from its running totals (``basic``: Σε, Σδ; ``total``: Σρ).

    Under ``zcdp`` the stated δ is the account's δ the ρ is converted at (0 before any release).
    """
    if rule == "basic":
        return Spent(basic, "basic")
    if total == 0:
        return Spent(Budget.zero(), "zcdp", total)
    return Spent(Budget(zcdp_epsilon(total, delta), delta), "zcdp", total)


def compose(rule: Rule, charges: Iterable[Charge], delta: Decimal) -> Spent:
    """What ``charges`` spend under ``rule``; ``delta`` is the account's δ (zCDP conversion only)."""
    items = list(charges)
    return spent_of(rule, basic_total(items), total_rho(items) if rule == "zcdp" else Fraction(0), delta)
