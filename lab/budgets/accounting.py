"""Composition of privacy losses on one dataset account.

Two rules, each sound on its own; an account reports the tighter one that fits its δ:

* **basic composition** — exact decimals: ``Σ εᵢ, Σ δᵢ``. Every release, of any mechanism.
* **Rényi DP** for Gaussian releases (Mironov 2017), through Google's ``dp-accounting``
  ``RdpAccountant``: a release charged (ε, δ) with the analytic Gaussian mechanism has noise
  multiplier ``σ/Δ ≥ get_sigma_gaussian(ε, δ)``; the library composes those Gaussians and converts
  the result to ε at the account's δ. Pure-ε releases are added to it by basic composition.

The Gaussian calibration is shrunk by a relative ``1e-9`` so that a channel whose own calibration
sits a rounding error below the library's is never under-charged; ε from the library is rounded up
to 6 decimal places.

>>> spent = compose(Budget.of("0.5"), [], Decimal("0"))
>>> (str(spent.budget), spent.rule)
('ε=0.5, δ=0', 'basic')
>>> g = [GaussianGroup(Budget.of("0.5", "0.000001"), 20)]
>>> basic = compose(Budget.zero(), g, Decimal("0"))   # no δ room for RDP: basic only
>>> (str(basic.budget), basic.rule)
('ε=10, δ=0.00002', 'basic')
>>> rdp = compose(Budget.zero(), g, Decimal("0.00005"))
>>> rdp.rule, rdp.budget.epsilon < 10, rdp.budget.delta
('rdp', True, Decimal('0.00005'))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Literal

from lab.budgets.value import Budget

Rule = Literal["basic", "rdp"]
#: Relative margin by which the library's Gaussian calibration is shrunk (conservative).
SIGMA_MARGIN = 1e-9
_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class GaussianGroup:
    """``count`` Gaussian releases, each charged ``cost`` (δ > 0)."""

    cost: Budget
    count: int


@dataclass(frozen=True)
class Spent:
    """What an account has spent under its composition rule."""

    budget: Budget
    rule: Rule


@functools.lru_cache(maxsize=256)
def noise_multiplier(cost: Budget) -> float:
    """The smallest σ/Δ with which a Gaussian mechanism is (ε, δ)-DP (slightly shrunk, see above).

    Cached: an account composes the same few per-release costs on every check.

    >>> round(noise_multiplier(Budget.of("0.5", "0.000001")), 4)
    8.0576
    """
    from dp_accounting import get_sigma_gaussian

    return float(get_sigma_gaussian(float(cost.epsilon), float(cost.delta))) * (1 - SIGMA_MARGIN)


def rdp_epsilon(groups: list[GaussianGroup], delta: Decimal) -> Decimal:
    """ε at ``delta`` of the Gaussian releases in ``groups``, composed by the library's RDP accountant."""
    from dp_accounting import GaussianDpEvent, SelfComposedDpEvent
    from dp_accounting.rdp import RdpAccountant

    accountant = RdpAccountant()
    for g in groups:
        accountant.compose(SelfComposedDpEvent(GaussianDpEvent(noise_multiplier(g.cost)), g.count))
    eps = Decimal(repr(float(accountant.get_epsilon(float(delta)))))
    return eps.quantize(_PLACES, rounding=ROUND_CEILING).normalize()


def compose(pure: Budget, gaussian: list[GaussianGroup], delta_limit: Decimal) -> Spent:
    """Total spent by ``pure`` (basic composition of the non-Gaussian releases) and ``gaussian``.

    Basic composition of everything, unless RDP over the Gaussian releases at the δ left under
    ``delta_limit`` gives a smaller ε (its δ is then that whole room).
    """
    basic = pure
    for g in gaussian:
        basic = basic + Budget(g.cost.epsilon * g.count, g.cost.delta * g.count)
    best = Spent(basic, "basic")
    room = delta_limit - pure.delta
    if gaussian and room > 0:
        eps = pure.epsilon + rdp_epsilon(gaussian, room)
        fits_basic = basic.delta <= delta_limit
        if eps < basic.epsilon or not fits_basic:
            best = Spent(Budget(eps, delta_limit), "rdp")
    return best
