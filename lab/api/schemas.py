"""Response and request schemas shared by routers (kept apart from table models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

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
    row_count: int
    row_count_exact: bool = True  # False: noisy and rounded (non-open data, readers other than the bureau)
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
