"""Validate a CSV or Parquet file against a policy's schema and convert it to Parquet, streaming.

The first invalid value raises :class:`~lab.errors.InvalidDataset` naming the row (1-based
data row, the header not counted) and the column. Rows are read in record batches so
that memory stays bounded whatever the file size.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lab.catalog.policy import Column, ColumnRole, Normalization, Policy
from lab.errors import InvalidDataset

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
}
BATCH_ROWS = 200_000


def arrow_schema(policy: Policy) -> pa.Schema:
    """The Parquet schema a dataset version is stored with."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in policy.columns])


def _validators() -> dict[Normalization, Callable[[str], bool]]:
    from lab import identifiers as ids

    return {
        Normalization.uscc: ids.is_valid_uscc,
        Normalization.resident_id: ids.is_valid_resident_id,
        Normalization.phone: ids.is_valid_phone,
        Normalization.generic: lambda s: bool(s.strip()),
    }


def _batches(path: Path, policy: Policy) -> Iterator[pa.RecordBatch]:
    names = [c.name for c in policy.columns]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=16 << 20),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=False
                ),
            )
        except pa.ArrowInvalid as exc:
            raise InvalidDataset(f"{path.name}: not a readable CSV file: {exc}") from None
        header = reader.schema.names
        _check_columns(header, names, path)
        yield from reader
    elif suffix == ".parquet":
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidDataset(f"{path.name}: not a readable Parquet file: {exc}") from None
        _check_columns(pf.schema_arrow.names, names, path)
        yield from pf.iter_batches(batch_size=BATCH_ROWS, columns=names)
    else:
        raise InvalidDataset(f"{path.name}: unsupported format {suffix!r}; use .csv or .parquet")


def _check_columns(found: list[str], declared: list[str], path: Path) -> None:
    missing = [n for n in declared if n not in found]
    extra = [n for n in found if n not in declared]
    if missing:
        raise InvalidDataset(
            f"{path.name}: column {missing[0]!r} declared by the policy is missing", column=missing[0]
        )
    if extra:
        raise InvalidDataset(
            f"{path.name}: column {extra[0]!r} is not declared by the policy (undeclared data is refused)",
            column=extra[0],
        )


def _fail(row: int, col: Column, value: object, reason: str) -> InvalidDataset:
    return InvalidDataset(
        f"row {row}, column {col.name!r}: {reason} (value {value!r})", row=row, column=col.name
    )


def _cast(arr: pa.Array, col: Column, offset: int) -> pa.Array:
    target = ARROW_TYPES[col.type]
    if arr.type == target:
        return arr
    try:
        if col.type == "date" and pa.types.is_string(arr.type):
            return pc.cast(pc.strptime(arr, format="%Y-%m-%d", unit="s", error_is_null=False), pa.date32())
        return pc.cast(arr, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for i, v in enumerate(arr.to_pylist()):  # slow path, only to name the culprit
        try:
            if v is None:
                continue
            if col.type == "integer":
                if isinstance(v, float) and not v.is_integer():
                    raise ValueError
                int(v)
            elif col.type == "float":
                float(v)
            elif col.type == "date" and isinstance(v, str):
                dt.date.fromisoformat(v)
        except (ValueError, TypeError):
            raise _fail(offset + i + 1, col, v, f"not a valid {col.type}") from None
    raise _fail(offset + 1, col, None, f"cannot convert {arr.type} to {col.type}")


def _first_true(mask: pa.Array) -> int | None:
    idx = pc.index(mask, True).as_py()
    return None if idx is None or idx < 0 else int(idx)


def _check(
    arr: pa.Array, col: Column, offset: int, validators: dict[Normalization, Callable[[str], bool]]
) -> None:
    if arr.null_count and not col.nullable:
        i = _first_true(arr.is_null())
        raise _fail(offset + (i or 0) + 1, col, None, "empty value in a required column")
    if col.type == "string" and arr.null_count < len(arr) and not col.nullable:
        i = _first_true(pc.equal(pc.utf8_trim_whitespace(arr), ""))
        if i is not None:
            raise _fail(offset + i + 1, col, arr[i].as_py(), "empty value in a required column")
    if col.domain is not None:
        bad = pc.invert(
            pc.is_in(
                arr, value_set=pa.array(col.domain, type=arr.type if col.type == "string" else pa.string())
            )
        )
        i = _first_true(pc.and_kleene(bad, arr.is_valid()))
        if i is not None:
            raise _fail(offset + i + 1, col, arr[i].as_py(), f"not in the declared domain {list(col.domain)}")
    if col.bounds is not None:
        lo, hi = (
            float(b) if col.type == "float" else int(b) if b == b.to_integral_value() else float(b)
            for b in col.bounds
        )
        out = pc.or_(pc.less(arr, lo), pc.greater(arr, hi))
        if col.type == "float":
            out = pc.or_(out, pc.is_nan(arr))
        i = _first_true(pc.fill_null(out, False))
        if i is not None:
            raise _fail(
                offset + i + 1,
                col,
                arr[i].as_py(),
                f"outside the declared bounds [{col.bounds[0]}, {col.bounds[1]}]",
            )
    if col.role is ColumnRole.identifier and col.normalization is not None:
        ok = validators[col.normalization]
        for i, v in enumerate(arr.to_pylist()):
            if v is not None and not ok(v):
                raise _fail(offset + i + 1, col, v, f"not a valid {col.normalization.value} identifier")


def to_parquet(src: Path, policy: Policy, dest: Path) -> int:
    """Validate ``src`` against ``policy`` and write it to ``dest`` as Parquet; returns the row count."""
    schema = arrow_schema(policy)
    validators = _validators()
    key = policy.entity_key
    rows = 0
    writer = pq.ParquetWriter(dest, schema, compression="zstd", write_statistics=True)
    try:
        for batch in _batches(src, policy):
            arrays = []
            for col in policy.columns:
                arr = _cast(batch.column(col.name), col, rows)
                _check(arr, col, rows, validators)
                arrays.append(arr)
            table = pa.Table.from_arrays(arrays, schema=schema)
            if table.column(key).null_count:
                raise InvalidDataset(f"column {key!r}: the entity key cannot be empty")
            writer.write_table(table, row_group_size=BATCH_ROWS)
            rows += table.num_rows
    finally:
        writer.close()
    if rows == 0:
        raise InvalidDataset(f"{src.name}: no data rows")
    return rows


def count_entities(parquet: Path, entity_key: str) -> int:
    """Distinct values of ``entity_key`` in a written version (DuckDB: spills past its memory limit)."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="lab-count-") as tmp:
        con = duckdb.connect(
            ":memory:", config={"threads": 1, "memory_limit": "256MB", "temp_directory": tmp}
        )
        try:
            row = con.execute(
                # the key is a policy column name (^[a-z][a-z0-9_]*$), never caller text
                f'SELECT count(DISTINCT "{entity_key}") FROM read_parquet(?)',  # noqa: S608
                [str(parquet)],
            ).fetchone()
        finally:
            con.close()
    return int(row[0]) if row else 0


def decimal_bounds(col: Column) -> tuple[Decimal, Decimal]:
    """A numeric column's declared bounds (KeyError-free accessor for channels)."""
    if col.bounds is None:
        raise ValueError(f"column {col.name} has no bounds")
    return col.bounds
