"""What a reader sees of a dataset's size: exact for the bureau and for open data, noisy otherwise.

A non-open dataset's exact size, and the exact difference between two of its versions, is an
exact aggregate of personal data. Everyone but the bureau sees the number of **distinct entities**
(the policy's entity key: residents, enterprises), not rows:

    ``shown = round_to(max(0, m + Z), ROUNDING)``,  ``m`` distinct entities,
    ``Z`` two-sided geometric at ``CATALOG_EPSILON`` with sensitivity 1,

because adding or removing one entity changes ``m`` by exactly one, however many rows it has (a
row count would change by up to the entity's row count, which the raw Parquet does not bound:
one resident with k visits would be protected at k × ``CATALOG_EPSILON`` only). ``Z`` is drawn once
per (dataset, version) from a seed keyed by the lab's secret, so repeated reads return the same
value and cannot be averaged: every version is one ε-DP release of ``CATALOG_EPSILON``, then rounded
(post-processing); differences between versions are differences of independent noisy values.
The distinct-entity count is computed at import (:meth:`lab.catalog.service.CatalogImporter.import_file`);
a version imported before it was (``entity_count`` unknown) keeps showing the noisy row count it
showed before — a value already released, repeated, so no further loss (its real cost was up to
``max rows per entity`` × ``CATALOG_EPSILON``; a re-import replaces it by an entity count).
Stewards see the exact row count of what they import in the import response (they hold the
file); the ledger entry's ``row_count`` is withheld from the same readers (:func:`redact_ledger_body`).

>>> key = b"k" * 32
>>> noisy_entity_count(1234, key, "visits", 1) == noisy_entity_count(1234, key, "visits", 1)
True
>>> noisy_entity_count(1234, key, "visits", 1) % ROUNDING
0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lab.catalog.policy import OpenAttribute, Policy
from lab.identity import Principal, Role
from lab.mechanisms import GeometricCount, keyed_rng

CATALOG_EPSILON = 0.1  # per dataset version: noise of scale 10 entities (sensitivity 1 entity)
SENSITIVITY = 1  # one entity more or less changes the distinct-entity count by one
ROUNDING = 10


def exact_for(principal: Principal | None, policy: Policy) -> bool:
    """Whether ``principal`` may see ``policy``'s dataset's exact size (the bureau; open data)."""
    if policy.open is not OpenAttribute.non_open:
        return True
    return principal is not None and principal.has(Role.bureau)


def _noise(label: str, key: bytes, dataset: str, version: int) -> np.random.RandomState:
    return keyed_rng(key, f"{label}:{dataset}:{version}")


def noisy_entity_count(entities: int, key: bytes, dataset: str, version: int) -> int:
    """The one noisy, rounded distinct-entity count every non-bureau reader sees for this version.

    The seed's label differs from the earlier row-count release's, so the two noisy values of one
    version are independent (a shared draw would reveal rows − entities exactly).
    """
    rng = _noise("lab.catalog.entity-count", key, dataset, version)
    noisy = int(
        GeometricCount(CATALOG_EPSILON, SENSITIVITY).randomise(np.array([entities], dtype=object), rng)[0]
    )
    return max(0, ROUNDING * round(noisy / ROUNDING))


def noisy_row_count(rows: int, key: bytes, dataset: str, version: int) -> int:
    """The noisy row count shown before entity counts existed; only for versions without one.

    Deterministic per version, so it repeats a value already released and adds no new loss.
    """
    rng = _noise("lab.catalog.row-count", key, dataset, version)
    noisy = int(GeometricCount(CATALOG_EPSILON, 1).randomise(np.array([rows], dtype=object), rng)[0])
    return max(0, ROUNDING * round(noisy / ROUNDING))


def shown_size(rows: int, entities: int | None, key: bytes, dataset: str, version: int) -> int:
    """The size a non-bureau reader of a non-open version sees, for uses such as sampling rates.

    The noisy entity count; a version without one falls back to its earlier noisy row count.
    """
    if entities is not None:
        return noisy_entity_count(entities, key, dataset, version)
    return noisy_row_count(rows, key, dataset, version)


def shown_entry(
    entry: dict[str, Any], policy: Policy, principal: Principal | None, key: bytes
) -> dict[str, Any]:
    """A catalog entry (``DatasetVersion.entry()``) as ``principal`` may see it.

    Exact readers get ``row_count`` in rows (``counted: "rows"``) and the exact ``entity_count``;
    the others a noisy ``row_count`` of distinct entities (``counted: "entities"``, equal to
    ``entity_count``) — or, for a version imported before entity counts were taken, its earlier
    noisy row count (``counted: "rows"``, ``entity_count: None``).
    """
    if exact_for(principal, policy):
        return {**entry, "row_count_exact": True, "counted": "rows"}
    ds, version, entities = str(entry["id"]), int(entry["version"]), entry.get("entity_count")
    if entities is None:
        shown = noisy_row_count(int(entry["row_count"]), key, ds, version)
        return {**entry, "row_count": shown, "row_count_exact": False, "counted": "rows"}
    shown = noisy_entity_count(int(entities), key, ds, version)
    return {
        **entry,
        "row_count": shown,
        "entity_count": shown,
        "row_count_exact": False,
        "counted": "entities",
    }


def redact_ledger_body(entry: dict[str, Any]) -> dict[str, Any]:
    """A ``catalog.dataset_version`` ledger entry without a non-open dataset's exact ``row_count``."""
    body = entry.get("body")
    if entry.get("kind") != "catalog.dataset_version" or not isinstance(body, dict):
        return entry
    if body.get("open") != OpenAttribute.non_open.value or "row_count" not in body:
        return entry
    return {**entry, "body": {**body, "row_count": "withheld"}}
