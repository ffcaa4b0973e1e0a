"""What a reader sees of a dataset's size: exact for the bureau and for open data, noisy otherwise.

A non-open dataset's exact row count, and the exact difference between two of its versions, is an
exact aggregate of personal data (one resident more or less). Everyone but the bureau sees

    ``shown = round_to(max(0, n + Z), ROUNDING)``,  ``Z`` two-sided geometric at ``CATALOG_EPSILON``,

with ``Z`` drawn once per (dataset, version) from a seed keyed by the lab's secret, so repeated
reads return the same value and cannot be averaged. Every version is a separate ε-DP release
(``CATALOG_EPSILON`` per version, sensitivity one row, the entity's rows are bounded by the import
too), then rounded (post-processing). Differences between versions are differences of independent
noisy values. Stewards see the exact count of what they import in the import response (they hold
the file); the ledger entry's ``row_count`` is withheld from the same readers
(:func:`redact_ledger_body`).

>>> key = b"k" * 32
>>> noisy_row_count(1234, key, "visits", 1) == noisy_row_count(1234, key, "visits", 1)
True
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import numpy as np

from lab.catalog.policy import OpenAttribute, Policy
from lab.dp.mechanisms import GeometricCount
from lab.identity import Principal, Role

CATALOG_EPSILON = 0.1  # per dataset version: noise of scale 10 rows
ROUNDING = 10


def exact_for(principal: Principal | None, policy: Policy) -> bool:
    """Whether ``principal`` may see ``policy``'s dataset's exact size (the bureau; open data)."""
    if policy.open is not OpenAttribute.non_open:
        return True
    return principal is not None and principal.has(Role.bureau)


def noisy_row_count(rows: int, key: bytes, dataset: str, version: int) -> int:
    """The one noisy, rounded count every non-bureau reader sees for this version."""
    tag = hmac.new(key, f"lab.catalog.row-count:{dataset}:{version}".encode(), hashlib.sha256).digest()
    rng = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(int.from_bytes(tag[:16], "big"))))
    noisy = int(GeometricCount(CATALOG_EPSILON, 1).randomise(np.array([rows], dtype=object), rng)[0])
    return max(0, ROUNDING * round(noisy / ROUNDING))


def shown_entry(
    entry: dict[str, Any], policy: Policy, principal: Principal | None, key: bytes
) -> dict[str, Any]:
    """A catalog entry (``DatasetVersion.entry()``) as ``principal`` may see it."""
    if exact_for(principal, policy):
        return {**entry, "row_count_exact": True}
    shown = noisy_row_count(int(entry["row_count"]), key, str(entry["id"]), int(entry["version"]))
    return {**entry, "row_count": shown, "row_count_exact": False}


def redact_ledger_body(entry: dict[str, Any]) -> dict[str, Any]:
    """A ``catalog.dataset_version`` ledger entry without a non-open dataset's exact ``row_count``."""
    body = entry.get("body")
    if entry.get("kind") != "catalog.dataset_version" or not isinstance(body, dict):
        return entry
    if body.get("open") != OpenAttribute.non_open.value or "row_count" not in body:
        return entry
    return {**entry, "body": {**body, "row_count": "withheld"}}
