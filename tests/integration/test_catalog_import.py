"""Catalog imports on SQLite and PostgreSQL with a real SeaweedFS: versions, validation, integrity."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from minio.commonconfig import CopySource  # noqa: F401 - documents the client we use
from sqlalchemy import text

from lab.catalog.policy import load_policy
from lab.catalog.service import CatalogFetcher, CatalogImporter, CatalogReader
from lab.errors import CorruptObject, InvalidDataset
from lab.identifiers import make_resident_id
from lab.runtime import Runtime

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "policies" / "health_visits.yaml")


def write_health_csv(
    path: Path, rows: int, *, bad: dict[tuple[int, str], str] | None = None, per_entity: int = 1
) -> Path:
    """``rows`` visit rows, ``per_entity`` consecutive rows per resident (person_id, resident_id)."""
    import datetime as dt

    cols = [c.name for c in POLICY.columns]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for i in range(rows):
            p = i // per_entity
            row = {
                "person_id": f"P{p:06d}",
                "resident_id": make_resident_id(
                    "310151", dt.date(1960, 1, 1) + dt.timedelta(days=p), p % 1000
                ),
                "year": "2025",
                "town": "城桥镇" if i % 2 else "堡镇",
                "age_band": "60-79",
                "visits": str(i % 30),
                "cost": f"{i * 10.5:.2f}",
                "chronic": str(i % 2),
            }
            for (r, c), v in (bad or {}).items():
                if r == i:
                    row[c] = v
            w.writerow([row[c] for c in cols])
    return path


def _import(runtime: Runtime, path: Path):  # type: ignore[no-untyped-def]
    with runtime.transaction() as s:
        return CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(path, POLICY, "steward1")


def test_import_writes_parquet_entry_and_ledger(runtime: Runtime, tmp_path: Path) -> None:
    v = _import(runtime, write_health_csv(tmp_path / "h.csv", 50))
    assert (v.dataset, v.version, v.row_count) == ("health_visits", 1, 50)
    assert v.object_key.endswith(v.sha256)
    local = runtime.store.get_file(v.stored, tmp_path / "back.parquet")
    table = pq.read_table(local)
    assert table.num_rows == 50 and table.schema.field("visits").type.bit_width == 64
    with runtime.transaction() as s:
        entry = runtime.ledger(s).entry(v.ledger_index)
    assert entry.kind == "catalog.dataset_version"
    assert entry.entry["body"]["sha256"] == v.sha256  # the file's hash binds its rows
    assert "row_count" not in entry.entry["body"]  # non-open: the exact size is not for every ledger reader


def test_reimport_creates_a_new_version_and_keeps_the_old(runtime: Runtime, tmp_path: Path) -> None:
    v1 = _import(runtime, write_health_csv(tmp_path / "a.csv", 20))
    v2 = _import(runtime, write_health_csv(tmp_path / "b.csv", 30))
    assert (v1.version, v2.version) == (1, 2)
    with runtime.transaction() as s:
        cat = CatalogReader(s)
        assert cat.get("health_visits").version == 2
        old = cat.get("health_visits", 1)
        assert old.row_count == 20
        assert [v.version for v in cat.versions("health_visits")] == [1, 2]
    path = CatalogFetcher(runtime.store).fetch(old, tmp_path / "cache")
    assert pq.read_metadata(path).num_rows == 20


@pytest.mark.parametrize(
    ("bad", "row", "column", "fragment"),
    [
        ({(6, "visits"): "many"}, 7, "visits", "not a valid integer"),
        ({(3, "visits"): "61"}, 4, "visits", "outside the declared bounds"),
        ({(9, "town"): "上海市"}, 10, "town", "not in the declared domain"),
        ({(2, "resident_id"): "310151196001010011"}, 3, "resident_id", "not a valid resident_id"),
        ({(4, "person_id"): ""}, 5, "person_id", "empty value"),
        ({(5, "cost"): "-1"}, 6, "cost", "outside the declared bounds"),
    ],
)
def test_invalid_rows_are_named(
    runtime: Runtime, tmp_path: Path, bad: dict, row: int, column: str, fragment: str
) -> None:  # type: ignore[type-arg]
    path = write_health_csv(tmp_path / "bad.csv", 12, bad=bad)
    with pytest.raises(InvalidDataset) as exc:
        _import(runtime, path)
    assert exc.value.extra["row"] == row and exc.value.extra["column"] == column
    assert fragment in exc.value.detail and f"row {row}" in exc.value.detail
    with runtime.engine.connect() as conn:  # nothing half-written
        assert conn.execute(text("SELECT count(*) FROM dataset_versions")).scalar_one() == 0
        assert conn.execute(text("SELECT size FROM ledger_state")).scalar_one() == 0


def test_undeclared_and_missing_columns_are_refused(runtime: Runtime, tmp_path: Path) -> None:
    path = write_health_csv(tmp_path / "h.csv", 3)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0] + ",secret", *(line + ",x" for line in lines[1:])]), encoding="utf-8")
    with pytest.raises(InvalidDataset, match="'secret' is not declared"):
        _import(runtime, path)
    path2 = tmp_path / "m.csv"
    path2.write_text("person_id,year\nP1,2025\n", encoding="utf-8")
    with pytest.raises(InvalidDataset, match="missing"):
        _import(runtime, path2)


def test_corrupted_object_is_detected_on_read(runtime: Runtime, tmp_path: Path) -> None:
    import io

    v = _import(runtime, write_health_csv(tmp_path / "h.csv", 10))
    data = runtime.store.client.get_object(v.bucket, v.object_key).read()
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    runtime.store.client.put_object(v.bucket, v.object_key, io.BytesIO(bytes(flipped)), len(flipped))
    with pytest.raises(CorruptObject):
        runtime.store.get_bytes(v.stored)
    with pytest.raises(CorruptObject):
        runtime.store.get_file(v.stored, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_a_later_version_cannot_change_the_accounts_composition_rule(
    runtime: Runtime, tmp_path: Path
) -> None:
    from sqlalchemy import select, update

    from lab.catalog.models import DatasetVersionRow
    from lab.errors import AccountRuleFixed

    assert POLICY.account is not None and POLICY.account.composition == "zcdp"
    _import(runtime, write_health_csv(tmp_path / "a.csv", 20))
    basic = POLICY.model_copy(update={"account": POLICY.account.model_copy(update={"composition": "basic"})})
    with (
        pytest.raises(AccountRuleFixed, match="keeps one composition rule") as exc,
        runtime.transaction() as s,
    ):
        CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(
            write_health_csv(tmp_path / "b.csv", 20), basic, "steward1"
        )
    problem = exc.value.problem()
    assert (problem["status"], problem["code"]) == (409, "account-rule-fixed")
    assert (problem["dataset"], problem["composition"]) == ("health_visits", "zcdp")
    with runtime.transaction() as s:
        assert [v.version for v in CatalogReader(s).versions("health_visits")] == [1]
    assert _import(runtime, write_health_csv(tmp_path / "c.csv", 20)).version == 2  # same rule: fine
    # a version stored before accounts declared a rule fixes none: the first declared rule does
    with runtime.transaction() as s:
        for row in s.execute(select(DatasetVersionRow)).scalars().all():
            legacy = {k: v for k, v in row.policy["account"].items() if k != "composition"}
            s.execute(
                update(DatasetVersionRow)
                .where(DatasetVersionRow.version == row.version)
                .values(policy={**row.policy, "account": legacy})
            )
    with runtime.transaction() as s:
        v3 = CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(
            write_health_csv(tmp_path / "d.csv", 20), basic, "steward1"
        )
    assert v3.version == 3 and v3.policy.account is not None and v3.policy.account.composition == "basic"
    with pytest.raises(AccountRuleFixed), runtime.transaction() as s:
        CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(
            write_health_csv(tmp_path / "e.csv", 20), POLICY, "steward1"
        )
