"""API schemas of the HE channel (JSON parts; ciphertexts travel in :mod:`he_compute.frames`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from he_compute.models import HeContextRow


class ParamSetOut(BaseModel):
    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: list[int]
    scale_bits: int
    slots: int
    levels: int
    max_context_bytes: int
    use: str


class ContextOut(BaseModel):
    id: str
    project: str
    owner: str
    param_set: str
    sha256: str
    size_bytes: int
    has_relin_keys: bool
    has_galois_keys: bool
    created_at: str

    @classmethod
    def of(cls, row: HeContextRow) -> ContextOut:
        return cls(
            id=row.id,
            project=row.project_id,
            owner=row.owner,
            param_set=row.param_set,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            has_relin_keys=row.has_relin_keys,
            has_galois_keys=row.has_galois_keys,
            created_at=row.created_at.isoformat(),
        )


class ModelOut(BaseModel):
    """A model as operators see it: no weights."""

    id: str
    name: str
    kind: str
    scope: Literal["project", "bureau"]
    project: str | None
    dataset: str
    dataset_version: int
    features: list[str]
    bounds: dict[str, list[float] | None]
    target: str
    classes: list[Any] | None = None
    scorable: bool
    created_at: str


class TableOut(BaseModel):
    """A statistics table as operators see it: dimensions, no values."""

    id: str
    name: str
    scope: Literal["project", "bureau"]
    project: str | None
    dataset: str
    dataset_version: int
    dims: list[dict[str, Any]]
    statistic: str
    created_at: str


class PublishModel(BaseModel):
    """A model the bureau publishes for every project's HE scoring."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
    kind: Literal["linear", "logistic"]
    dataset: str = Field(min_length=1, max_length=64)
    features: list[str] = Field(min_length=1, max_length=256)
    target: str = Field(min_length=1, max_length=64)
    coef: list[float] = Field(min_length=1, max_length=256)
    intercept: float
    classes: list[Any] | None = None
    bounds: dict[str, list[float]] | None = Field(
        None, description="feature -> [lo, hi]; default: the policy's"
    )
    epsilon: str = Field("0", max_length=40, description="privacy cost of the training, if DP")

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"coef": self.coef, "intercept": self.intercept}
        if self.classes is not None:
            out["classes"] = self.classes
        if self.bounds:
            out["bounds"] = self.bounds
        return out


class PublishTable(BaseModel):
    """A statistics table the bureau publishes for every project's HE lookups."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
    dataset: str = Field(min_length=1, max_length=64)
    dims: list[dict[str, Any]] = Field(min_length=1, max_length=4)
    statistic: str = Field(min_length=1, max_length=64)
    values: list[float | None] = Field(min_length=1, max_length=100_000)
    epsilon: str = Field("0", max_length=40)
