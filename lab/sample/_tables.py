"""Arrow plumbing for the sample generator: schemas from policies, fast string columns, file sinks.

Invariants:

* A generated table has exactly the policy's columns, in the policy's order, with Arrow types
  ``string``, ``int64``, ``float64`` or ``date32`` for policy types string, integer, float, date.
* Categorical values are taken from the policy's ``domain``; numeric values are clipped to its
  ``bounds`` (the generator never hard-codes either).
* Sinks write deterministic bytes: fixed compression, no timestamps, metadata made only of
  the dataset name, generator version, seed and scale. Files appear atomically (written to
  ``*.tmp`` and renamed on a clean close).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lab.catalog.policy import Column, Policy

Format = Literal["parquet", "csv"]
GENERATOR_VERSION = "lab.sample/1"
_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
}
_EPOCH = np.datetime64("1970-01-01", "D")


def arrow_schema(policy: Policy) -> pa.Schema:
    """The Arrow schema of a dataset, derived from its policy."""
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in policy.columns])


def domain(policy: Policy, column: str) -> tuple[str, ...]:
    """The declared domain of ``column``; an error if the policy declares none."""
    values = policy.column(column).domain
    if not values:
        raise ValueError(f"policy {policy.dataset}: column {column!r} has no domain to draw from")
    return values


def bounds(policy: Policy, column: str) -> tuple[float, float]:
    """The declared bounds of ``column`` as floats."""
    col: Column = policy.column(column)
    if col.bounds is None:
        raise ValueError(f"policy {policy.dataset}: column {column!r} has no bounds")
    return float(col.bounds[0]), float(col.bounds[1])


def require(policy: Policy, column: str, *values: str) -> None:
    """Fail clearly if the generator relies on domain values the policy no longer declares."""
    missing = [v for v in values if v not in domain(policy, column)]
    if missing:
        raise ValueError(
            f"policy {policy.dataset}: column {column!r} lacks {missing}; update lab/sample to the new domain"
        )


def weights_for(
    values: tuple[str, ...], table: Mapping[str, float], default: float
) -> npt.NDArray[np.float64]:
    """Weights aligned with a policy domain; values the table does not know get ``default``."""
    return np.array([table.get(v, default) for v in values], dtype=np.float64)


def positional(values: tuple[str, ...], weights: tuple[float, ...], column: str) -> npt.NDArray[np.float64]:
    """Weights for an ordinal domain listed lowest first; the lengths must agree."""
    if len(values) != len(weights):
        raise ValueError(f"column {column!r}: the generator expects {len(weights)} ordered levels")
    return np.array(weights, dtype=np.float64)


def digits(values: npt.ArrayLike, width: int) -> npt.NDArray[np.uint8]:
    """Zero-padded decimal ASCII digits of non-negative integers, one row per value."""
    v = np.asarray(values, dtype=np.int64).copy()
    out = np.empty((v.size, width), dtype=np.uint8)
    for k in range(width - 1, -1, -1):
        out[:, k] = 48 + v % 10
        v //= 10
    if (v != 0).any():
        raise ValueError(f"value does not fit in {width} digits")
    return out


def ascii_column(chars: npt.NDArray[np.uint8]) -> pa.StringArray:
    """A string array from a ``(rows, width)`` matrix of ASCII codes, without a Python loop."""
    rows, width = chars.shape
    offsets = np.arange(0, rows * width + 1, width, dtype=np.int32)
    data = np.ascontiguousarray(chars).tobytes()
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def prefixed_ids(prefix: str, values: npt.ArrayLike, width: int) -> pa.StringArray:
    """``prefix`` followed by zero-padded numbers, e.g. ``P00000042``."""
    d = digits(values, width)
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    return ascii_column(np.hstack([np.broadcast_to(head, (d.shape[0], head.size)), d]))


def from_domain(values: tuple[str, ...], index: npt.ArrayLike) -> pa.Array:
    """Strings of a domain picked by position."""
    return pa.array(values, pa.string()).take(pa.array(np.asarray(index, dtype=np.int64)))


def date_column(days: npt.NDArray[np.datetime64]) -> pa.Array:
    """A ``date32`` array from numpy ``datetime64[D]`` values."""
    return pa.array((days - _EPOCH).astype(np.int32), type=pa.date32())


def clip_round(
    x: npt.NDArray[np.float64], lo_hi: tuple[float, float], decimals: int
) -> npt.NDArray[np.float64]:
    """Round then clip into the policy bounds (clipping last keeps the bounds exact)."""
    return np.clip(np.round(x, decimals), lo_hi[0], lo_hi[1])


def clip_int(x: npt.NDArray[np.float64], lo_hi: tuple[float, float]) -> npt.NDArray[np.int64]:
    """Floor then clip into integer policy bounds."""
    return np.clip(np.floor(x), np.ceil(lo_hi[0]), np.floor(lo_hi[1])).astype(np.int64)


def make_table(schema: pa.Schema, columns: Mapping[str, object]) -> pa.Table:
    """A table in schema order; numpy columns are converted to the schema's types."""
    if set(columns) != set(schema.names):
        raise ValueError(f"columns {sorted(columns)} do not match schema {schema.names}")
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


class Sink:
    """Writes a dataset chunk by chunk to ``path`` (parquet or CSV), atomically on close."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: Format, metadata: Mapping[str, str]) -> None:
        self.path = path
        self.rows = 0
        self._tmp = path.with_name(path.name + ".tmp")
        self._schema = schema.with_metadata(dict(metadata))
        self._writer: pq.ParquetWriter | pacsv.CSVWriter
        if fmt == "parquet":
            self._writer = pq.ParquetWriter(
                self._tmp,
                self._schema,
                compression="zstd",
                compression_level=3,
                use_dictionary=True,
                write_statistics=True,
            )
        elif fmt == "csv":
            self._writer = pacsv.CSVWriter(self._tmp, self._schema)
        else:
            raise ValueError(f"unknown format {fmt!r}: parquet or csv")

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.replace_schema_metadata(self._schema.metadata))
            self.rows += table.num_rows

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writer.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
