"""The versioned, size-bounded DP request specs: queries, table releases and model training.

A query is a structured spec, never SQL::

    {"version": 1, "dataset": "population",
     "select": [{"agg": "count"}, {"agg": "mean", "column": "monthly_income", "bounds": [0, 20000]}],
     "where": [{"column": "age", "op": "between", "value": [18, 65]}],
     "group_by": ["town"], "epsilon": "0.5"}

These models check shape and sizes only; :func:`lab.dp.engine.plan_query` checks a spec against
the dataset's policy (allowed columns, bounds that narrow, domains). Every number that reaches the
budget or the ledger is a :class:`~decimal.Decimal`, never a float.

>>> spec = QuerySpec.model_validate({"dataset": "population", "select": [{"agg": "count"}], "epsilon": 0.5})
>>> str(spec.cost().epsilon), spec.shares()
('0.5', [Decimal('0.5')])
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError, model_validator

from lab.budgets import Budget
from lab.decimals import plain
from lab.errors import InvalidQuery

SPEC_VERSION = 1
MAX_AGGREGATIONS = 20
MAX_FILTERS = 16
MAX_SET = 256
MAX_QUANTILES = 19
MAX_GROUP_BY = 3
MAX_CELLS = 10_000
MAX_VALUES = 20_000
MAX_FEATURES = 32
#: The smallest ε a request (or one aggregation's share) may name, and the most decimal places of ε
#: and δ: below it every value is pure noise, and shares split down to the engine's 1e-15 quantum
#: would reach zero (a division by zero, not an answer). A 1000-digit ε is a 422, not a computation.
MIN_EPSILON = Decimal("0.000001")
MIN_DELTA = Decimal("1e-12")  # a δ > 0 below this would vanish when split across components
PLACES = 20  # a float's shortest repr fits; sums of spends stay exact in Decimal's 28 digits
#: Every other number a spec carries (bounds, filter values) is finite, at most this large in
#: magnitude, with at most ``VALUE_PLACES`` decimal places and ``VALUE_DIGITS`` digits: an exponent
#: such as ``1e5000000`` is a 422 at the schema, never an overflow (or a megabyte of digits) later.
MAX_MAGNITUDE = Decimal("1e15")
VALUE_PLACES = 12
VALUE_DIGITS = 27

AggKind = Literal["count", "sum", "mean", "variance", "stddev", "quantile", "histogram"]
FilterOp = Literal["eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "between"]
NoiseKind = Literal["laplace", "gaussian"]
ModelKind = Literal["logistic", "linear", "gaussian_nb"]
NUMERIC_AGGS = frozenset({"sum", "mean", "variance", "stddev", "quantile"})
_QUANTUM = Decimal("1e-15")


def _delta(d: Decimal) -> Decimal:
    if 0 < d < MIN_DELTA:
        raise ValueError(f"delta must be 0 or at least {MIN_DELTA:f}")
    return normalize(d)


def distinct_floats(low: Decimal, high: Decimal) -> bool:
    """``low < high`` still holds after conversion to the engine's float type (and the width is finite).

    >>> distinct_floats(Decimal("0.1"), Decimal("0.10000000000000001"))
    False
    """
    lo, hi = float(low), float(high)
    return lo < hi and math.isfinite(hi - lo)


def normalize(d: Decimal) -> Decimal:
    """A decimal in plain, canonical form (``0.50`` → ``0.5``, ``1E+1`` → ``10``)."""
    if not d.is_finite():
        raise ValueError("numbers must be finite")
    return Decimal(plain(d))


Num = Annotated[
    Decimal,
    Field(
        ge=-MAX_MAGNITUDE,
        le=MAX_MAGNITUDE,
        decimal_places=VALUE_PLACES,
        max_digits=VALUE_DIGITS,
        allow_inf_nan=False,
    ),
    AfterValidator(normalize),
]
Delta = Annotated[Decimal, Field(ge=0, lt=1, decimal_places=PLACES), AfterValidator(_delta)]
PosNum = Annotated[Decimal, Field(ge=MIN_EPSILON, le=100, decimal_places=PLACES), AfterValidator(normalize)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")]
ColumnName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
MAX_TEXT = 256  # a filter's text value (a domain value or an ISO date) is short
Scalar = Annotated[StrictStr, Field(max_length=MAX_TEXT)] | Num


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Aggregation(_Strict):
    """One aggregate: ``count`` (rows), ``sum``/``mean``/``variance``/``stddev``/``quantile`` of a
    numeric column clamped to its bounds, or ``histogram`` of a categorical column over its domain."""

    agg: AggKind
    column: ColumnName | None = None
    bounds: tuple[Num, Num] | None = Field(None, description="narrower clamping bounds [low, high]")
    quantiles: tuple[Annotated[Decimal, Field(gt=0, lt=1, decimal_places=6)], ...] | None = Field(
        None, max_length=MAX_QUANTILES, description="quantile levels in (0, 1); default [0.5]"
    )
    epsilon: PosNum | None = Field(None, description="this aggregation's share of ε (default: even split)")
    name: Name | None = None

    @model_validator(mode="after")
    def _shape(self) -> Aggregation:
        if self.agg == "count" and self.column is not None:
            raise ValueError("count counts rows and takes no column")
        if self.agg != "count" and self.column is None:
            raise ValueError(f"{self.agg} needs a column")
        if self.bounds is not None and self.agg not in NUMERIC_AGGS:
            raise ValueError(f"{self.agg} takes no bounds")
        if self.bounds is not None and not distinct_floats(*self.bounds):
            raise ValueError("bounds must be [low, high] with low < high, distinct as floats")
        if self.quantiles is not None:
            if self.agg != "quantile":
                raise ValueError("only quantile takes quantiles")
            if len(self.quantiles) == 0 or len(set(self.quantiles)) != len(self.quantiles):
                raise ValueError("quantiles must be distinct and non-empty")
        return self

    @property
    def label(self) -> str:
        """The name of this aggregation's values in results (``mean_monthly_income`` unless named)."""
        return self.name or (self.agg if self.column is None else f"{self.agg}_{self.column}")

    @property
    def levels(self) -> tuple[Decimal, ...]:
        return tuple(normalize(q) for q in (self.quantiles or (Decimal("0.5"),)))


class Filter(_Strict):
    """A row filter on a policy-filterable column. ``in``/``not_in`` take a list, ``between`` a
    ``[low, high]`` pair (inclusive), the others one value; dates are ISO strings."""

    column: ColumnName
    op: FilterOp = "eq"
    value: Scalar | list[Scalar] = Field(union_mode="left_to_right")

    @model_validator(mode="after")
    def _shape(self) -> Filter:
        many = isinstance(self.value, list)
        if self.op in ("in", "not_in"):
            if not many or not 1 <= len(self.value) <= MAX_SET:  # type: ignore[arg-type]
                raise ValueError(f"{self.op} takes a list of 1 to {MAX_SET} values")
        elif self.op == "between":
            if not many or len(self.value) != 2:  # type: ignore[arg-type]
                raise ValueError("between takes [low, high]")
        elif many:
            raise ValueError(f"{self.op} takes a single value")
        return self

    @property
    def values(self) -> list[str | Decimal]:
        return list(self.value) if isinstance(self.value, list) else [self.value]


class _Selection(_Strict):
    """What every DP request shares: the dataset, row filters and an optional server-side cohort."""

    version: Literal[1] = 1
    dataset: ColumnName
    where: tuple[Filter, ...] = Field((), max_length=MAX_FILTERS)
    cohort: Annotated[str, Field(pattern=r"^co_[0-9a-f]{1,40}$")] | None = None


class QuerySpec(_Selection):
    """A DP aggregate query (version 1)."""

    select: tuple[Aggregation, ...] = Field(min_length=1, max_length=MAX_AGGREGATIONS)
    group_by: tuple[ColumnName, ...] = Field((), max_length=MAX_GROUP_BY)
    epsilon: PosNum | None = Field(None, description="total ε; default: the sum of explicit shares")
    delta: Delta = Decimal(0)
    noise: NoiseKind | None = Field(None, description="laplace (pure ε, default) or gaussian (needs δ > 0)")

    @model_validator(mode="after")
    def _budget(self) -> QuerySpec:
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by columns must be distinct")
        labels = [a.label for a in self.select]
        if len(set(labels)) != len(labels):
            raise ValueError(f"aggregation names must be distinct (got {labels}); set 'name'")
        explicit = [a.epsilon for a in self.select if a.epsilon is not None]
        if self.epsilon is None and len(explicit) != len(self.select):
            raise ValueError("give epsilon, or an epsilon for every aggregation")
        if self.epsilon is not None:
            rest = self.epsilon - sum(explicit, Decimal(0))
            if rest < 0 or (len(explicit) == len(self.select) and rest != 0):
                raise ValueError("the aggregations' epsilons must add up to the query's epsilon")
            if len(explicit) < len(self.select) and rest <= 0:
                raise ValueError("no epsilon left for the aggregations without an explicit share")
        if self.noise == "gaussian" and self.delta == 0:
            raise ValueError("gaussian noise needs delta > 0")
        if self.noise == "laplace" and self.delta > 0:
            raise ValueError("laplace noise is pure ε-DP; set delta to 0")
        return self

    @property
    def mechanism(self) -> NoiseKind:
        """The noise for counts and sums: gaussian when δ > 0 unless stated otherwise."""
        return self.noise or ("gaussian" if self.delta > 0 else "laplace")

    def cost(self) -> Budget:
        """What the query spends: its total ε and δ."""
        eps = (
            self.epsilon if self.epsilon is not None else sum((a.epsilon or Decimal(0)) for a in self.select)
        )
        return Budget.of(eps, self.delta)

    def shares(self) -> list[Decimal]:
        """Each aggregation's ε: its explicit share, or an even split of what is left (rounded down)."""
        total = self.cost().epsilon
        explicit = [a.epsilon for a in self.select if a.epsilon is not None]
        implicit = len(self.select) - len(explicit)
        even = (
            ((total - sum(explicit, Decimal(0))) / implicit).quantize(_QUANTUM, ROUND_DOWN)
            if implicit
            else Decimal(0)
        )
        return [normalize(a.epsilon if a.epsilon is not None else even) for a in self.select]


class TableSpec(_Selection):
    """Release one statistic over the full cross product of ``dims``' domains as a stored table."""

    statistic: Aggregation
    dims: tuple[ColumnName, ...] = Field(min_length=1, max_length=MAX_GROUP_BY)
    epsilon: PosNum
    delta: Delta = Decimal(0)
    noise: NoiseKind | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _single(self) -> TableSpec:
        if self.statistic.agg == "histogram":
            raise ValueError("a table holds one value per cell: use count with one more dim")
        if self.statistic.agg == "quantile" and len(self.statistic.levels) != 1:
            raise ValueError("a table holds one value per cell: give a single quantile")
        return self

    def as_query(self) -> QuerySpec:
        """The equivalent grouped query."""
        try:
            return QuerySpec(
                dataset=self.dataset,
                where=self.where,
                cohort=self.cohort,
                select=(self.statistic.model_copy(update={"epsilon": None}),),
                group_by=self.dims,
                epsilon=self.epsilon,
                delta=self.delta,
                noise=self.noise,
            )
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise InvalidQuery(f"invalid table spec: {reason}") from None

    @property
    def label(self) -> str:
        return self.name or f"{self.statistic.label}_by_{'_'.join(self.dims)}"


class TrainSpec(_Selection):
    """Train a diffprivlib model on numeric features (bounds from the policy, may be narrowed)."""

    model: ModelKind
    features: tuple[ColumnName, ...] = Field(min_length=1, max_length=MAX_FEATURES)
    target: ColumnName
    epsilon: PosNum
    bounds: dict[ColumnName, tuple[Num, Num]] = Field(default_factory=dict, max_length=MAX_FEATURES + 1)
    name: Name | None = None

    @model_validator(mode="after")
    def _columns(self) -> TrainSpec:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features must be distinct")
        if self.target in self.features:
            raise ValueError("the target cannot be a feature")
        for col, (lo, hi) in self.bounds.items():
            if not distinct_floats(lo, hi):
                raise ValueError(f"bounds of {col} must be [low, high] with low < high, distinct as floats")
        return self

    def cost(self) -> Budget:
        return Budget.of(self.epsilon)


def canonical(spec: BaseModel) -> dict[str, Any]:
    """The spec as JSON-safe data with every default filled in (decimals as strings)."""
    return spec.model_dump(mode="json")
