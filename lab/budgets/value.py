"""An immutable privacy budget with exact decimal arithmetic.

>>> Budget.of("0.1") + Budget.of("0.2") == Budget.of("0.3")
True
>>> Budget.of("1.0", "1e-6").fits_within(Budget.of("1", "0.000001"))
True
>>> str(Budget.of("0.3") - Budget.of("0.1"))
'ε=0.2, δ=0'
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lab.decimals import plain
from lab.errors import BadRequest


def to_decimal(value: Any, name: str = "value") -> Decimal:
    """Parse a budget component exactly (floats go through their shortest repr, not binary)."""
    if isinstance(value, Decimal):
        d = value
    else:
        try:
            d = Decimal(repr(value) if isinstance(value, float) else str(value))
        except InvalidOperation:
            raise BadRequest(f"{name} must be a decimal number, got {value!r}") from None
    if not d.is_finite() or d < 0:
        raise BadRequest(f"{name} must be a finite, non-negative number, got {value!r}")
    return d.normalize() if d != 0 else Decimal(0)


@dataclass(frozen=True, order=False)
class Budget:
    """(ε, δ); both exact, both non-negative."""

    epsilon: Decimal
    delta: Decimal = Decimal(0)

    @classmethod
    def of(cls, epsilon: Any, delta: Any = 0) -> Budget:
        return cls(to_decimal(epsilon, "epsilon"), to_decimal(delta, "delta"))

    @classmethod
    def zero(cls) -> Budget:
        return cls(Decimal(0), Decimal(0))

    def __add__(self, other: Budget) -> Budget:
        return Budget(self.epsilon + other.epsilon, self.delta + other.delta)

    def __sub__(self, other: Budget) -> Budget:
        return Budget(self.epsilon - other.epsilon, self.delta - other.delta)

    def fits_within(self, limit: Budget) -> bool:
        """True if both components are at most ``limit``'s."""
        return self.epsilon <= limit.epsilon and self.delta <= limit.delta

    @property
    def is_zero(self) -> bool:
        return self.epsilon == 0 and self.delta == 0

    def as_strings(self) -> dict[str, str]:
        return {"epsilon": plain(self.epsilon), "delta": plain(self.delta)}

    def __str__(self) -> str:
        return f"ε={plain(self.epsilon)}, δ={plain(self.delta)}"
