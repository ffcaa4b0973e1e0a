"""``client.dp``: differential privacy queries, previews, statistics tables and DP models.

>>> _select("mean(monthly_income)"), _select("quantile(age, 0.25, 0.5)")["quantiles"]
({'agg': 'mean', 'column': 'monthly_income'}, ['0.25', '0.5'])
>>> _where({"town": "城桥镇", "age": (18, 65), "employed": {">=": 1}})[1]
{'column': 'age', 'op': 'between', 'value': ['18', '65']}

Typical use in a notebook::

    c.use(project_id)
    r = c.dp.query("population", select=["count", "mean(monthly_income)"], group_by="town", epsilon=0.5)
    r.frame            # one row per value: group, name, value, error_95, lower, upper, mechanism, flag
    r.wide()           # one row per group, a value and an error column per aggregation
    r.epsilon_spent, r.remaining, r.record_id, r.mechanisms
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lab.client._client import Client

_CALL = re.compile(r"^\s*(\w+)\s*(?:\(\s*([^)]*)\))?\s*$")
_OPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def _num(value: Any) -> Any:
    """Numbers travel as strings so that the server parses them as exact decimals."""
    if isinstance(value, bool):
        raise TypeError("booleans are not filter values; use 0/1")
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(float(value)) if isinstance(value, float | np.floating) else str(int(value))
    return value


def _select(item: str | Mapping[str, Any]) -> dict[str, Any]:
    """``"count"``, ``"mean(col)"``, ``"quantile(col, 0.5, 0.9)"`` or a spec dict."""
    if isinstance(item, Mapping):
        given = dict(item)
        if "quantiles" in given:
            given["quantiles"] = [_num(q) for q in given["quantiles"]]
        for key in ("epsilon", "bounds"):
            if given.get(key) is not None:
                given[key] = [_num(b) for b in given[key]] if key == "bounds" else _num(given[key])
        return given
    m = _CALL.match(item)
    if not m:
        raise ValueError(f"cannot read aggregation {item!r}; use e.g. 'count' or 'mean(column)'")
    agg, args = m.group(1), [a.strip() for a in (m.group(2) or "").split(",") if a.strip()]
    out: dict[str, Any] = {"agg": agg}
    if args:
        out["column"] = args[0]
    if agg == "quantile" and len(args) > 1:
        out["quantiles"] = args[1:]
    return out


def _where(where: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Filters from a list of spec dicts or ``{column: value | [values] | (lo, hi) | {op: value}}``."""
    if where is None:
        return []
    if not isinstance(where, Mapping):
        return [{**f, "value": _value(f.get("value"))} for f in where]
    out: list[dict[str, Any]] = []
    for column, cond in where.items():
        if isinstance(cond, tuple):
            out.append({"column": column, "op": "between", "value": [_num(v) for v in cond]})
        elif isinstance(cond, list | set | frozenset):
            out.append({"column": column, "op": "in", "value": [_num(v) for v in cond]})
        elif isinstance(cond, Mapping):
            for op, v in cond.items():
                out.append({"column": column, "op": _OPS.get(op, op), "value": _value(v)})
        else:
            out.append({"column": column, "op": "eq", "value": _num(cond)})
    return out


def _value(v: Any) -> Any:
    return [_num(x) for x in v] if isinstance(v, list | tuple) else _num(v)


def _floats(d: Mapping[str, str]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()}


def _mechanisms(aggregations: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {"name": a["name"], "agg": a["agg"], "split": a["split"], **c}
        for a in aggregations
        for c in a["components"]
    ]
    return pd.DataFrame(rows)


@dataclass
class DpResult:
    """A released DP answer. ``frame`` has one row per value with its 95% error bound."""

    raw: dict[str, Any] = field(repr=False)
    frame: pd.DataFrame = field(repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> DpResult:
        groups = body["group_by"]
        rows = []
        for r in body["rows"]:
            row = dict(zip(groups, r["group"], strict=True))
            row.update({k: r[k] for k in ("name", "agg", "column", "key", "value", "error_95", "unit")})
            err = r["error_95"]
            numeric = err is not None and r["unit"] == "value"
            row["lower"] = r["value"] - err if numeric else np.nan
            row["upper"] = r["value"] + err if numeric else np.nan
            row.update({"mechanism": r["mechanism"], "flag": r["flag"]})
            rows.append(row)
        return cls(body, pd.DataFrame(rows))

    record_id = property(lambda self: self.raw["record_id"])
    cached = property(lambda self: bool(self.raw["cached"]))
    epsilon_spent = property(lambda self: float(self.raw["epsilon_spent"]))
    delta_spent = property(lambda self: float(self.raw["delta_spent"]))
    remaining = property(lambda self: _floats(self.raw["remaining"]))
    group_by = property(lambda self: list(self.raw["group_by"]))

    @property
    def mechanisms(self) -> pd.DataFrame:
        """Mechanism, ε, δ, sensitivity, scale and component bound of every aggregation."""
        return _mechanisms(self.raw["aggregations"])

    def wide(self) -> pd.DataFrame:
        """One row per group with ``<name>`` and ``<name>_error_95`` columns (``<name>[<key>]`` for
        histogram bins and quantile levels)."""
        f = self.frame.copy()
        f["series"] = [n if pd.isna(k) else f"{n}[{k}]" for n, k in zip(f["name"], f["key"], strict=True)]
        index = self.group_by or None
        if index is None:
            f["_"] = 0
            index = ["_"]
        values = f.pivot_table(index=index, columns="series", values="value", sort=False)
        errors = f.pivot_table(index=index, columns="series", values="error_95", sort=False)
        errors.columns = [f"{c}_error_95" for c in errors.columns]
        out = pd.concat([values, errors], axis=1)
        out = out[[c for s in values.columns for c in (s, f"{s}_error_95")]]
        return out.reset_index(drop=not self.group_by)

    def __repr__(self) -> str:
        return (
            f"<DpResult {self.raw['dataset']} v{self.raw['version']}: {len(self.frame)} values, "
            f"ε spent {self.raw['epsilon_spent']}{' (cached)' if self.cached else ''}, "
            f"remaining ε {self.raw['remaining']['epsilon']}, record {self.record_id}>"
        )

    def _repr_html_(self) -> str:
        return f"<p>{self!r}</p>" + self.frame.to_html(max_rows=60)  # type: ignore[no-any-return]


@dataclass
class DpPreview:
    """Cost and expected accuracy of a query, computed without data."""

    raw: dict[str, Any] = field(repr=False)

    allowed = property(lambda self: bool(self.raw["allowed"]))
    cached = property(lambda self: bool(self.raw["cached"]))
    cost = property(lambda self: _floats(self.raw["cost"]))
    remaining = property(lambda self: _floats(self.raw["remaining"]))

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.raw["expected"])

    @property
    def mechanisms(self) -> pd.DataFrame:
        return _mechanisms(self.raw["aggregations"])

    def __repr__(self) -> str:
        state = "allowed" if self.allowed else f"refused: {self.raw['reason']}"
        return f"<DpPreview cost ε={self.raw['cost']['epsilon']} δ={self.raw['cost']['delta']}, {state}>"


@dataclass
class DpModel:
    """A DP-trained model (its coefficients are DP releases); also usable by ``client.he``."""

    raw: dict[str, Any] = field(repr=False)

    id = property(lambda self: self.raw["id"])
    kind = property(lambda self: self.raw["kind"])
    features = property(lambda self: list(self.raw["features"]))
    target = property(lambda self: self.raw["target"])
    classes = property(lambda self: self.raw["classes"])
    record_id = property(lambda self: self.raw["record_id"])
    bounds = property(lambda self: self.raw["params"].get("bounds", {}))
    epsilon_spent = property(lambda self: float(self.raw.get("epsilon_spent") or 0))

    @property
    def coef(self) -> np.ndarray:
        return np.asarray(self.raw["coef"], dtype=float)

    @property
    def intercept(self) -> float:
        return float(self.raw["intercept"])

    @property
    def remaining(self) -> dict[str, float]:
        return _floats(self.raw.get("remaining") or {})

    def decision_function(self, df: pd.DataFrame) -> np.ndarray:
        """``coef · clamp(x, bounds) + intercept`` on raw feature values (linear and logistic)."""
        x = np.column_stack([np.clip(df[f].to_numpy(float), *self.bounds[f]) for f in self.features])
        scores: np.ndarray = x @ self.coef + self.intercept
        return scores

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Probability of ``classes[1]`` (logistic models)."""
        p: np.ndarray = 1 / (1 + np.exp(-self.decision_function(df)))
        return p

    def __repr__(self) -> str:
        return f"<DpModel {self.id} {self.kind} {self.target} ~ {' + '.join(self.features)}>"


@dataclass
class DpTable:
    """A released DP statistics table: one value per cell of the dims' domains (row-major)."""

    raw: dict[str, Any] = field(repr=False)

    id = property(lambda self: self.raw["id"])
    name = property(lambda self: self.raw["name"])
    record_id = property(lambda self: self.raw["record_id"])
    values = property(lambda self: list(self.raw["values"]))

    @property
    def frame(self) -> pd.DataFrame:
        dims = self.raw["dims"]
        index = pd.MultiIndex.from_product([d["domain"] for d in dims], names=[d["column"] for d in dims])
        f = pd.DataFrame({"value": self.raw["values"]}, index=index)
        if self.raw.get("errors_95"):
            f["error_95"] = self.raw["errors_95"]
        return f.reset_index()

    def __repr__(self) -> str:
        dims = [d["column"] for d in self.raw["dims"]]
        return f"<DpTable {self.id} {self.name}: {self.raw['statistic']} by {dims}>"


class DpAPI:
    """Differential privacy channel of the project set with ``client.use()`` (or ``project=...``)."""

    def __init__(self, client: Client) -> None:
        self._c = client
        self._t = client.transport

    def _path(self, project: str | None, tail: str) -> str:
        return f"/api/v1/projects/{self._c.require_project(project)}/dp/{tail}"

    @staticmethod
    def _spec(
        dataset: str,
        select: Sequence[str | Mapping[str, Any]] | str,
        where: Any,
        group_by: Sequence[str] | str | None,
        cohort: str | None,
        epsilon: float | str | None,
        delta: float | str,
        noise: str | None,
    ) -> dict[str, Any]:
        items = [select] if isinstance(select, str | Mapping) else list(select)
        spec: dict[str, Any] = {
            "dataset": dataset,
            "select": [_select(s) for s in items],
            "where": _where(where),
            "group_by": [group_by] if isinstance(group_by, str) else list(group_by or []),
            "cohort": cohort,
            "delta": _num(delta),
            "noise": noise,
        }
        if epsilon is not None:
            spec["epsilon"] = _num(epsilon)
        return spec

    def query(
        self,
        dataset: str,
        select: Sequence[str | Mapping[str, Any]] | str,
        where: Any = None,
        group_by: Sequence[str] | str | None = None,
        cohort: str | None = None,
        epsilon: float | str | None = None,
        delta: float | str = 0,
        noise: str | None = None,
        project: str | None = None,
    ) -> DpResult:
        """Run a DP query (charged; an identical repeat replays the first answer for free)."""
        spec = self._spec(dataset, select, where, group_by, cohort, epsilon, delta, noise)
        return DpResult.from_json(self._t.post(self._path(project, "query"), json=spec))

    def preview(
        self,
        dataset: str,
        select: Sequence[str | Mapping[str, Any]] | str,
        where: Any = None,
        group_by: Sequence[str] | str | None = None,
        cohort: str | None = None,
        epsilon: float | str | None = None,
        delta: float | str = 0,
        noise: str | None = None,
        project: str | None = None,
        assumed_count: int | None = None,
    ) -> DpPreview:
        """Cost and 95% error bounds of a query, without running it or spending anything."""
        spec = self._spec(dataset, select, where, group_by, cohort, epsilon, delta, noise)
        params = {"assumed_count": assumed_count} if assumed_count else None
        return DpPreview(self._t.post(self._path(project, "preview"), json=spec, params=params))

    def train(
        self,
        dataset: str,
        model: str = "logistic",
        features: Sequence[str] = (),
        target: str = "",
        epsilon: float | str = 1.0,
        where: Any = None,
        cohort: str | None = None,
        bounds: Mapping[str, Sequence[float]] | None = None,
        name: str | None = None,
        project: str | None = None,
    ) -> DpModel:
        """Train a DP model (``logistic``, ``linear`` or ``gaussian_nb``); it stays usable by HE."""
        spec = {
            "dataset": dataset,
            "model": model,
            "features": list(features),
            "target": target,
            "epsilon": _num(epsilon),
            "where": _where(where),
            "cohort": cohort,
            "bounds": {k: [_num(v) for v in b] for k, b in (bounds or {}).items()},
            "name": name,
        }
        return DpModel(self._t.post(self._path(project, "train"), json=spec))

    def release_table(
        self,
        dataset: str,
        statistic: str | Mapping[str, Any],
        dims: Sequence[str] | str,
        epsilon: float | str,
        delta: float | str = 0,
        where: Any = None,
        cohort: str | None = None,
        name: str | None = None,
        noise: str | None = None,
        project: str | None = None,
    ) -> DpTable:
        """Release one statistic over the full domains of ``dims`` as a table (usable by HE lookups)."""
        spec = {
            "dataset": dataset,
            "statistic": _select(statistic),
            "dims": [dims] if isinstance(dims, str) else list(dims),
            "epsilon": _num(epsilon),
            "delta": _num(delta),
            "where": _where(where),
            "cohort": cohort,
            "name": name,
            "noise": noise,
        }
        return DpTable(self._t.post(self._path(project, "tables"), json=spec))

    def models(self, project: str | None = None) -> list[DpModel]:
        """The project's DP models (and bureau-published ones, without parameters)."""
        return [DpModel(m) for m in self._t.get(self._path(project, "models"))]

    def tables(self, project: str | None = None) -> list[DpTable]:
        """The project's DP statistics tables."""
        return [DpTable(t) for t in self._t.get(self._path(project, "tables"))]
