"""Normalization glue shared by the PSI server (its column) and the client library (the operator's list).

Both sides canonicalize with :data:`lab.identifiers.NORMALIZERS`, so two spellings of one identifier
meet in the intersection. Invalid items are dropped and reported (count and a few examples) to the
side that owns them: the operator sees its own invalid items locally, they are never sent; the lab
logs only the count for its column.

>>> n = normalize_items([" 91350100-m000100y43 ", "91350100M000100Y43", "bad", None], "uscc")
>>> n.values, n.invalid_count, n.invalid_examples[0][0]
(['91350100M000100Y43'], 2, 2)
>>> n.positions["91350100M000100Y43"]
[0, 1]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from lab.identifiers import NORMALIZERS

MAX_EXAMPLES = 5


@dataclass
class Normalized:
    """Distinct canonical values (sorted), where each came from, and what was invalid."""

    values: list[str]
    positions: dict[str, list[int]] = field(default_factory=dict)
    invalid_count: int = 0
    invalid_examples: list[tuple[int, str, str]] = field(default_factory=list)  # (position, item, reason)
    total: int = 0

    @property
    def digest(self) -> str:
        """SHA-256 of the sorted canonical values (binds cached artifacts to the exact item list)."""
        h = hashlib.sha256()
        for v in self.values:
            h.update(v.encode())
            h.update(b"\n")
        return h.hexdigest()


def normalize_items(items: Iterable[object], kind: str, *, keep_positions: bool = True) -> Normalized:
    """Normalize ``items`` with the ``kind`` normalizer; invalid and missing items are counted, not kept."""
    fn = NORMALIZERS.get(kind)
    if fn is None:
        raise ValueError(f"unknown normalization {kind!r}; one of {sorted(NORMALIZERS)}")
    positions: dict[str, list[int]] = {}
    invalid = 0
    examples: list[tuple[int, str, str]] = []
    total = 0
    for i, item in enumerate(items):
        total += 1
        try:
            if item is None or (isinstance(item, float) and item != item):
                raise ValueError("missing value")
            value = fn(item if isinstance(item, str) else str(item))
        except (ValueError, TypeError) as exc:
            invalid += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append((i, str(item), str(exc)))
            continue
        if keep_positions:
            positions.setdefault(value, []).append(i)
        else:
            positions.setdefault(value, [])
    return Normalized(sorted(positions), positions, invalid, examples, total)


def canonical(values: Iterable[object], kind: str) -> list[str | None]:
    """Each value's canonical form, or None where it is invalid or missing (no reasons kept)."""
    fn = NORMALIZERS[kind]
    out: list[str | None] = []
    for item in values:
        try:
            out.append(None if item is None else fn(item if isinstance(item, str) else str(item)))
        except (ValueError, TypeError):
            out.append(None)
    return out


def from_canonical(canon: list[str | None], keys: list[str]) -> tuple[Normalized, list[list[str]]]:
    """Distinct values (sorted) and the entity keys of each, from per-row canonical forms."""
    by_value: dict[str, list[str]] = {}
    invalid = 0
    for value, key in zip(canon, keys, strict=True):
        if value is None:
            invalid += 1
        else:
            by_value.setdefault(value, []).append(key)
    values = sorted(by_value)
    norm = Normalized(values, {}, invalid, [], len(canon))
    return norm, [by_value[v] for v in values]


def normalize_column(
    values: Iterable[object], keys: Iterable[str], kind: str
) -> tuple[Normalized, list[list[str]]]:
    """Normalize a dataset column; returns the distinct values and, aligned, the entity keys of each."""
    return from_canonical(canonical(values, kind), list(keys))
