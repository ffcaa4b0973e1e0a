"""The one way exact decimals (ε, δ, quotas, amounts) become text.

Plain notation, never an exponent, no trailing zeros, and zero in any spelling is ``"0"``; the digits are kept
exactly (no rounding to the context's precision). Budgets, grants, DP specs, the web pages and charts all
format through :func:`plain`, so a value reads the same in the API, the ledger and the browser.

>>> plain(Decimal("1.50")), plain(Decimal("1E+1")), plain(Decimal("0E-7")), plain(Decimal("-0.000001"))
('1.5', '10', '0', '-0.000001')
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ["plain"]


def plain(d: Decimal) -> str:
    """``d`` in plain decimal notation without trailing zeros (``Decimal("2.500E-3")`` -> ``"0.0025"``)."""
    if d == 0:
        return "0"
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
