"""Frozen, typed views of one channel's grant on one dataset (``GrantRow.limits[channel]``).

The stored shape stays the normalized JSON of :mod:`lab.projects.grants`; code that decides reads
these instead of ``dict[str, Any]``:

>>> DpGrant.of({"epsilon": "1", "delta": "0", "epsilon_per_query": "0.5"}).epsilon_per_query
Decimal('0.5')
>>> psi = PsiGrant.of({"modes": ["cohort"], "columns": ["resident_id"], "quota": 10})
>>> psi.allows("cohort", "resident_id"), psi.allows("cohort", "phone"), psi.quota
(True, False, 10)
>>> HeGrant.of({"models": [], "tables": ["income_by_town"]}).names("table")
('income_by_town',)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or ()))


def _quota(value: Any) -> int | None:
    return int(value) or None if value is not None else None


@dataclass(frozen=True)
class DpGrant:
    """The project's ε/δ on the dataset and its per-query caps (None: the policy's cap only)."""

    epsilon: Decimal
    delta: Decimal
    epsilon_per_query: Decimal | None
    delta_per_query: Decimal | None

    @classmethod
    def of(cls, limits: Mapping[str, Any]) -> DpGrant:
        return cls(
            epsilon=_dec(limits.get("epsilon")) or Decimal(0),
            delta=_dec(limits.get("delta")) or Decimal(0),
            epsilon_per_query=_dec(limits.get("epsilon_per_query")),
            delta_per_query=_dec(limits.get("delta_per_query")),
        )


@dataclass(frozen=True)
class PsiGrant:
    """Granted PSI modes, columns (empty: every column the policy opens) and daily quota."""

    modes: tuple[str, ...]
    columns: tuple[str, ...]
    quota: int | None

    @classmethod
    def of(cls, limits: Mapping[str, Any]) -> PsiGrant:
        return cls(_names(limits.get("modes")), _names(limits.get("columns")), _quota(limits.get("quota")))

    def allows(self, mode: object, column: object) -> bool:
        """Is ``mode`` granted, on ``column``?"""
        return mode in self.modes and (not self.columns or column in self.columns)


@dataclass(frozen=True)
class HeGrant:
    """Granted HE models and DP tables by name, and the project's record quota."""

    models: tuple[str, ...]
    tables: tuple[str, ...]
    record_quota: int | None

    @classmethod
    def of(cls, limits: Mapping[str, Any] | None) -> HeGrant:
        limits = limits or {}
        return cls(
            _names(limits.get("models")), _names(limits.get("tables")), _quota(limits.get("record_quota"))
        )

    def names(self, kind: Literal["model", "table"]) -> tuple[str, ...]:
        """The granted names of ``kind``."""
        return self.models if kind == "model" else self.tables


Grant = DpGrant | PsiGrant | HeGrant
G = TypeVar("G", DpGrant, PsiGrant, HeGrant)
PARSERS: dict[str, type[DpGrant] | type[PsiGrant] | type[HeGrant]] = {
    "dp": DpGrant,
    "psi": PsiGrant,
    "he": HeGrant,
}


def grant_of(channel: str, limits: Mapping[str, Any]) -> Grant:
    """The typed grant of ``channel`` from its stored limits."""
    return PARSERS[channel].of(limits)


def expect(grant: Grant, kind: type[G]) -> G:
    """``grant`` as ``kind`` (a channel reading another channel's grant is a programming error)."""
    if not isinstance(grant, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(grant).__name__}")
    return grant
