"""The synthetic sample catalog: policy conformance, sizes, joins, identifiers, determinism."""

from __future__ import annotations

import doctest
import hashlib
import importlib
import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from lab.catalog.policy import Policy, load_policy
from lab.cli.sample import sample
from lab.identifiers import is_valid_phone, is_valid_resident_id, is_valid_uscc
from lab.sample import DATASETS, default_policy_dir, enterprise_count, generate
from lab.sample._random import Permutation

SCALE = 2000
ARROW = {"string": pa.string(), "integer": pa.int64(), "float": pa.float64(), "date": pa.date32()}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    """A catalog of 2000 residents generated once for the module."""
    out = tmp_path_factory.mktemp("catalog")
    yield out, generate(SCALE, out)


@pytest.fixture(scope="module")
def tables(catalog: tuple[Path, dict[str, int]]) -> dict[str, pa.Table]:
    out, _ = catalog
    return {name: pq.read_table(out / f"{name}.parquet") for name in DATASETS}


@pytest.fixture(scope="module")
def policies() -> dict[str, Policy]:
    return {name: load_policy(default_policy_dir() / f"{name}.yaml") for name in DATASETS}


def column(table: pa.Table, name: str) -> list[object]:
    values: list[object] = table.column(name).to_pylist()
    return values


def file_digests(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("module", ["_random", "_people", "_enterprises", "generate"])
def test_doctests_pass(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"lab.sample.{module}"))
    assert result.attempted > 0
    assert result.failed == 0


# --- conformance -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_every_column_matches_its_policy(
    name: str, tables: dict[str, pa.Table], policies: dict[str, Policy]
) -> None:
    table, policy = tables[name], policies[name]
    assert table.column_names == [c.name for c in policy.columns]
    assert table.num_rows > 0
    for col in policy.columns:
        values = table.column(col.name)
        assert values.type == ARROW[col.type], col.name
        assert values.null_count == 0, col.name
        if col.domain is not None:
            assert pc.all(pc.is_in(values, pa.array(col.domain))).as_py(), col.name
        if col.bounds is not None:
            lo, hi = (float(b) for b in col.bounds)
            assert pc.min(values).as_py() >= lo, col.name
            assert pc.max(values).as_py() <= hi, col.name


def test_policies_are_copied_unchanged(catalog: tuple[Path, dict[str, int]]) -> None:
    out, _ = catalog
    for name in DATASETS:
        assert (out / "policies" / f"{name}.yaml").read_bytes() == (
            default_policy_dir() / f"{name}.yaml"
        ).read_bytes()


def test_files_carry_generator_metadata(catalog: tuple[Path, dict[str, int]]) -> None:
    out, _ = catalog
    meta = pq.read_schema(out / "population.parquet").metadata
    assert meta[b"lab.dataset"] == b"population"
    assert meta[b"lab.scale"] == str(SCALE).encode()


# --- sizes -------------------------------------------------------------------------------------


def test_row_counts_are_proportional(
    catalog: tuple[Path, dict[str, int]], tables: dict[str, pa.Table]
) -> None:
    _, rows = catalog
    assert rows == {name: tables[name].num_rows for name in DATASETS}
    n = enterprise_count(SCALE)
    assert rows["population"] == SCALE
    assert rows["enterprise_registry"] == n == SCALE // 10
    assert rows["environment_monitoring"] == 36 * 30

    def near(observed: int, expected: float, share: float) -> bool:
        return abs(observed - expected) <= 5 * math.sqrt(expected * (1 - share)) + 5

    taxpayers = len(set(column(tables["tax_credit"], "taxpayer_id")))
    employers = len(set(column(tables["social_insurance"], "employer_id")))
    patients = len(set(column(tables["health_visits"], "person_id")))
    assert near(taxpayers, 0.7 * n / 0.98, 0.7)
    assert near(employers, 0.6 * n / 0.98, 0.6)
    assert near(patients, 0.6 * SCALE, 0.6)
    assert taxpayers <= rows["tax_credit"] <= 3 * taxpayers
    assert employers <= rows["social_insurance"] <= 4 * employers
    assert 1.5 * patients <= rows["health_visits"] <= 2.5 * patients  # 1-3 years, 2 on average


def test_environment_days_follow_scale(tmp_path: Path) -> None:
    rows = generate(45_000, tmp_path, datasets=["environment_monitoring"])
    assert rows == {"environment_monitoring": 36 * 45}
    assert not (tmp_path / "population.parquet").exists()


# --- identifiers and uniqueness ---------------------------------------------------------------


def test_population_identifiers_are_valid_unique_and_consistent(tables: dict[str, pa.Table]) -> None:
    people = tables["population"].to_pylist()
    for key in ("person_id", "resident_id", "phone"):
        assert len({p[key] for p in people}) == SCALE, key
    reference = date(2026, 1, 1)
    for p in people:
        rid, born = p["resident_id"], p["birth_date"]
        assert is_valid_resident_id(rid) and is_valid_phone(p["phone"])
        assert rid[:6] in ("310151", "310230")
        assert rid[6:14] == f"{born:%Y%m%d}"
        assert p["age"] == reference.year - born.year - ((born.month, born.day) > (1, 1))
        assert (p["gender"] == "男") == (int(rid[16]) % 2 == 1)
    divisions = [p["resident_id"][:6] for p in people]
    assert 0 < divisions.count("310230") < 0.1 * SCALE


def test_enterprise_identifiers_are_valid_and_unique(tables: dict[str, pa.Table]) -> None:
    registry = tables["enterprise_registry"]
    usccs = column(registry, "uscc")
    assert len(set(usccs)) == len(usccs) == len(set(column(registry, "enterprise_id")))
    for name in ("enterprise_registry", "tax_credit", "social_insurance"):
        assert all(is_valid_uscc(str(u)) for u in column(tables[name], "uscc")), name
    assert all(str(u).startswith(("91310151", "93310151", "91310230", "93310230")) for u in usccs)
    assert all(str(n).startswith("上海崇明") for n in column(registry, "name"))


@pytest.mark.parametrize(
    ("name", "period"), [("tax_credit", "year"), ("social_insurance", "quarter"), ("health_visits", "year")]
)
def test_one_row_per_entity_and_period_with_a_stable_identifier(
    name: str, period: str, tables: dict[str, pa.Table], policies: dict[str, Policy]
) -> None:
    policy = policies[name]
    key, ident = policy.entity_key, next(c.name for c in policy.columns if c.role == "identifier")
    rows = tables[name].select([key, ident, period]).to_pylist()
    assert len({(r[key], r[period]) for r in rows}) == len(rows)
    ident_of: dict[object, object] = {}
    for r in rows:
        assert ident_of.setdefault(r[key], r[ident]) == r[ident]
    assert len(set(ident_of.values())) == len(ident_of)
    dp = policy.channels.dp
    assert dp is not None
    per_entity = np.unique([r[key] for r in rows], return_counts=True)[1]
    assert per_entity.max() <= dp.max_rows_per_entity


# --- overlaps --------------------------------------------------------------------------------


def test_health_visits_are_population_residents(tables: dict[str, pa.Table]) -> None:
    people = {
        p["person_id"]: p
        for p in tables["population"].select(["person_id", "resident_id", "town"]).to_pylist()
    }
    for v in tables["health_visits"].select(["person_id", "resident_id", "town"]).to_pylist():
        assert people[v["person_id"]] == v


@pytest.mark.parametrize("name", ["tax_credit", "social_insurance"])
def test_most_but_not_all_usccs_are_registered(name: str, tables: dict[str, pa.Table]) -> None:
    registry = set(column(tables["enterprise_registry"], "uscc"))
    usccs = set(column(tables[name], "uscc"))
    inside = len(usccs & registry) / len(usccs)
    assert 0.9 <= inside < 1.0


# --- realism -----------------------------------------------------------------------------------


def test_attributes_are_correlated_as_documented(tables: dict[str, pa.Table]) -> None:
    pop = tables["population"].to_pandas()
    adults = pop[(pop.age >= 25) & (pop.age < 60)]
    by_edu = adults.groupby("education").monthly_income.median()
    assert by_edu["本科及以上"] > by_edu["高中"] > by_edu["小学及以下"]
    assert pop[pop.age < 16].employed.sum() == 0
    assert pop[pop.age < 16].monthly_income.max() == 0
    health = tables["health_visits"].to_pandas().groupby("age_band")[["visits", "chronic"]].mean()
    assert health.loc["80+", "chronic"] > health.loc["40-59", "chronic"] > health.loc["18-39", "chronic"]
    assert health.loc["80+", "visits"] > health.loc["18-39", "visits"]
    grades = tables["tax_credit"].to_pandas().grade.value_counts(normalize=True)
    assert grades["A"] + grades["B"] > 0.55
    si = tables["social_insurance"].to_pandas()
    joined = si.merge(tables["enterprise_registry"].to_pandas(), on="uscc")
    assert np.corrcoef(joined.headcount, joined.employees)[0, 1] > 0.8


# --- determinism ---------------------------------------------------------------------------------


def test_same_scale_and_seed_give_byte_identical_files(
    catalog: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    out, _ = catalog
    generate(SCALE, tmp_path)
    assert file_digests(tmp_path) == file_digests(out)


def test_other_seed_gives_other_data(catalog: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    out, _ = catalog
    generate(SCALE, tmp_path, seed=7, datasets=["population"])
    assert (
        pq.read_table(tmp_path / "population.parquet")["resident_id"]
        != pq.read_table(out / "population.parquet")["resident_id"]
    )


def test_rows_do_not_depend_on_chunk_size(tables: dict[str, pa.Table], tmp_path: Path) -> None:
    generate(SCALE, tmp_path, chunk_rows=333)
    for name in DATASETS:
        assert pq.read_table(tmp_path / f"{name}.parquet").equals(tables[name]), name


def test_csv_holds_the_same_rows(tmp_path: Path, policies: dict[str, Policy]) -> None:
    generate(300, tmp_path / "p")
    generate(300, tmp_path / "c", fmt="csv")
    for name in DATASETS:
        parquet = pq.read_table(tmp_path / "p" / f"{name}.parquet")
        types = {c.name: ARROW[c.type] for c in policies[name].columns}
        csv = pacsv.read_csv(
            tmp_path / "c" / f"{name}.csv", convert_options=pacsv.ConvertOptions(column_types=types)
        )
        assert csv.cast(parquet.schema.remove_metadata()).equals(parquet), name


def test_permutation_is_a_bijection_for_awkward_sizes() -> None:
    for n in (1, 2, 3, 17, 1000, 4097):
        assert sorted(Permutation(n, key=n)(np.arange(n)).tolist()) == list(range(n))


# --- errors and CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0}, "at least 1"),
        ({"scale": 10, "fmt": "xlsx"}, "parquet or csv"),
        ({"scale": 10, "datasets": ["census"]}, "unknown datasets"),
        ({"scale": 40_000_000}, "one birth date"),
    ],
)
def test_invalid_requests_are_refused(kwargs: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        generate(out=tmp_path, **kwargs)  # type: ignore[arg-type]
    assert not list(tmp_path.glob("*.parquet*"))


def test_cli_generates_and_prints_rows(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        sample, ["generate", "--scale", "300", "--out", str(tmp_path), "--format", "csv", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "population" in result.output and "300" in result.output
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == sorted(f"{n}.csv" for n in DATASETS)


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        sample, ["generate", "--scale", "40000000", "--out", str(tmp_path), "--no-progress"]
    )
    assert result.exit_code == 1
    assert "one birth date" in result.output


def test_progress_bar_reports_each_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate(200, tmp_path, progress=True, datasets=["population", "tax_credit"])
    err = capsys.readouterr().err
    assert "population" in err and "tax_credit" in err and "100%" in err
