"""Product submissions and views (pydantic; kept apart from the table models)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lab.products.models import ProductType

RecordId = str


MAX_ENDPOINT_BYTES = 64 * 1024


class Name(BaseModel):
    zh: str = Field(min_length=1, max_length=200)
    en: str = Field(min_length=1, max_length=200)


class Endpoint(BaseModel):
    """An API/service product's endpoint description (registered instead of a file)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://")
    method: str = Field("GET", max_length=16)
    description: str = Field("", max_length=8000)
    openapi: dict[str, Any] | None = None
    auth: str = Field("", max_length=200, description="how callers authenticate (no secrets)")


class ProductSubmission(BaseModel):
    """What an operator or registration client submits (the multipart ``metadata`` JSON part)."""

    model_config = ConfigDict(extra="forbid")

    project: str | None = Field(None, max_length=32, description="required for a new product")
    name: Name
    type: ProductType
    description: str = Field("", max_length=8000)
    scenario: str = Field("", max_length=8000, description="application scenario")
    derived_from: list[RecordId] = Field(min_length=1, max_length=200)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$", description="declared artifact digest")
    endpoint: Endpoint | None = None
    count_columns: list[str] = Field(default_factory=list, max_length=200)
    dp_columns: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("name", mode="before")
    @classmethod
    def _one_name(cls, v: Any) -> Any:
        return {"zh": v, "en": v} if isinstance(v, str) else v

    @field_validator("derived_from")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for i in v:
            if not (isinstance(i, str) and 3 < len(i) <= 40):
                raise ValueError("derived record ids look like dr_<32 hex>")
        return v

    @model_validator(mode="after")
    def _artifact(self) -> ProductSubmission:
        if self.type is ProductType.api and self.endpoint is None:
            raise ValueError("an API/service product is registered with an endpoint description")
        if self.type is not ProductType.api and self.endpoint is not None:
            raise ValueError("only API/service products take an endpoint description; upload a file")
        return self


class Check(BaseModel):
    name: str
    status: Literal["pass", "fail", "skipped"]
    detail: str
    data: dict[str, Any] = Field(default_factory=dict)


class Artifact(BaseModel):
    kind: Literal["file", "endpoint"]
    sha256: str
    size: int
    filename: str | None = None
    media_type: str | None = None
    endpoint: dict[str, Any] | None = None


class VersionOut(BaseModel):
    version: int
    status: str
    name: Name
    description: str
    scenario: str
    artifact: Artifact
    derived_from: list[str]
    checks: list[Check]
    checks_passed: bool
    submitted_by: str
    submitted_at: dt.datetime
    submit_ledger_index: int
    reviewed_by: str | None
    reviewed_at: dt.datetime | None
    review_reason: str | None
    review_ledger_index: int | None
    has_certificate: bool
    approvals: list[str] = Field(
        default_factory=list, description="reviewers who approved this flagged version so far"
    )
    approvals_required: int = Field(1, description="distinct approvals it needs (2 when flagged)")


class ProductOut(BaseModel):
    id: str
    project: str
    registration_number: str | None
    name: Name
    type: str
    status: str
    current_version: int
    approved_version: int | None
    created_by: str
    created_at: dt.datetime
    registered_at: dt.datetime | None
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    latest: VersionOut


class LineageItem(BaseModel):
    """A derived record a version comes from, as recorded at submission."""

    record: str
    channel: str
    operation: str
    caller: str
    datasets: list[dict[str, Any]]
    epsilon: str
    delta: str
    result_sha256: str
    created_at: str
    ledger_index: int
    leaf_hash: str


class Event(BaseModel):
    version: int | None
    action: str
    actor: str
    reason: str
    at: dt.datetime
    ledger_index: int | None


class ProductDetail(ProductOut):
    """A product with every version, the latest version's lineage and its history (for the bureau page)."""

    versions: list[VersionOut]
    lineage: list[LineageItem]
    events: list[Event]
    organization: str


class QueueItem(BaseModel):
    """One version awaiting the bureau's review."""

    product: str
    version: int
    project: str
    name: Name
    type: str
    status: str  # in_review | flagged
    failed_checks: list[str]
    submitted_by: str
    submitted_at: dt.datetime
    registration_number: str | None


class PublicEntry(BaseModel):
    """What anyone may learn from a registration number: non-sensitive metadata and status."""

    registration_number: str
    name: Name
    type: str
    status: str
    organization: str
    version: int | None
    artifact_sha256: str | None
    registered_at: dt.datetime | None
    revoked_at: dt.datetime | None
    revoke_reason: str | None
    approval_ledger_index: int | None
    revoke_ledger_index: int | None


class ReviewIn(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str = Field("", max_length=4000)
    version: int | None = Field(None, ge=1, le=2**31 - 1)


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)
