"""Check a DP spec against the dataset's policy and turn it into an executable plan.

Rules enforced here (each violation is :class:`~lab.errors.InvalidQuery`, a 400 problem, before
anything runs or is charged):

* group-by and histogram columns are in the policy's ``channels.dp.group_by``; their keys are the
  declared domain, in declared order — every key appears in the output, nothing else does;
* filters only on ``channels.dp.filterable`` columns, with operators that fit the column's role;
  categorical values must belong to the domain, numeric values to the declared bounds (a value
  outside them can only probe for outliers);
* numeric aggregates only on numeric columns with declared bounds; a query may narrow them, never widen;
* the output is size-bounded (cells and released values);
* each aggregation's ε (and δ) share, and its internal split across noisy components, is fixed here.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np

from lab.budgets import Budget
from lab.catalog.policy import Column, ColumnRole, DpPolicy, Policy
from lab.decimals import plain
from lab.dp.spec import (
    MAX_CELLS,
    MAX_VALUES,
    Aggregation,
    Filter,
    NoiseKind,
    QuerySpec,
    TrainSpec,
    distinct_floats,
)
from lab.errors import InvalidQuery
from lab.mechanisms import quantile_grid

#: Noisy components of each aggregate, in the order the ε share is split (evenly) between them.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "count": ("count",),
    "sum": ("sum",),
    "mean": ("count", "centered_sum"),
    "variance": ("count", "centered_sum", "centered_sum_of_squares"),
    "stddev": ("count", "centered_sum", "centered_sum_of_squares"),
    "histogram": ("count",),
}
_QUANTUM = Decimal("1e-15")
#: Naive Bayes splits ε over 2 × features sums per class and the class counts: below this factor
#: (ε per features² × classes) every parameter is noise, so such a training is refused.
NB_EPSILON_PER_COST = Decimal("0.000002")


def down(d: Decimal) -> float:
    """``d`` as a float never above ``d`` (so float shares never add up to more than was charged)."""
    f = float(d)
    return math.nextafter(f, 0.0) if Decimal(f) > d else f


def split(total: Decimal, parts: int) -> Decimal:
    return (total / parts).quantize(_QUANTUM, ROUND_DOWN) if parts > 1 else total


@dataclass(frozen=True)
class Dim:
    column: str
    domain: tuple[str, ...]


@dataclass(frozen=True)
class Where:
    """One filter as SQL text (quoted identifiers, ``?`` placeholders) and its bound parameters."""

    sql: str
    params: tuple[Any, ...]


@dataclass(frozen=True)
class PlannedAgg:
    spec: Aggregation
    epsilon: Decimal
    delta: Decimal
    low: float = 0.0
    high: float = 0.0
    integer: bool = False
    bins: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def agg(self) -> str:
        return self.spec.agg

    @property
    def mid(self) -> float:
        return (self.low + self.high) / 2

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(float(q) for q in self.spec.levels)

    def magnitude(self, component: str) -> float:
        """The largest ``|value|`` one row adds to a summed component (after clamping)."""
        return {
            "sum": max(abs(self.low), abs(self.high)),
            "centered_sum": self.half,
            "centered_sum_of_squares": self.half**2,
        }[component]

    @property
    def values_per_cell(self) -> int:
        if self.agg == "histogram":
            return len(self.bins)
        return len(self.levels) if self.agg == "quantile" else 1

    def component_budget(self) -> tuple[float, float]:
        """ε and δ of each noisy component (quantiles: ε of each level's exponential mechanism)."""
        parts = len(self.levels) if self.agg == "quantile" else len(COMPONENTS[self.agg])
        return down(split(self.epsilon, parts)), down(split(self.delta, parts))

    def split_note(self) -> str:
        if self.agg == "quantile":
            n = len(self.levels)
            return "one exponential mechanism per level, ε split evenly" if n > 1 else "exponential mechanism"
        comps = COMPONENTS[self.agg]
        if len(comps) == 1:
            return f"{comps[0]}: all of this aggregation's budget"
        share = f"1/{len(comps)}"
        return ", ".join(f"{c} {share}" for c in comps) + " of this aggregation's ε (and δ)"


@dataclass(frozen=True)
class QueryPlan:
    spec: QuerySpec
    entity_key: str
    rows_per_entity: int
    dims: tuple[Dim, ...]
    aggs: tuple[PlannedAgg, ...]
    where: tuple[Where, ...]
    noise: NoiseKind
    cost: Budget
    min_cell_count: int

    @property
    def cells(self) -> int:
        return math.prod(len(d.domain) for d in self.dims)

    def cell_keys(self) -> list[tuple[str, ...]]:
        """Every group key, row-major over the dims' declared domains (last dim varies fastest)."""
        return list(itertools.product(*(d.domain for d in self.dims)))


@dataclass(frozen=True)
class TrainPlan:
    spec: TrainSpec
    entity_key: str
    where: tuple[Where, ...]
    bounds: dict[str, tuple[float, float]]
    target: Column
    classes: tuple[Any, ...]
    cost: Budget


def _dp(policy: Policy) -> DpPolicy:
    if policy.channels.dp is None:
        raise InvalidQuery(f"the policy of {policy.dataset} does not open the dp channel")
    return policy.channels.dp


def _column(policy: Policy, name: str, what: str) -> Column:
    try:
        return policy.column(name)
    except KeyError:
        raise InvalidQuery(f"{what}: {policy.dataset} has no column {name!r}", field=what) from None


def _bounds(
    policy: Policy, col: Column, asked: tuple[Decimal, Decimal] | None, what: str
) -> tuple[float, float]:
    if col.role is not ColumnRole.numeric or col.bounds is None:
        raise InvalidQuery(f"{what}: {col.name!r} is not a numeric column with declared bounds", field=what)
    lo, hi = col.bounds
    if asked is not None and not distinct_floats(*asked):
        raise InvalidQuery(f"{what}: bounds must be distinct as floats", field=what)
    if asked is not None:
        if asked[0] < lo or asked[1] > hi:
            raise InvalidQuery(
                f"{what}: bounds [{asked[0]}, {asked[1]}] widen the policy's [{lo}, {hi}] for "
                f"{col.name!r}; a query may only narrow them",
                field=what,
                policy_bounds=[str(lo), str(hi)],
            )
        lo, hi = asked
    return float(lo), float(hi)


def _scalar(col: Column, value: str | Decimal, what: str) -> Any:
    try:
        if col.role is ColumnRole.categorical:
            text = str(value)
            if col.domain is None or text not in col.domain:
                raise InvalidQuery(f"{what}: {text!r} is not in the domain of {col.name!r}", field=what)
            return text
        if col.role is ColumnRole.numeric:
            number = Decimal(str(value))
            if col.bounds is not None and not col.bounds[0] <= number <= col.bounds[1]:
                raise InvalidQuery(
                    f"{what}: {number} is outside the declared bounds [{col.bounds[0]}, {col.bounds[1]}] "
                    f"of {col.name!r}",
                    field=what,
                    policy_bounds=[str(b) for b in col.bounds],
                )
            return float(number)
        return dt.date.fromisoformat(str(value))
    except (ValueError, ArithmeticError):
        raise InvalidQuery(
            f"{what}: {value!r} is not a valid {col.type} for {col.name!r}", field=what
        ) from None


_SQL_OPS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def plan_filters(policy: Policy, filters: tuple[Filter, ...]) -> tuple[Where, ...]:
    """Policy-checked filters as SQL fragments with bound parameters."""
    dp, out = _dp(policy), []
    for i, f in enumerate(filters):
        what = f"where[{i}]"
        col = _column(policy, f.column, what)
        if f.column not in dp.filterable:
            raise InvalidQuery(
                f"{what}: {f.column!r} is not filterable under the policy of {policy.dataset} "
                f"(filterable: {', '.join(dp.filterable) or 'none'})",
                field=what,
            )
        if col.role is ColumnRole.categorical and f.op not in ("eq", "ne", "in", "not_in"):
            raise InvalidQuery(f"{what}: {f.op} does not apply to categorical {f.column!r}", field=what)
        values = [_scalar(col, v, what) for v in f.values]
        ident = f'CAST("{col.name}" AS VARCHAR)' if col.role is ColumnRole.categorical else f'"{col.name}"'
        if f.op in ("in", "not_in"):
            marks = ", ".join("?" for _ in values)
            sql = f"{ident} {'NOT IN' if f.op == 'not_in' else 'IN'} ({marks})"
        elif f.op == "between":
            sql = f"{ident} BETWEEN ? AND ?"
        else:
            sql = f"{ident} {_SQL_OPS[f.op]} ?"
        out.append(Where(sql, tuple(values)))
    return tuple(out)


def _plan_agg(
    policy: Policy, dp: DpPolicy, a: Aggregation, i: int, eps: Decimal, delta: Decimal
) -> PlannedAgg:
    what = f"select[{i}]"
    if a.agg == "count":
        return PlannedAgg(a, eps, delta)
    col = _column(policy, a.column or "", what)
    if a.agg == "histogram":
        if col.name not in dp.group_by or col.domain is None:
            raise InvalidQuery(
                f"{what}: histograms are allowed on the policy's group-by columns "
                f"({', '.join(dp.group_by) or 'none'}), not {col.name!r}",
                field=what,
            )
        return PlannedAgg(a, eps, delta, bins=col.domain)
    lo, hi = _bounds(policy, col, a.bounds, what)
    planned = PlannedAgg(a, eps, delta, lo, hi, integer=col.type == "integer")
    if a.agg == "quantile" and not np.all(np.diff(quantile_grid(lo, hi, planned.integer)) > 0):
        raise InvalidQuery(
            f"{what}: bounds [{lo!r}, {hi!r}] are too narrow for distinct quantile candidates", field=what
        )
    return planned


def plan_query(spec: QuerySpec, policy: Policy) -> QueryPlan:
    """Validate ``spec`` against ``policy``; raises :class:`InvalidQuery` naming the offending part."""
    dp = _dp(policy)
    if spec.dataset != policy.dataset:
        raise InvalidQuery(f"the spec names {spec.dataset}, the policy is {policy.dataset}")
    dims = []
    for name in spec.group_by:
        col = _column(policy, name, "group_by")
        if name not in dp.group_by or col.domain is None:
            raise InvalidQuery(
                f"group_by: {name!r} is not a group-by column under the policy of {policy.dataset} "
                f"(allowed: {', '.join(dp.group_by) or 'none'})",
                field="group_by",
            )
        dims.append(Dim(name, col.domain))
    noise = spec.mechanism
    gaussian = [a.agg != "quantile" for a in spec.select]
    if spec.delta > 0 and not any(gaussian):
        raise InvalidQuery("delta > 0 but no aggregation uses Gaussian noise (quantiles are pure ε)")
    delta_share = split(spec.delta, sum(gaussian)) if spec.delta > 0 else Decimal(0)
    aggs = tuple(
        _plan_agg(policy, dp, a, i, eps, delta_share if g else Decimal(0))
        for i, (a, eps, g) in enumerate(zip(spec.select, spec.shares(), gaussian, strict=True))
    )
    for a in aggs:
        if a.agg == "histogram" and a.spec.column in spec.group_by:
            raise InvalidQuery(f"histogram of {a.spec.column!r}, which is also a group_by column")
    plan = QueryPlan(
        spec=spec,
        entity_key=policy.entity_key,
        rows_per_entity=dp.max_rows_per_entity,
        dims=tuple(dims),
        aggs=aggs,
        where=plan_filters(policy, spec.where),
        noise=noise,
        cost=spec.cost(),
        min_cell_count=dp.min_cell_count,
    )
    if plan.cells > MAX_CELLS:
        raise InvalidQuery(f"group_by makes {plan.cells} cells; the limit is {MAX_CELLS}", field="group_by")
    values = plan.cells * sum(a.values_per_cell for a in aggs)
    if values > MAX_VALUES:
        raise InvalidQuery(f"the query would release {values} values; the limit is {MAX_VALUES}")
    return plan


def _classes(spec: TrainSpec, target: Column) -> tuple[Any, ...]:
    if target.role is ColumnRole.categorical and target.domain:
        classes: tuple[Any, ...] = target.domain
    elif target.role is ColumnRole.numeric and target.type == "integer" and target.bounds is not None:
        lo, hi = int(target.bounds[0]), int(target.bounds[1])
        if hi - lo + 1 > 20:
            raise InvalidQuery(f"target {target.name!r} has too many classes for {spec.model}")
        classes = tuple(range(lo, hi + 1))
    else:
        raise InvalidQuery(f"target {target.name!r} of {spec.model} must be categorical or an integer class")
    if spec.model == "logistic" and len(classes) != 2:
        raise InvalidQuery(
            f"logistic regression needs a binary target; {target.name!r} has {len(classes)} classes"
        )
    return classes


def plan_training(spec: TrainSpec, policy: Policy) -> TrainPlan:
    """Validate a training spec: numeric features with bounds (narrowed if asked), a fitting target."""
    _dp(policy)
    if spec.dataset != policy.dataset:
        raise InvalidQuery(f"the spec names {spec.dataset}, the policy is {policy.dataset}")
    unknown = set(spec.bounds) - {*spec.features, spec.target}
    if unknown:
        raise InvalidQuery(f"bounds given for columns that are not used: {sorted(unknown)}", field="bounds")
    bounds = {
        f: _bounds(policy, _column(policy, f, "features"), spec.bounds.get(f), f"features.{f}")
        for f in spec.features
    }
    target = _column(policy, spec.target, "target")
    if spec.model == "linear":
        bounds[spec.target] = _bounds(policy, target, spec.bounds.get(spec.target), "target")
        classes: tuple[Any, ...] = ()
    else:
        classes = _classes(spec, target)
    if spec.model == "gaussian_nb":
        need = NB_EPSILON_PER_COST * len(spec.features) ** 2 * len(classes)
        if spec.epsilon < need:
            raise InvalidQuery(
                f"gaussian_nb on {len(spec.features)} features and {len(classes)} classes needs "
                f"ε ≥ {plain(need)}",
                field="epsilon",
            )
    return TrainPlan(
        spec=spec,
        entity_key=policy.entity_key,
        where=plan_filters(policy, spec.where),
        bounds=bounds,
        target=target,
        classes=classes,
        cost=spec.cost(),
    )


def estimated_cost(plan: QueryPlan, rows: int) -> float:
    """Work a query asks of the engine, for admission control: cells × aggregated values × rows.

    >>> from lab.catalog.policy import load_policy
    >>> spec = QuerySpec.model_validate({
    ...     "dataset": "population", "epsilon": 0.5, "group_by": ["gender", "town"],
    ...     "select": [{"agg": "count"}, {"agg": "mean", "column": "monthly_income"}],
    ... })
    >>> plan = plan_query(spec, load_policy("policies/population.yaml"))
    >>> plan.cells, estimated_cost(plan, rows=1000)  # 2 genders × 18 towns; 2 values a cell
    (36, 72000.0)
    """
    return float(plan.cells * max(1, sum(a.values_per_cell for a in plan.aggs)) * max(1, rows))
