"""Response schemas of the DP channel's API (request bodies are the specs of :mod:`lab.dp.spec`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Component(BaseModel):
    """One noisy component of an aggregation and its mechanism."""

    quantity: str = Field(description="count, sum, centered_sum, centered_sum_of_squares or q=<level>")
    mechanism: str = Field(
        description="Geometric, GaussianAnalytic (counts), FixedPointGeometric, FixedPointGaussian (sums, "
        "in fixed point with diffprivlib's integer noise) or Exponential (quantiles)"
    )
    epsilon: float
    delta: float
    sensitivity: float
    scale: float = Field(description="Δ/ε (geometric), σ (Gaussian), 2Δ/ε (exponential), in value units")
    error_95: float = Field(
        description="95% bound of this component's noise (unit: value, or score for quantiles)"
    )
    unit: str


class AggregationOut(BaseModel):
    name: str
    agg: str
    column: str | None
    bounds: list[float] | None = Field(description="clamping bounds used (policy's, or narrower)")
    epsilon: str
    delta: str
    split: str = Field(description="how this aggregation's budget is split across its components")
    components: list[Component]


class ValueRow(BaseModel):
    """One released value: group key (declared-domain values), aggregation and its 95% error bound."""

    group: list[str]
    name: str
    agg: str
    column: str | None
    key: str | None = Field(description="quantile level or histogram bin")
    value: float
    error_95: float | None
    unit: str = Field(description="value, or score for quantiles (a rank-like split error)")
    mechanism: str
    flag: str | None = Field(
        description="low_count when the noisy count is below the policy's min_cell_count"
    )


class QueryOut(BaseModel):
    record_id: str
    dataset: str
    version: int
    group_by: list[str]
    cohort: str | None
    noise: str
    epsilon: str = Field(description="the query's cost (ε)")
    delta: str
    confidence: float
    cached: bool = Field(description="true when this is the replay of an identical earlier query")
    epsilon_spent: str = Field(description="what this call spent (0 when cached)")
    delta_spent: str
    remaining: dict[str, str]
    rows: list[ValueRow]
    aggregations: list[AggregationOut]
    repeat_policy: str


class ExpectedOut(BaseModel):
    name: str
    agg: str
    unit: str
    error_95: float | None = Field(description="for mean/variance/stddev only with assumed_count")
    formula: str | None = None


class PreviewOut(BaseModel):
    dataset: str
    version: int
    allowed: bool
    reason: str | None
    cached: bool
    cost: dict[str, str]
    remaining: dict[str, str]
    cells: int
    values: int
    noise: str
    confidence: float
    aggregations: list[AggregationOut]
    expected: list[ExpectedOut]
    repeat_policy: str


class ModelOut(BaseModel):
    id: str
    name: str
    kind: str
    project: str | None
    dataset: str
    version: int
    features: list[str]
    target: str
    coef: list[float] | None
    intercept: float | None
    classes: list[Any] | None
    params: dict[str, Any]
    epsilon: str
    record_id: str | None
    created_by: str
    created_at: str
    epsilon_spent: str | None = None
    remaining: dict[str, str] | None = None


class TableOut(BaseModel):
    id: str
    name: str
    project: str | None
    dataset: str
    version: int
    dims: list[dict[str, Any]] = Field(description='[{"column": ..., "domain": [...]}]; values are row-major')
    statistic: str
    values: list[float | None] | None = Field(
        description="null unless the caller may see them (lab.artifacts.release.reveals)"
    )
    epsilon: str
    record_id: str | None
    created_by: str
    created_at: str
    errors_95: list[float | None] | None = None
    bounds: list[float] | None = None
    aggregation: AggregationOut | None = None
    delta: str | None = None
    epsilon_spent: str | None = None
    delta_spent: str | None = None
    remaining: dict[str, str] | None = None
