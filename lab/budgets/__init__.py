"""Privacy budgets as exact values (never floats): pure ε-DP and approximate (ε, δ)-DP."""

from lab.budgets.value import Budget

__all__ = ["Budget"]
