"""The identifier check: does an artifact carry identifiers of a non-open dataset, in any spelling?

Every value of every table :func:`lab.products.tables.load_tables` read is scanned (no sample), and
candidates are drawn from it by the transformations an operator would use to walk around a plain
membership test:

* **value** — the whole cell, normalized like the dataset column (spaces, hyphens, case, ``+86``);
* **nested** — leaves of a JSON value in a cell (Parquet list and map cells arrive as JSON text);
* **substring** — resident ID, USCC and mobile number patterns anywhere in the cell (``RID:`` + id,
  id + suffix), kept only when their check characters are valid;
* **reversed** — the same search over the reversed cell;
* **adjacent** — the concatenation of two adjacent columns, both orders (an id split in two);
* **digest** — 32/40/64 hex-digit strings, compared with the MD5/SHA-1/SHA-256 of every normalized
  identifier of the dataset column.

Matching runs in DuckDB over the dataset's Parquet, streaming: the hash table is built on the
artifact's candidates (small) and the dataset's column is probed against it, so no dataset is loaded
whole, and digests are computed on the fly. A single real identifier fails the check: diluting a
few real ids among many valid decoys does not lower any rate below a threshold. Candidate values
never leave this module; the check reports per column how many distinct values matched and how.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lab.identifiers import is_valid_phone, is_valid_resident_id, is_valid_uscc, upgrade_15_to_18


def _rid(s: str) -> str | None:
    if len(s) == 15:
        try:
            return upgrade_15_to_18(s)
        except ValueError:
            return None
    return s if is_valid_resident_id(s) else None


def _valid(fn: Callable[[str], bool]) -> Callable[[str], str | None]:
    return lambda s: s if fn(s) else None


_RID = r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dX]"
PATTERNS: dict[str, tuple[re.Pattern[str], Callable[[str], str | None]]] = {
    "resident_id": (re.compile(f"(?=({_RID}|(?<![0-9])[1-9][0-9]{{14}}(?![0-9X])))"), _rid),
    "uscc": (re.compile(r"(?=([0-9A-HJ-NP-RTUW-Y]{2}\d{6}[0-9A-HJ-NP-RTUW-Y]{10}))"), _valid(is_valid_uscc)),
    "phone": (re.compile(r"(?<!\d)(?:0086|86)?(1[3-9]\d{9})(?!\d)"), _valid(is_valid_phone)),
}
HEX = re.compile(r"(?<![0-9a-f])([0-9a-f]{64}|[0-9a-f]{40}|[0-9a-f]{32})(?![0-9a-f])")
LONGEST = 18  # characters of the longest patterned identifier: windows across two cells are this wide
MAX_JSON_CELL = 1 << 20
TRANSFORMS = ("value", "nested", "substring", "reversed", "adjacent", "digest")


@dataclass(frozen=True)
class IdentifierTarget:
    """One identifying column of a non-open dataset version, with its local Parquet file."""

    dataset: str
    version: int
    column: str
    normalization: str
    parquet: Path


class Candidates:
    """Per normalization and artifact column: candidate value → the transformations that produced it."""

    def __init__(self, norms: Iterable[str]) -> None:
        self.norms = sorted(set(norms))
        self.values: dict[str, dict[str, dict[str, set[str]]]] = {n: defaultdict(dict) for n in self.norms}
        self.digests: dict[str, dict[str, set[str]]] = defaultdict(dict)
        self.scanned: dict[str, int] = {}
        self.pairs: dict[str, tuple[str, str]] = {}  # "a+b" → (a, b)

    def add(self, norm: str, label: str, values: Iterable[str], how: str) -> None:
        bucket = self.values[norm][label]
        for v in values:
            bucket.setdefault(v, set()).add(how)

    def texts(self, label: str, values: pd.Series, how: str, *, patterned_only: bool = False) -> None:
        """Draw candidates from distinct non-empty texts: whole values (generic keys), patterned
        identifiers anywhere in the text and in its reversal, and hex digests."""
        if "generic" in self.norms and not patterned_only:
            g = values.str.normalize("NFKC").str.strip()
            g = g[g != ""]
            self.add("generic", label, g, how)
            self.add("generic", label, g.str[::-1], "reversed")
        patterned = [n for n in self.norms if n in PATTERNS]
        if patterned:
            t = values.str.normalize("NFKC").str.upper().str.replace(r"[\s\-]", "", regex=True)
            for raw in t[t.str.contains(r"[0-9A-Z]{11}", regex=True)]:
                for norm in patterned:
                    pattern, accept = PATTERNS[norm]
                    for variant, h in (
                        (raw, how if how != "value" else "substring"),
                        (raw[::-1], "reversed"),
                    ):
                        found = [c for m in pattern.finditer(variant) if (c := accept(m.group(1)))]
                        if found:
                            self.add(norm, label, found, h)
        lower = values.str.lower()
        for raw in lower[lower.str.contains(r"[0-9a-f]{32}", regex=True)]:
            for m in HEX.finditer(raw):
                self.digests[label].setdefault(m.group(1), set()).add("digest")


def leaves(value: str) -> Iterator[str]:
    """Scalar leaves of a JSON array/object cell (nothing for other cells)."""
    s = value.lstrip()
    if not s.startswith(("[", "{")) or len(s) > MAX_JSON_CELL:
        return
    try:
        doc = json.loads(s)
    except ValueError:
        return
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif node is not None:
            yield str(node)


def _column(frame: pd.DataFrame, i: int) -> pd.Series:
    return frame.iloc[:, i].astype("string").fillna("").str.strip()


def collect(tables: list[tuple[str, pd.DataFrame]], norms: Iterable[str]) -> Candidates:
    """Every candidate identifier of every cell, nested leaf and adjacent column pair."""
    out = Candidates(norms)
    for sheet, frame in tables:
        cols = [_column(frame, i) for i in range(len(frame.columns))]
        names = [f"{sheet}!{c}" if sheet else str(c) for c in frame.columns]
        for name, col in zip(names, cols, strict=True):
            values = pd.Series(pd.unique(col), dtype="string")
            values = values[values != ""]
            out.scanned[name] = len(values)
            out.texts(name, values, "value")
            nested = values[values.str.match(r"\s*[\[{]")]
            if len(nested):
                out.texts(name, pd.Series([x for v in nested for x in leaves(v)], dtype="string"), "nested")
        digits = [bool(c.str.contains(r"\d", regex=True).any()) for c in cols]
        for i in range(len(cols) - 1):
            if not (digits[i] and digits[i + 1]):
                continue
            a, b = cols[i], cols[i + 1]
            label = f"{names[i]}+{names[i + 1]}"
            out.pairs[label] = (names[i], names[i + 1])
            if "generic" in out.norms:
                whole = pd.Series(pd.unique(pd.concat([a + b, b + a])), dtype="string")
                out.texts(label, whole[whole != ""], "adjacent")
            w = LONGEST - 1  # only windows that cross the cell boundary can hold a split identifier
            windows = pd.concat([a.str[-w:] + b.str[:w], b.str[-w:] + a.str[:w]])
            windows = pd.Series(pd.unique(windows), dtype="string")
            out.scanned[label] = len(windows)
            out.texts(label, windows[windows != ""], "adjacent", patterned_only=True)
    return out


def match(cands: Candidates, targets: list[IdentifierTarget]) -> list[dict[str, Any]]:
    """Per (artifact column, dataset column): distinct candidates that are real identifiers, and how."""
    import duckdb

    results: list[dict[str, Any]] = []
    hexes = sorted({h for hs in cands.digests.values() for h in hs})
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        for t in targets:
            col = f'CAST("{t.column}" AS VARCHAR)'
            found: dict[str, set[str]] = defaultdict(set)
            per_label = cands.values.get(t.normalization, {})
            pool = sorted({v for by_value in per_label.values() for v in by_value})
            if pool:
                con.register("cand", pd.DataFrame({"v": pool}))
                real = {
                    r[0]
                    for r in con.execute(
                        f"SELECT DISTINCT {col} FROM read_parquet(?) "  # noqa: S608 - policy-validated name
                        f"WHERE {col} IN (SELECT v FROM cand)",
                        [str(t.parquet)],
                    ).fetchall()
                }
                con.unregister("cand")
                for label, by_value in per_label.items():
                    found[label] |= real & by_value.keys()
            if hexes:
                con.register("hx", pd.DataFrame({"h": hexes}))
                real = {
                    r[0]
                    for r in con.execute(
                        f"SELECT DISTINCT h FROM (SELECT unnest([md5(v), sha1(v), sha256(v)]) AS h FROM "  # noqa: S608
                        f"(SELECT {col} AS v FROM read_parquet(?))) WHERE h IN (SELECT h FROM hx)",
                        [str(t.parquet)],
                    ).fetchall()
                }
                con.unregister("hx")
                for label, digests in cands.digests.items():
                    found[label] |= {f"#{h}" for h in real & digests.keys()}
            for label, (left, right) in cands.pairs.items():  # a pair reports only what neither cell holds
                found[label] -= found.get(left, set()) | found.get(right, set())
            for label, vals in sorted(found.items()):
                if not vals:
                    continue
                how = {h for v in vals if not v.startswith("#") for h in per_label[label][v]}
                if any(v.startswith("#") for v in vals):
                    how.add("digest")
                scanned = max(cands.scanned.get(label, 0), 1)
                results.append(
                    {
                        "column": label,
                        "dataset": t.dataset,
                        "dataset_version": t.version,
                        "dataset_column": t.column,
                        "sampled": scanned,
                        "matched": len(vals),
                        "match_rate": round(len(vals) / scanned, 4),
                        "how": sorted(how),
                    }
                )
    finally:
        con.close()
    return results
