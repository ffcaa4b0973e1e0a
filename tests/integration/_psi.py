"""Helpers of the PSI suites: sample import, operator lists built from the real columns, clients."""

from __future__ import annotations

import datetime as dt
import random
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import func, select

from lab.catalog.service import DatasetVersion
from lab.client import Client
from lab.identifiers import NORMALIZERS, make_resident_id, make_uscc
from lab.ledger.models import LedgerEntryRow
from lab.projects.models import UsageRow
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.factories import import_sample, sample_dir

SAMPLE_BASE = Path(tempfile.mkdtemp(prefix="lab-psi-sample-"))
ALL_MODES = ["intersection", "cardinality", "cohort"]


def import_psi_sample(
    runtime: Runtime, scale: int, names: tuple[str, ...] = ("enterprise_registry", "population")
) -> dict[str, DatasetVersion]:
    return import_sample(runtime, list(names), scale, SAMPLE_BASE)


def column(scale: int, dataset: str, name: str, key: str) -> tuple[list[str], list[str]]:
    """The raw column and its entity keys, read from the generated sample file."""
    table = pq.read_table(sample_dir(scale, SAMPLE_BASE) / f"{dataset}.parquet", columns=[name, key])
    return table.column(name).to_pylist(), table.column(key).to_pylist()


def grants(psi_modes: dict[str, list[str]], quota: int = 50, dp: bool = True) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dataset, modes in psi_modes.items():
        out[dataset] = {"psi": {"modes": modes, "quota": quota}}
        if dp:
            out[dataset]["dp"] = {"epsilon": "5", "delta": "0.00001", "epsilon_per_query": "1"}
    return out


def lab_client(api: Any, token: str) -> Client:
    """A ``lab.client.Client`` whose transport goes through the test app (tokens resolved by the Hub)."""
    from fastapi.testclient import TestClient

    c = Client("http://testserver", token)
    c.transport.http.close()
    c.transport.http = TestClient(api.app, headers={"Authorization": f"token {token}"})
    return c


def _outside(kind: str, rng: random.Random) -> str:
    if kind == "uscc":
        body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
        return make_uscc("9", "1", "310151", body)
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(25000))
    return make_resident_id("310151", born, rng.randrange(1, 990))


def _respell(value: str, kind: str, rng: random.Random) -> str:
    """Another spelling of the same identifier (what operators' lists look like)."""
    choice = rng.randrange(3)
    if choice == 0:
        return value
    if kind == "uscc":
        return f" {value[:8].lower()}-{value[8:]} " if choice == 1 else value.lower()
    if choice == 1 and value[6:8] == "19" and int(value[14:17]) < 996:
        return value[:6] + value[8:17]  # first-generation 15-digit form
    return f"{value[:6]} {value[6:14]} {value[14:]}".lower()


def operator_list(
    server: list[str], kind: str, *, n: int, inside: int, invalid: int, seed: int = 7
) -> tuple[list[Any], set[str]]:
    """``n`` items: ``inside`` spelled variously from the server column, the rest valid outsiders,
    plus ``invalid`` broken items and a few duplicates. Returns (items, expected normalized matches)."""
    rng = random.Random(seed)
    norm = NORMALIZERS[kind]
    server_set = {norm(v) for v in server if v}
    chosen = rng.sample(sorted(server_set), inside)
    items: list[Any] = [_respell(v, kind, rng) for v in chosen]
    while len(items) < n - invalid:
        v = _outside(kind, rng)
        if v not in server_set:
            items.append(v)
    broken = [None, "", "not-an-identifier", chosen[0][:-1] + ("0" if chosen[0][-1] != "0" else "1")]
    items += [broken[i % len(broken)] if i < len(broken) else f"bad-{i}" for i in range(invalid)]
    items += items[:3]  # duplicates of matching items
    rng.shuffle(items)
    expected = {norm(x) for x in items if _valid(norm, x)} & server_set
    return items, expected


def _valid(norm: Any, x: Any) -> bool:
    try:
        norm(x)
    except (ValueError, TypeError):
        return False
    return True


def charges(runtime: Runtime, project: str) -> dict[str, int]:
    """What has been charged to a project so far: derived records, quota units, ledger size."""
    with runtime.transaction() as s:
        records = s.execute(
            select(func.count()).select_from(DerivedRecordRow).where(DerivedRecordRow.project_id == project)
        ).scalar_one()
        units = s.execute(
            select(func.coalesce(func.sum(UsageRow.used), 0)).where(UsageRow.project_id == project)
        ).scalar_one()
        derived = s.execute(
            select(func.count()).select_from(LedgerEntryRow).where(LedgerEntryRow.kind == "derived.record")
        ).scalar_one()
    return {"records": int(records), "units": int(units), "ledger_records": int(derived)}
