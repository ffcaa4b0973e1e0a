"""Reading artifacts for the disclosure checks, bounded, and the check that says what they missed.

:func:`load_tables` reads at most :data:`MAX_COLUMNS` columns and :data:`MAX_SCAN_ROWS` rows of
each table of a CSV (any of ``, ; TAB |`` as delimiter, sniffed), Parquet (struct columns flattened,
list and map cells as JSON text), XLSX, JSON (records flattened to columns, every other value
listed) or plain-text artifact, and of every such member of a ZIP archive. A table beyond either
limit, an XLSX or ZIP that expands past its byte limit, a JSON file too large to parse, or a ZIP
member of a kind the checks cannot read is therefore not vouched for: :func:`scan_limits` adds a
failing ``scan_limits`` check, so the submission is flagged and the bureau reviews the file by hand.
Without it an identifier hidden in column 501 or row 1,000,001 would pass unseen.

The pre-scans themselves touch only bytes: a CSV of a few megabytes with a million columns on one
line takes pandas half a minute and gigabytes to parse, so it is measured first and never parsed.

>>> sniff_delimiter(b"a;b;c\\n1;2;3\\n")
';'
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from lab.products.errors import InvalidArtifact

MAX_SCAN_ROWS = 1_000_000  # rows of a table read by the disclosure checks
MAX_COLUMNS = 500
PARTIAL = "partial"  # DataFrame.attrs key: why the checks saw only part of this table
MAX_XLSX_BYTES = 256 * 1024 * 1024  # uncompressed size of an XLSX the checks will open
MAX_JSON_BYTES = 64 * 1024 * 1024  # a JSON artifact (or member) parsed in memory
MAX_ZIP_BYTES = 512 * 1024 * 1024  # uncompressed size of a ZIP's members the checks will read
MAX_ZIP_MEMBERS = 1_000
DELIMITERS = ",;\t|"
KINDS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".parquet": "parquet",
    ".xlsx": "xlsx",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".zip": "zip",
}


def sniff_delimiter(head: bytes) -> str:
    """The delimiter of a delimited text file from its first bytes: one of :data:`DELIMITERS`."""
    text = head.decode("utf-8", errors="ignore")
    try:
        return csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = text.split("\n", 1)[0]
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def csv_shape(path: Path, stop_at: int, delimiter: str = ",") -> tuple[int, int]:
    """(lines, most delimiters on one line) of a CSV, in one streaming pass over its bytes.

    Stops early once a line has more than ``stop_at`` delimiters. Quoted delimiters and newlines
    count too, so the figures are upper bounds (a table is never judged smaller than it is).
    """
    sep = delimiter.encode()
    lines, widest, carry = 0, 0, b""
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            parts = (carry + block).split(b"\n")
            carry = parts.pop()
            lines += len(parts)
            widest = max(widest, carry.count(sep), *(p.count(sep) for p in parts))
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


def coverage(tables: list[tuple[str, pd.DataFrame]], kind: str) -> dict[str, Any]:
    """What the checks read (tables, rows, columns, cells) and what they did not, for the reviewer."""
    from lab.products.checks import check

    scanned: list[dict[str, Any]] = [
        {"table": sheet or "table", "rows": len(f), "columns": len(f.columns)}
        for sheet, f in tables
        if not f.attrs.get(PARTIAL) or len(f.columns)
    ]
    missed = [f"{sheet or 'table'}: {f.attrs[PARTIAL]}" for sheet, f in tables if f.attrs.get(PARTIAL)]
    cells = sum(int(t["rows"]) * int(t["columns"]) for t in scanned)
    detail = f"{kind}: {len(scanned)} table(s), {cells} cell(s) read in full"
    if missed:
        detail += "; not read: " + "; ".join(missed)
    return check("coverage", None if missed else True, detail, kind=kind, scanned=scanned, not_scanned=missed)


def load_tables(path: Path, kind: str, max_rows: int = MAX_SCAN_ROWS) -> list[tuple[str, pd.DataFrame]]:
    """Read an artifact as ``(sheet, frame)`` pairs of strings (bounded rows and columns).

    A table beyond the bounds is returned marked :func:`partial` (a CSV too wide to parse safely,
    empty), so that :func:`scan_limits` flags it.
    """
    try:
        if kind == "zip":
            return _load_zip(path, max_rows)
        return _load(path, kind, max_rows)
    except InvalidArtifact:
        raise
    except Exception as exc:  # any parser failure is the artifact's problem, reported to the caller
        raise InvalidArtifact(
            f"the {kind} artifact cannot be read: {exc.__class__.__name__}: {str(exc)[:200]}"
        ) from None


def _load(path: Path, kind: str, max_rows: int) -> list[tuple[str, pd.DataFrame]]:
    if kind == "csv":
        return _load_csv(path, max_rows)
    if kind == "text":
        return [("", _lines_frame(_decode(path.read_bytes()).splitlines(), max_rows))]
    if kind == "parquet":
        return [("", _load_parquet(path, max_rows))]
    if kind == "xlsx":
        return _load_xlsx(path, max_rows)
    if kind in ("json", "jsonl"):
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            return [("", partial(pd.DataFrame(), f"{size} bytes of JSON, not parsed"))]
        text = _decode(path.read_bytes())
        doc = [json.loads(x) for x in text.splitlines() if x.strip()] if kind == "jsonl" else json.loads(text)
        return json_tables(doc, max_rows)
    return []


def _decode(data: bytes) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise InvalidArtifact("the artifact is neither UTF-8 nor GB18030 text")


def _lines_frame(lines: list[str], max_rows: int) -> pd.DataFrame:
    frame = pd.DataFrame({"line": lines[:max_rows]}, dtype=str)
    return partial(frame, f"more than {max_rows} lines") if len(lines) > max_rows else frame


def _load_csv(path: Path, max_rows: int) -> list[tuple[str, pd.DataFrame]]:
    with path.open("rb") as f:
        delimiter = sniff_delimiter(f.read(64 * 1024))
    lines, seps = csv_shape(path, MAX_COLUMNS, delimiter)
    if seps >= MAX_COLUMNS:
        return [("", partial(pd.DataFrame(), f"more than {MAX_COLUMNS} columns, not read"))]
    frame = None
    for enc in ("utf-8-sig", "gb18030"):
        try:
            frame = pd.read_csv(
                path,
                dtype=str,
                nrows=max_rows,
                keep_default_na=False,
                encoding=enc,
                sep=delimiter,
                on_bad_lines="skip",
            )
            break
        except UnicodeDecodeError:
            continue
    if frame is None:
        raise InvalidArtifact("the CSV artifact is neither UTF-8 nor GB18030 text")
    if lines > max_rows + 1:
        partial(frame, f"more than {max_rows} rows, the first {max_rows} read")
    return [("", frame)]


def _load_parquet(path: Path, max_rows: int) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    top = pf.schema_arrow.names
    names = top[:MAX_COLUMNS]
    cut = [f"{len(top)} columns"] if len(top) > MAX_COLUMNS else []
    cut += [f"{pf.metadata.num_rows} rows"] if pf.metadata.num_rows > max_rows else []
    parts, n = [], 0
    for batch in pf.iter_batches(batch_size=65_536, columns=names):
        table = pa.Table.from_batches([batch])
        while any(pa.types.is_struct(f.type) for f in table.schema):  # structs → a.b columns
            table = table.flatten()
        cols: dict[str, Any] = {}
        for name, col in zip(table.column_names, table.columns, strict=True):
            if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_map(col.type):
                cols[name] = [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()]
            else:
                cols[name] = col.to_pandas()
        parts.append(pd.DataFrame(cols))
        n += batch.num_rows
        if n >= max_rows:
            break
    frame = pd.concat(parts) if parts else pd.DataFrame(columns=names)
    if len(frame.columns) > MAX_COLUMNS:
        cut.append(f"{len(frame.columns)} columns once nested fields are flattened")
        frame = frame.iloc[:, :MAX_COLUMNS]
    frame = frame.head(max_rows).astype("string").reset_index(drop=True)
    return partial(frame, " and ".join(cut) + ", not all read") if cut else frame


def _flat(node: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _flat(v, f"{prefix}[{i}]", out)
    else:
        out[prefix or "value"] = node


def json_tables(doc: Any, max_rows: int = MAX_SCAN_ROWS) -> list[tuple[str, pd.DataFrame]]:
    """A JSON document as tables: each array of objects becomes a table of flattened records;
    every other scalar is listed in a ``path, value`` table.

    >>> [(n, list(f.columns)) for n, f in json_tables({"rows": [{"a": {"b": 1}}], "n": 2})]
    [('$.rows', ['a.b']), ('$', ['path', 'value'])]
    """
    tables: list[tuple[str, pd.DataFrame]] = []
    loose: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
            records = []
            for item in node[:max_rows]:
                flat: dict[str, Any] = {}
                _flat(item, "", flat)
                records.append(flat)
            frame = pd.DataFrame.from_records(records)
            cut = ([f"more than {max_rows} records"] if len(node) > max_rows else []) + (
                [f"{len(frame.columns)} fields"] if len(frame.columns) > MAX_COLUMNS else []
            )
            frame = frame.iloc[:, :MAX_COLUMNS].astype("string")
            tables.append((path, partial(frame, ", ".join(cut) + ", not all read") if cut else frame))
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif node is not None:
            loose.append((path, str(node)))

    walk(doc, "$")
    if loose:
        frame = pd.DataFrame(loose[:max_rows], columns=["path", "value"], dtype="string")
        tables.append(
            ("$", partial(frame, f"more than {max_rows} values") if len(loose) > max_rows else frame)
        )
    return tables


def _load_zip(path: Path, max_rows: int) -> list[tuple[str, pd.DataFrame]]:
    out: list[tuple[str, pd.DataFrame]] = []
    with zipfile.ZipFile(path) as z:
        members = [i for i in z.infolist() if not i.is_dir()]
        total = sum(i.file_size for i in members)
        if total > MAX_ZIP_BYTES or len(members) > MAX_ZIP_MEMBERS:
            why = f"{len(members)} members expanding to {total} bytes, not read"
            return [("", partial(pd.DataFrame(), why))]
        with tempfile.TemporaryDirectory(prefix="lab-zip-") as tmp:
            for i, info in enumerate(members):
                name = info.filename[-120:]
                kind = KINDS.get(Path(info.filename).suffix.lower())
                if kind is None or kind == "zip":
                    out.append((name, partial(pd.DataFrame(), "a member the checks cannot read")))
                    continue
                target = Path(tmp) / f"m{i}"
                with z.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                out += [
                    (f"{name}!{sheet}" if sheet else name, f) for sheet, f in _load(target, kind, max_rows)
                ]
                target.unlink()
    return out


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
