"""Dummy rows generated from a dataset's schema alone — never from its data.

Values are drawn from declared domains and bounds; identifiers have valid check
characters but use reserved ranges no real record has (division code 999999 for
USCCs and resident IDs, the 170-0000 phone block), and entity keys start ``DUMMY-``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from lab.catalog.policy import Column, ColumnRole, Normalization, Policy

RESERVED_DIVISION = "999999"
_ALNUM = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _identifier(col: Column, rng: random.Random) -> str:
    from lab import identifiers as ids

    if col.normalization is Normalization.uscc:
        body = "".join(rng.choice("0123456789") for _ in range(8))
        return ids.make_uscc("9", "1", RESERVED_DIVISION, body)
    if col.normalization is Normalization.resident_id:
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 30000))
        return ids.make_resident_id(RESERVED_DIVISION, birth, rng.randrange(0, 1000))
    if col.normalization is Normalization.phone:
        return "1700000" + f"{rng.randrange(0, 10000):04d}"
    return "dummy-" + "".join(rng.choice(_ALNUM) for _ in range(10))


def _value(col: Column, i: int, rng: random.Random) -> Any:
    if col.role is ColumnRole.entity_key:
        return f"DUMMY-{i + 1:06d}"
    if col.role is ColumnRole.identifier:
        return _identifier(col, rng)
    if col.domain is not None:
        return rng.choice(col.domain)
    if col.bounds is not None:
        lo, hi = col.bounds
        if col.type == "integer":
            return rng.randint(int(lo), int(hi))
        return round(rng.uniform(float(lo), float(hi)), 2)
    if col.type == "date":
        return (dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(0, 2200))).isoformat()
    if col.type == "integer":
        return rng.randint(0, 100)
    if col.type == "float":
        return round(rng.uniform(0, 100), 2)
    return f"示例文本 {i + 1}"


def dummy_rows(policy: Policy, n: int = 20, seed: int | None = None) -> list[dict[str, Any]]:
    """``n`` rows that look like the dataset's rows and come from its schema only."""
    rng = random.Random(seed)  # noqa: S311 - synthetic values, not secrets
    return [{c.name: _value(c, i, rng) for c in policy.columns} for i in range(n)]
