"""Response and request schemas shared by routers (kept apart from table models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

#: The largest integer a query or path parameter may carry where the database compares it: integer
#: columns are 32-bit on PostgreSQL, and a larger value would fail in the driver (a 500), not as a 4xx.
MAX_INT = 2**31 - 1


class CatalogEntry(BaseModel):
    id: str
    title: dict[str, str]
    description: str
    responsible_unit: str
    format: str
    classification: str
    personal_information: bool
    trade_secret: bool
    share: dict[str, Any]
    open: str
    update_cycle: str
    retention_days: int
    version: int
    row_count: int = Field(
        description="The dataset version's size. Exact rows for the bureau and for open data "
        '(`row_count_exact`, `counted: "rows"`). For everyone else on non-open data: a noisy count of '
        "DISTINCT ENTITIES (the policy's entity key, e.g. residents), not rows, rounded to 10: one "
        'ε = 0.1 release per version with sensitivity 1 entity (`counted: "entities"`); versions '
        "imported before entities were counted keep their earlier noisy row count "
        '(`counted: "rows"`, `row_count_exact: false`).'
    )
    row_count_exact: bool = Field(
        True, description="False: noisy and rounded (non-open data, readers other than the bureau)"
    )
    counted: Literal["rows", "entities"] = Field("rows", description="What `row_count` counts")
    entity_count: int | None = Field(
        None,
        description="Distinct entities (the policy's entity key): exact for exact readers, the same noisy "
        "figure as `row_count` for the others; null where not counted (versions imported before counting)",
    )
    sha256: str
    imported_at: str
    ledger_index: int
    channels: list[str]


class DatasetSchema(BaseModel):
    id: str
    version: int
    entity_key: str
    columns: list[dict[str, Any]]
    channels: dict[str, Any]


class DummyRows(BaseModel):
    id: str
    version: int
    dummy: bool = True
    note: str = "generated from the schema alone; not real records"
    rows: list[dict[str, Any]]


class TreeHead(BaseModel):
    size: int
    root_hash: str
    timestamp_ms: int
    key_id: str
    public_key: str
    signature: str


class LedgerEntryOut(BaseModel):
    index: int
    kind: str
    entry: dict[str, Any]
    leaf_hash: str
    root_after: str


class VerifyOut(BaseModel):
    ok: bool
    size: int
    root_hash: str
    checked_tree_heads: int
    first_bad_index: int | None
    reason: str | None
