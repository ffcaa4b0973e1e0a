"""Automatic checks run on every product submission, before the bureau reviews it.

* **lineage** — every named derived record exists and belongs to the submitting project
  (otherwise the submission is refused with :class:`InvalidLineage`), and each record still
  matches its ``derived.record`` ledger entry (otherwise the check fails: the record table was
  altered).
* **artifact_digest** — the SHA-256 computed while streaming the upload equals the digest the
  client declared (a mismatch refuses the upload), and the stored object re-hashes to it.
* **identifiers** (CSV/TSV/text, Parquet, XLSX, JSON, and those inside a ZIP) — every value of every
  column, nested leaf and adjacent column pair is tested, after the common disguises (substrings
  with valid check characters, reversal, digests), against the identifier columns (and entity
  keys) of every non-open dataset, server-side with DuckDB (:mod:`lab.products.idscan`). One real
  identifier fails the check. Candidate values never leave the check.
* **coverage** — what the checks read and what they could not (see :mod:`lab.products.tables`).
* **small_counts** (tables only) — count columns (declared, recognized by name, or by their values:
  every cell a non-negative whole number, in a column not named like a dimension) must have no cell
  in ``1 .. min_cell_count - 1``, where ``min_cell_count`` is the largest policy threshold of the
  datasets the lineage reached through channels other than DP. Counts released by DP are
  noisy and exempt: a lineage of DP records only sets no threshold, and columns declared as
  ``dp_columns`` are exempt when the lineage holds a DP record.

A check is a dict ``{"name", "status": "pass"|"fail"|"skipped", "detail", "data"}``; the list of
checks is stored with the submission and shown to the reviewer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.catalog.policy import ColumnRole, Normalization
from lab.catalog.service import DatasetVersion
from lab.errors import EntryNotFound
from lab.ledger import Ledger
from lab.products import idscan
from lab.products.errors import InvalidArtifact, InvalidLineage
from lab.products.idscan import IdentifierTarget
from lab.products.tables import KINDS
from lab.products.tables import load_tables as load_tables  # re-exported: the checks read tables
from lab.records.models import DerivedRecordRow

Check = dict[str, Any]

MAX_LINEAGE = 200
MEDIA_TYPES = {
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/tab-separated-values": "csv",
    "text/plain": "text",
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
}
COUNT_NAME = re.compile(
    r"(^|_)(count|counts|cnt|n|num|number|freq|frequency|cases|persons|people|households|population)($|_)"
    r"|total|totals|sum|headcount|members|matched|matches|hits|size|tally|volume"
    r"|人数|数量|计数|频数|户数|人次|个数|件数|合计|总数|总计|匹配",
    re.IGNORECASE,
)
DIMENSION_NAME = re.compile(
    r"(^|_)(id|code|year|month|day|date|week|quarter|rank|order|index|idx|seq|level|grade|age|zip|"
    r"postcode|version|bin|bucket|group|lower|upper|lo|hi)($|_)|编号|代码|年份|年度|月份|序号|年龄|日期|等级",
    re.IGNORECASE,
)
WHOLE = re.compile(r"0|[1-9][0-9]*(\.0+)?")


def check(name: str, ok: bool | None, detail: str, **data: Any) -> Check:
    """A check result; ``ok=None`` means skipped."""
    status = "skipped" if ok is None else "pass" if ok else "fail"
    return {"name": name, "status": status, "detail": detail, "data": data}


# -- lineage --------------------------------------------------------------------------------
def lineage(
    session: Session, ledger: Ledger, project_id: str, record_ids: list[str]
) -> tuple[list[dict[str, Any]], Check]:
    """Resolve ``record_ids`` to a lineage snapshot; refuse unknown and foreign records.

    Returns the snapshot (one dict per record, in the given order, with the leaf hash of its
    ledger entry) and the ``lineage`` check.
    """
    ids = list(dict.fromkeys(record_ids))
    if not ids:
        raise InvalidLineage("a product names at least one derived record it comes from (derived_from)")
    if len(ids) > MAX_LINEAGE:
        raise InvalidLineage(f"at most {MAX_LINEAGE} derived records per product version")
    rows = {
        r.id: r
        for r in session.execute(select(DerivedRecordRow).where(DerivedRecordRow.id.in_(ids))).scalars()
    }
    unknown = [i for i in ids if i not in rows]
    if unknown:
        raise InvalidLineage(
            f"unknown derived record(s): {', '.join(unknown)}", records=unknown, problem="unknown-record"
        )
    foreign = [i for i in ids if rows[i].project_id != project_id]
    if foreign:
        raise InvalidLineage(
            f"derived record(s) {', '.join(foreign)} belong to another project, not {project_id}",
            records=foreign,
            problem="other-project",
        )
    snapshot, problems = [], []
    for i in ids:
        r = rows[i]
        leaf = ""
        try:
            entry = ledger.entry(r.ledger_index)
            body = entry.entry.get("body", {})
            leaf = entry.leaf_hash
            if entry.kind != "derived.record" or (
                body.get("record"),
                body.get("project"),
                body.get("channel"),
                body.get("result_sha256"),
            ) != (r.id, r.project_id, r.channel, r.result_digest):
                problems.append(f"record {r.id} does not match its ledger entry {r.ledger_index}")
        except EntryNotFound:
            problems.append(f"record {r.id} names ledger entry {r.ledger_index}, which does not exist")
        snapshot.append(
            {
                "record": r.id,
                "channel": r.channel,
                "operation": r.operation,
                "caller": r.caller,
                "datasets": r.datasets,
                "epsilon": r.epsilon,
                "delta": r.delta,
                "result_sha256": r.result_digest,
                "created_at": r.created_at.isoformat(),
                "ledger_index": r.ledger_index,
                "leaf_hash": leaf,
            }
        )
    detail = (
        f"{len(ids)} derived record(s) of project {project_id}, each matching its ledger entry"
        if not problems
        else "; ".join(problems)
    )
    return snapshot, check("lineage", not problems, detail, records=ids, problems=problems)


# -- artifact digest -------------------------------------------------------------------------
def artifact_digest(declared: str | None, computed: str, size: int, stored: str | None = None) -> Check:
    """Refuse a declared digest that the upload does not match; report the digest check."""
    if declared is not None and declared.lower() != computed:
        raise InvalidArtifact(
            f"the artifact's SHA-256 is {computed}, not the declared {declared.lower()}: "
            "the upload was altered or truncated",
            computed_sha256=computed,
        )
    if stored is not None and stored != computed:
        return check("artifact_digest", False, "the stored object does not hash to the uploaded digest")
    how = "matches the declared digest" if declared else "computed on upload (no digest declared)"
    return check("artifact_digest", True, f"SHA-256 {computed} ({size} bytes) {how}", sha256=computed)


# -- tables -------------------------------------------------------------------------------------
def tabular_kind(filename: str | None, media_type: str | None) -> str | None:
    """The kind of artifact the checks can read (see :data:`lab.products.tables.KINDS`), else None."""
    suffix = Path(filename or "").suffix.lower()
    return KINDS.get(suffix) or MEDIA_TYPES.get((media_type or "").split(";")[0].strip().lower())


def identifier_targets_of(version: DatasetVersion, parquet: Path) -> list[IdentifierTarget]:
    """Identifier and entity-key columns of a non-open dataset version (none for open datasets)."""
    if version.policy.is_open:
        return []
    return [
        IdentifierTarget(
            version.dataset,
            version.version,
            c.name,
            (c.normalization or Normalization.generic).value,
            parquet,
        )
        for c in version.policy.columns
        if c.role in (ColumnRole.identifier, ColumnRole.entity_key) and c.type == "string"
    ]


def _label(sheet: str, column: str) -> str:
    return f"{sheet}!{column}" if sheet else column


def identifiers(tables: list[tuple[str, pd.DataFrame]], targets: list[IdentifierTarget]) -> Check:
    """Flag every column holding even one identifier of a non-open dataset, in any common disguise.

    See :mod:`lab.products.idscan` for the transformations; every value is scanned.
    """
    cands = idscan.collect(tables, {t.normalization for t in targets})
    cells = sum(len(f) * len(f.columns) for _, f in tables)
    if not targets:
        return check("identifiers", True, "no non-open dataset has identifier columns", columns=[])
    results = idscan.match(cands, targets)
    scope = dict(
        cells=cells,
        columns_scanned=len(cands.scanned),
        transforms=list(idscan.TRANSFORMS),
        datasets=sorted({f"{t.dataset}.{t.column}" for t in targets}),
    )
    if results:
        detail = "; ".join(
            f"column {r['column']!r}: {r['matched']} distinct value(s) are "
            f"{r['dataset']}.{r['dataset_column']} identifiers (non-open; found as {', '.join(r['how'])})"
            for r in results
        )
    else:
        detail = (
            f"no value matches a non-open identifier ({cells} cells in {len(cands.scanned)} columns and "
            f"adjacent pairs scanned in full, as values, nested leaves, substrings, reversed and digests)"
        )
    return check("identifiers", not results, detail, columns=results, **scope)


def _counts_by_value(col: pd.Series, name: str) -> bool:
    """A column whose every cell is a non-negative whole number is a count, unless named like a dimension."""
    if DIMENSION_NAME.search(name):
        return False
    cells = col.astype("string").fillna("").str.strip()
    cells = cells[cells != ""]
    return bool(len(cells)) and bool(cells.str.fullmatch(WHOLE.pattern).all())


def small_counts(
    tables: list[tuple[str, pd.DataFrame]],
    threshold: int,
    sources: list[str],
    *,
    has_dp: bool,
    count_columns: list[str] | None = None,
    dp_columns: list[str] | None = None,
) -> Check:
    """Flag count cells in ``1 .. threshold-1`` (``sources`` name the datasets that set the threshold)."""
    if threshold <= 1:
        why = "lineage reaches non-open data only through DP" if has_dp else "no policy sets a threshold"
        return check("small_counts", True, f"no minimum cell count applies ({why})", threshold=threshold)
    declared = set(count_columns or [])
    exempt = set(dp_columns or []) if has_dp else set()
    found: list[dict[str, Any]] = []
    checked: list[str] = []
    for sheet, frame in tables:
        for col in frame.columns:
            name = str(col)
            if name in exempt or not (
                name in declared or COUNT_NAME.search(name) or _counts_by_value(frame[col], name)
            ):
                continue
            nums = pd.to_numeric(frame[col], errors="coerce")
            valid = nums.dropna()
            if valid.empty or (name not in declared and not (valid == valid.round()).all()):
                continue
            checked.append(_label(sheet, name))
            small = valid[(valid > 0) & (valid < threshold)]
            if len(small):
                found.append(
                    {
                        "column": _label(sheet, name),
                        "cells": len(small),
                        "rows": [int(i) + 1 for i in small.index[:10]],
                    }
                )
    data = {
        "threshold": threshold,
        "sources": sources,
        "checked": checked,
        "exempt": sorted(exempt),
        "cells": found,
    }
    if found:
        detail = "; ".join(
            f"column {f['column']!r} has {f['cells']} count cell(s) below {threshold} "
            f"(set by {', '.join(sources)})"
            for f in found
        )
        return check("small_counts", False, detail, **data)
    return check(
        "small_counts", True, f"no count cell below {threshold} in {len(checked)} count column(s)", **data
    )
