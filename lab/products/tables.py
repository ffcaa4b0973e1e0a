"""Reading tabular artifacts for the disclosure checks, bounded, and the check that says what they missed.

:func:`load_tables` reads at most :data:`MAX_COLUMNS` columns and :data:`MAX_SCAN_ROWS` rows of
each table of a CSV, Parquet or XLSX artifact. A table beyond either limit, or an XLSX
file that expands past :data:`MAX_XLSX_BYTES`, is therefore not vouched for: :func:`scan_limits`
adds a failing ``scan_limits`` check, so the submission is flagged and the bureau reviews the file
by hand. Without it an identifier hidden in column 501 or row 1,000,001 would pass unseen.

The pre-scans themselves touch only bytes: a CSV of a few megabytes with a million columns on one
line takes pandas half a minute and gigabytes to parse, so it is measured first and never parsed.

>>> load_tables.__name__
'load_tables'
"""

from __future__ import annotations

import zipfile
from operator import methodcaller
from pathlib import Path
from typing import Any

import pandas as pd

from lab.products.errors import InvalidArtifact

MAX_SCAN_ROWS = 1_000_000  # rows of a table read by the disclosure checks
MAX_COLUMNS = 500
PARTIAL = "partial"  # DataFrame.attrs key: why the checks saw only part of this table
MAX_XLSX_BYTES = 256 * 1024 * 1024  # uncompressed size of an XLSX the checks will open
_commas = methodcaller("count", b",")


def csv_shape(path: Path, stop_at: int) -> tuple[int, int]:
    """(lines, most commas on one line) of a CSV, in one streaming pass over its bytes.

    Stops early once a line has more than ``stop_at`` commas. Quoted commas and newlines count too,
    so the figures are upper bounds (a table is never judged smaller than it is).
    """
    lines, widest, carry = 0, 0, b""
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            parts = (carry + block).split(b"\n")
            carry = parts.pop()
            lines += len(parts)
            widest = max(widest, carry.count(b","), *map(_commas, parts))
            if widest > stop_at:
                break
    return lines + (1 if carry else 0), widest


def xlsx_expanded_bytes(path: Path) -> int:
    """The uncompressed size of an XLSX (zip) file's members, read from its directory."""
    with zipfile.ZipFile(path) as z:
        return sum(i.file_size for i in z.infolist())


def partial(frame: pd.DataFrame, reason: str) -> pd.DataFrame:
    """Mark ``frame`` as only part of its table (see :func:`scan_limits`)."""
    frame.attrs[PARTIAL] = reason
    return frame


def scan_limits(tables: list[tuple[str, pd.DataFrame]]) -> dict[str, Any] | None:
    """A failing ``scan_limits`` check if any table was read only in part, else None."""
    from lab.products.checks import check

    reasons = [f"{sheet or 'table'}: {f.attrs[PARTIAL]}" for sheet, f in tables if f.attrs.get(PARTIAL)]
    if not reasons:
        return None
    return check(
        "scan_limits",
        False,
        "the disclosure checks could not read the whole file (" + "; ".join(reasons) + "); review it by hand",
        tables=reasons,
    )


def load_tables(path: Path, kind: str, max_rows: int = MAX_SCAN_ROWS) -> list[tuple[str, pd.DataFrame]]:
    """Read a tabular artifact as ``(sheet, frame)`` pairs of strings (bounded rows and columns).

    A table beyond the bounds is returned marked :func:`partial` (a CSV too wide to parse safely,
    empty), so that :func:`scan_limits` flags it.
    """
    try:
        if kind == "csv":
            lines, commas = csv_shape(path, MAX_COLUMNS)
            if commas >= MAX_COLUMNS:
                return [("", partial(pd.DataFrame(), f"more than {MAX_COLUMNS} columns, not read"))]
            frame = None
            for enc in ("utf-8-sig", "gb18030"):
                try:
                    frame = pd.read_csv(path, dtype=str, nrows=max_rows, keep_default_na=False, encoding=enc)
                    break
                except UnicodeDecodeError:
                    continue
            if frame is None:
                raise InvalidArtifact("the CSV artifact is neither UTF-8 nor GB18030 text")
            if lines > max_rows + 1:
                partial(frame, f"more than {max_rows} rows, the first {max_rows} read")
            return [("", frame)]
        if kind == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names[:MAX_COLUMNS]
            cut = (
                [f"{len(pf.schema_arrow.names)} columns"] if len(pf.schema_arrow.names) > MAX_COLUMNS else []
            )
            cut += [f"{pf.metadata.num_rows} rows"] if pf.metadata.num_rows > max_rows else []
            parts, n = [], 0
            for batch in pf.iter_batches(batch_size=65_536, columns=names):
                parts.append(batch.to_pandas())
                n += batch.num_rows
                if n >= max_rows:
                    break
            frame = pd.concat(parts) if parts else pd.DataFrame(columns=names)
            frame = frame.head(max_rows).astype("string")
            return [("", partial(frame, " and ".join(cut) + ", not all read") if cut else frame)]
        if kind == "xlsx":
            return _load_xlsx(path, max_rows)
    except InvalidArtifact:
        raise
    except Exception as exc:  # any parser failure is the artifact's problem, reported to the caller
        raise InvalidArtifact(
            f"the {kind} artifact cannot be read: {exc.__class__.__name__}: {exc}"
        ) from None
    return []


def _load_xlsx(path: Path, max_rows: int) -> list[tuple[str, pd.DataFrame]]:
    import openpyxl

    expanded = xlsx_expanded_bytes(path)
    if expanded > MAX_XLSX_BYTES:
        return [("", partial(pd.DataFrame(), f"expands to {expanded} bytes, not read"))]
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        out = []
        for ws in book.worksheets:
            rows = ws.iter_rows(values_only=True, max_row=max_rows + 2, max_col=MAX_COLUMNS + 1)
            header = next(rows, None)
            if header is None:
                continue
            names = [str(h) if h is not None else f"column_{i + 1}" for i, h in enumerate(header)]
            data = [["" if v is None else str(v) for v in row] for row in rows]
            wide = any(len(r) > MAX_COLUMNS and r[MAX_COLUMNS] not in (None, "") for r in [header, *data])
            frame = pd.DataFrame(
                [r[:MAX_COLUMNS] for r in data[:max_rows]], columns=names[:MAX_COLUMNS], dtype=str
            )
            cut = ([f"more than {MAX_COLUMNS} columns"] if wide else []) + (
                [f"more than {max_rows} rows"] if len(data) > max_rows else []
            )
            out.append((ws.title, partial(frame, " and ".join(cut) + ", not all read") if cut else frame))
        return out
    finally:
        book.close()
