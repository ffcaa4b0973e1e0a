"""Exact, bounded aggregates computed by DuckDB over a dataset version's Parquet file.

Invariants:

* **Contribution bounding.** Before any aggregate, every entity keeps at most ``k`` rows
  (``max_rows_per_entity``). Which rows is deterministic-random and depends only on the entity's
  own rows: rows are ranked within the entity by ``hash(secret salt, row contents)`` (ties between
  identical rows are harmless). The bounded file is prepared once per (version, ``k``) and cached
  next to the verified Parquet; when no entity has more than ``k`` rows the original file is used.
* **Clamping.** Numeric values are clamped to the plan's bounds inside the SQL.
* **Keys.** Group keys come from the declared domains (``QueryPlan.cell_keys``); data values outside
  a domain are dropped, never reported.
* **SQL.** Identifiers come from the validated policy (``^[a-z][a-z0-9_]*$``), numbers from the plan,
  user values only as bound parameters; file paths are quoted.
* Nothing here is released: results go to :mod:`lab.dp.release`, which adds the noise.

Clamping, as the SQL reads it:

>>> _clamp("age", 0.0, 120.0)
'LEAST(GREATEST(CAST("age" AS DOUBLE), 0.0), 120.0)'
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from lab.dp.plan import PlannedAgg, QueryPlan, TrainPlan, Where
from lab.errors import InvalidQuery
from lab.mechanisms import fixed_point_quantum, quantile_grid

_ENGINES: dict[tuple[str, str], DuckEngine] = {}
PREPARE_MEMORY = "256MB"  # DuckDB memory limit of the one-off contribution-bounding preparation
_ENGINES_LOCK = threading.Lock()


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _clamp(column: str, low: float, high: float) -> str:
    return f'LEAST(GREATEST(CAST("{column}" AS DOUBLE), {low!r}), {high!r})'


@dataclass
class Exact:
    """Exact (never released) aggregates, one array entry per cell of the plan."""

    scalars: dict[str, np.ndarray] = field(default_factory=dict)  # "i:component" -> (cells,)
    histograms: dict[int, np.ndarray] = field(default_factory=dict)  # agg index -> (cells, bins)
    # agg index -> (#{v < c_j}, #{v > c_j}), each (cells, grid)
    ranks: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _units(value: str, q: float) -> str:
    """SQL for ``value`` rounded to an exact integer number of fixed-point quanta ``q``."""
    return f"CAST(round(({value}) / {q!r}) AS BIGINT)"


def _components(a: PlannedAgg) -> dict[str, str]:
    """SQL for the exact components of one aggregation (clamped, centered where noted).

    Sums are exact integer sums of fixed-point units (see :class:`lab.mechanisms.FixedPointSum`).
    """
    if a.agg == "count":
        return {"count": "count(*)"}
    col = a.spec.column or ""
    value = _clamp(col, a.low, a.high)
    q = {c: fixed_point_quantum(a.magnitude(c)) for c in ("sum", "centered_sum", "centered_sum_of_squares")}
    if a.agg == "sum":
        return {"sum": f"coalesce(sum({_units(value, q['sum'])}), 0)"}
    centered = f"({value} - {a.mid!r})"
    out = {
        "count": f'count("{col}")',
        "centered_sum": f"coalesce(sum({_units(centered, q['centered_sum'])}), 0)",
    }
    if a.agg in ("variance", "stddev"):
        square = _units(f"{centered} * {centered}", q["centered_sum_of_squares"])
        out["centered_sum_of_squares"] = f"coalesce(sum({square}), 0)"
    return out


class DuckEngine:
    """An in-process DuckDB database shared by the lab's DP requests (one cursor per request)."""

    def __init__(self, cache_dir: Path, salt: str, memory_limit: str = "512MB", threads: int | None = None):
        self.dir = cache_dir / "dp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.salt = salt
        config: dict[str, Any] = {
            "memory_limit": memory_limit,
            "temp_directory": str(self.dir / "spill"),
            "enable_object_cache": True,
        }
        if threads:
            config["threads"] = threads
        self.config = config
        self.con = duckdb.connect(":memory:", config=config)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @classmethod
    def shared(cls, cache_dir: Path, salt: str) -> DuckEngine:
        """One engine per cache directory and salt, for the life of the process."""
        key = (str(cache_dir.resolve()), salt)
        with _ENGINES_LOCK:
            if key not in _ENGINES:
                _ENGINES[key] = cls(cache_dir, salt)
            return _ENGINES[key]

    def _lock(self, tag: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(tag, threading.Lock())

    # -- contribution bounding ---------------------------------------------------------------
    def bounded(self, parquet: Path, sha256: str, entity_key: str, columns: list[str], k: int) -> Path:
        """A Parquet file with at most ``k`` rows per entity: ``parquet`` itself, or a cached copy."""
        tag = f"{sha256}-k{k}-{self.salt[:8]}"
        marker, dest = self.dir / f"{tag}.json", self.dir / f"{tag}.parquet"

        def cached() -> Path | None:
            if marker.exists():
                mode = json.loads(marker.read_text())["mode"]
                if mode == "original":
                    return parquet
                if dest.exists():
                    return dest
            return None

        hit = cached()
        if hit is not None:
            return hit
        with self._lock(tag):
            hit = cached()
            if hit is not None:
                return hit
            src, key = f"read_parquet({_quote(parquet)})", f'"{entity_key}"'
            # a short-lived database of its own: the per-entity hash table may spill, never balloon
            cur = duckdb.connect(":memory:", config={**self.config, "memory_limit": PREPARE_MEMORY})
            try:
                (most,) = cur.execute(
                    f"SELECT max(c) FROM (SELECT count(*) AS c FROM {src} GROUP BY {key})"  # noqa: S608
                ).fetchone()  # type: ignore[misc]
                mode = "original" if (most or 0) <= k else "bounded"
                if mode == "bounded":
                    cols = ", ".join(f'"{c}"' for c in columns)
                    fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".part-", suffix=".parquet")
                    os.close(fd)
                    cur.execute(
                        f"COPY (SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {key} "  # noqa: S608
                        f"ORDER BY hash(?, {cols}), {cols}) AS _rank FROM {src}) WHERE _rank <= {int(k)}) "
                        f"TO {_quote(Path(tmp))} (FORMAT parquet, COMPRESSION zstd)",
                        [self.salt],
                    )
                    os.replace(tmp, dest)
            finally:
                cur.close()
            part = marker.with_suffix(".part")
            part.write_text(json.dumps({"mode": mode, "k": k}))
            os.replace(part, marker)
        return parquet if mode == "original" else dest

    # -- aggregates -----------------------------------------------------------------------
    def _from(
        self, source: Path, where: tuple[Where, ...], entity_key: str, cohort: bool
    ) -> tuple[str, list[Any]]:
        clauses = [w.sql for w in where]
        params: list[Any] = [p for w in where for p in w.params]
        if cohort:
            clauses.append(f'"{entity_key}" IN (SELECT key FROM cohort_keys)')  # noqa: S608
        sql = f"FROM read_parquet({_quote(source)})"
        return (sql + (" WHERE " + " AND ".join(clauses) if clauses else "")), params

    def aggregate(self, plan: QueryPlan, source: Path, cohort: pa.Array | None = None) -> Exact:
        """Exact clamped aggregates of ``plan`` over the bounded ``source``, per cell."""
        cur = self.con.cursor()
        try:
            if cohort is not None:
                cur.register("cohort_keys", pa.table({"key": cohort}))
            base, params = self._from(source, plan.where, plan.entity_key, cohort is not None)
            index = {key: i for i, key in enumerate(plan.cell_keys())}
            dims = [f'CAST("{d.column}" AS VARCHAR)' for d in plan.dims]
            nd = len(dims)
            out = Exact()

            def run(select: list[str], extra: list[str]) -> list[tuple[Any, ...]]:
                keys = dims + extra
                group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
                try:
                    return cur.execute(f"SELECT {', '.join(keys + select)} {base}{group}", params).fetchall()
                except (duckdb.ConversionException, duckdb.OutOfRangeException) as exc:
                    # bounds or levels the engine cannot represent (equal as floats, out of range)
                    raise InvalidQuery(
                        f"the query's numbers are out of the engine's range ({type(exc).__name__})"
                    ) from None

            exprs: dict[str, str] = {}
            wanted: dict[str, str] = {}
            for i, a in enumerate(plan.aggs):
                if a.agg in ("histogram", "quantile"):
                    continue
                for comp, sql in _components(a).items():
                    alias = exprs.setdefault(sql, f"c{len(exprs)}")
                    wanted[f"{i}:{comp}"] = alias
            if exprs:
                cols = list(exprs.values())
                # exact Python integers (counts, fixed-point sums): never rounded through a float
                arrays = {alias: np.zeros(plan.cells, dtype=object) for alias in cols}
                for row in run([f"{sql} AS {alias}" for sql, alias in exprs.items()], []):
                    cell = index.get(tuple(row[:nd]))
                    if cell is not None:
                        for alias, v in zip(cols, row[nd:], strict=True):
                            arrays[alias][cell] = v or 0
                out.scalars = {name: arrays[alias] for name, alias in wanted.items()}
            for i, a in enumerate(plan.aggs):
                if a.agg == "histogram":
                    out.histograms[i] = self._histogram(run, a, index, nd, plan.cells)
                elif a.agg == "quantile":
                    out.ranks[i] = self._ranks(run, a, index, nd, plan.cells)
            return out
        finally:
            cur.close()

    @staticmethod
    def _histogram(
        run: Any, a: PlannedAgg, index: dict[tuple[str, ...], int], nd: int, cells: int
    ) -> np.ndarray:
        bins = {b: j for j, b in enumerate(a.bins)}
        counts = np.zeros((cells, len(a.bins)))
        for row in run(["count(*)"], [f'CAST("{a.spec.column}" AS VARCHAR)']):
            cell, j = index.get(tuple(row[:nd])), bins.get(row[nd])
            if cell is not None and j is not None:
                counts[cell, j] = row[nd + 1]
        return counts

    @staticmethod
    def _ranks(
        run: Any, a: PlannedAgg, index: dict[tuple[str, ...], int], nd: int, cells: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per cell and grid point ``c_j``: ``#{v < c_j}`` and ``#{v > c_j}`` (ties on neither side).

        With ``j = ⌈(v - c_0) / step⌉`` clamped to ``[0, m]``, a value goes to slot ``2j + 1`` when it
        equals ``c_j`` and to slot ``2j`` otherwise (below ``c_j``, or above the last point if ``j = m``).
        """
        grid = quantile_grid(a.low, a.high, a.integer)
        m = len(grid)
        slots = np.zeros((cells, 2 * m + 1))
        value = _clamp(a.spec.column or "", a.low, a.high)
        start = float(grid[0])
        step = float(grid[1] - grid[0]) if m > 1 else 1.0
        j = f"LEAST(GREATEST(CAST(ceil(({value} - {start!r}) / {step!r}) AS BIGINT), 0), {m})"
        at = f"(CASE WHEN {j} = {m - 1} THEN {float(grid[-1])!r} ELSE {start!r} + {j} * {step!r} END)"
        slot = f"(2 * {j} + CASE WHEN {j} < {m} AND {value} = {at} THEN 1 ELSE 0 END)"
        for row in run(["count(*)"], [slot]):
            cell = index.get(tuple(row[:nd]))
            if cell is not None and row[nd] is not None:
                slots[cell, int(row[nd])] += row[nd + 1]
        total = slots.sum(axis=1, keepdims=True)
        below = np.cumsum(slots, axis=1)[:, 0 : 2 * m : 2]  # slots 0..2j
        above = total - below - slots[:, 1::2]
        return below, above

    # -- training data ----------------------------------------------------------------------
    def training_rows(
        self, plan: TrainPlan, source: Path, cohort: pa.Array | None, max_rows: int, row_count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feature matrix and target of the selected rows (one per entity), clamped to the bounds.

        Datasets above ``max_rows`` rows are Bernoulli-sampled by a salted hash of the entity key
        with probability ``max_rows / row_count`` (``row_count``: the noisy size the catalog shows —
        distinct entities, the unit sampled).
        """
        cur = self.con.cursor()
        try:
            if cohort is not None:
                cur.register("cohort_keys", pa.table({"key": cohort}))
            base, params = self._from(source, plan.where, plan.entity_key, cohort is not None)
            feats = [_clamp(f, *plan.bounds[f]) for f in plan.spec.features]
            target = plan.spec.target
            if plan.spec.model == "linear":
                y = _clamp(target, *plan.bounds[target])
            elif plan.target.role.value == "categorical":
                y = f'CAST("{target}" AS VARCHAR)'
            else:
                y = f'CAST("{target}" AS BIGINT)'
            nonnull = " AND ".join(f'"{c}" IS NOT NULL' for c in (*plan.spec.features, target))
            sample, sparams = "", []
            if row_count > max_rows:
                sample = (
                    f' AND (hash(?, "{plan.entity_key}") % 1000000) < {int(1_000_000 * max_rows / row_count)}'
                )
                sparams = [self.salt]
            glue = " AND " if " WHERE " in base else " WHERE "
            names = [f"f{i}" for i in range(len(feats))]
            select = ", ".join(f"{e} AS {n}" for e, n in zip([*feats, y], [*names, "y"], strict=True))
            cols = cur.execute(
                f"SELECT {select} {base}{glue}{nonnull}{sample}", params + sparams
            ).fetchnumpy()
        finally:
            cur.close()
        n = len(feats)
        x = (
            np.column_stack([np.asarray(cols[name], dtype=np.float64) for name in names])
            if n
            else np.zeros((0, 0))
        )
        yv = np.asarray(cols["y"])
        return x.astype(np.float64), yv
