"""PSI through the HTTP API with real Hub tokens: every mode against a plain-Python set intersection.

Small sets (hundreds of items against a few thousand identifiers); the 10k × 100k version is in
``test_psi_scale.py`` (slow).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from lab.artifacts.cohorts import get_cohort, load_cohort_keys
from lab.identifiers import NORMALIZERS
from lab.ledger.models import LedgerEntryRow
from lab.projects.access import budget_remaining
from psi_service.models import PsiArtifactRow, PsiSessionRow
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._psi import charges, column, grants, import_psi_sample, lab_client, operator_list

pytestmark = [pytest.mark.integration, pytest.mark.hub]
SCALE = 5000  # population 5,000 residents, registry 500 enterprises


@pytest.fixture
def psi_project(api: Any, runtime: Any, hub: HubHandle) -> dict[str, Any]:
    import_psi_sample(runtime, SCALE)
    pid = active_project(
        runtime,
        grants(
            {
                "enterprise_registry": ["intersection", "cardinality", "cohort"],
                "population": ["cohort"],
            }
        ),
        members=["alice"],
    )
    client = lab_client(api, hub.token_for("alice", ["operator"])).use(pid)
    return {"project": pid, "client": client}


@pytest.mark.parametrize("invalid", [0, 40], ids=["clean", "with-invalid"])
def test_intersection_returns_exactly_the_operators_items_in_the_column(
    psi_project: dict[str, Any], runtime: Any, invalid: int
) -> None:
    uscc, _ = column(SCALE, "enterprise_registry", "uscc", "enterprise_id")
    items, expected = operator_list(uscc, "uscc", n=400, inside=180, invalid=invalid)
    r = psi_project["client"].psi.intersect(items, dataset="enterprise_registry", column="uscc")
    got = {NORMALIZERS["uscc"](x) for x in r.matches}
    assert got == expected and r.size == len(expected)
    # every input item whose normalized form matched is returned, with its original spelling and position
    assert all(items[i] == v for i, v in r.matches.items())
    assert r.invalid.count == invalid and len(r.invalid.examples) == min(invalid, 5)
    assert r.record_id.startswith("dr_")
    with runtime.transaction() as s:
        entry = (
            s.execute(select(LedgerEntryRow).where(LedgerEntryRow.kind == "derived.record"))
            .scalars()
            .all()[-1]
        )
    body = json.loads(entry.body)["body"]
    assert body["record"] == r.record_id and body["parameters"]["mode"] == "intersection"
    assert body["parameters"]["client_size"] == r.client_size and body["units"] == 1
    assert not any(str(v) in entry.body for v in list(expected)[:20])  # never the items


@pytest.mark.parametrize("invalid", [0, 25], ids=["clean", "with-invalid"])
def test_cardinality_counts_the_intersection(psi_project: dict[str, Any], invalid: int) -> None:
    uscc, _ = column(SCALE, "enterprise_registry", "uscc", "enterprise_id")
    items, expected = operator_list(uscc, "uscc", n=600, inside=240, invalid=invalid)
    r = psi_project["client"].psi.intersect(
        items, dataset="enterprise_registry", column="uscc", mode="cardinality"
    )
    assert r.size == len(expected) and r.invalid.count == invalid
    assert not hasattr(r, "matches")


@pytest.mark.parametrize("invalid", [0, 30], ids=["clean", "with-invalid"])
def test_cohort_stores_the_matching_records_and_releases_a_noisy_size(
    psi_project: dict[str, Any], runtime: Any, invalid: int
) -> None:
    ids, keys = column(SCALE, "population", "resident_id", "person_id")
    items, expected = operator_list(ids, "resident_id", n=500, inside=210, invalid=invalid)
    pid = psi_project["project"]
    with runtime.transaction() as s:
        before = budget_remaining(s, pid, "population")
    r = psi_project["client"].psi.intersect(items, dataset="population", column="resident_id", mode="cohort")
    truth = {k for v, k in zip(ids, keys, strict=True) if NORMALIZERS["resident_id"](v) in expected}
    with runtime.transaction() as s:
        row = get_cohort(s, pid, r.cohort_id)
        stored = set(load_cohort_keys(runtime.store, row).to_pylist())
        after = budget_remaining(s, pid, "population")
    assert stored == truth and row.size == len(truth)
    # 3x the stated 95% bound: a correct geometric mechanism exceeds it with probability ~1e-4
    assert abs(r.noisy_size - len(truth)) <= 3 * r.error_bound_95
    assert r.epsilon == "0.1" and before is not None and after is not None
    assert before.epsilon - after.epsilon == Decimal("0.1")
    assert r.invalid.count == invalid and not hasattr(r, "matches")


def test_cohort_on_open_data_and_intersection_agree(psi_project: dict[str, Any], runtime: Any) -> None:
    uscc, keys = column(SCALE, "enterprise_registry", "uscc", "enterprise_id")
    items, expected = operator_list(uscc, "uscc", n=300, inside=120, invalid=10)
    c = psi_project["client"]
    inter = c.psi.intersect(items, dataset="enterprise_registry", column="uscc")
    co = c.psi.intersect(items, dataset="enterprise_registry", column="uscc", mode="cohort")
    with runtime.transaction() as s:
        stored = set(
            load_cohort_keys(runtime.store, get_cohort(s, psi_project["project"], co.cohort_id)).to_pylist()
        )
    by_uscc = dict(zip(uscc, keys, strict=True))
    assert stored == {by_uscc[v] for v in expected} and inter.size == len(expected)


def test_setup_is_built_once_and_reused_across_sessions_and_projects(
    psi_project: dict[str, Any], api: Any, runtime: Any, hub: HubHandle
) -> None:
    uscc, _ = column(SCALE, "enterprise_registry", "uscc", "enterprise_id")
    items, _ = operator_list(uscc, "uscc", n=300, inside=100, invalid=0)
    c = psi_project["client"]
    first = c.psi.intersect(items, dataset="enterprise_registry", column="uscc", mode="cardinality")
    other = active_project(runtime, grants({"enterprise_registry": ["cardinality"]}), members=["bob"])
    bob = lab_client(api, hub.token_for("bob", ["operator"])).use(other)
    second = bob.psi.intersect(items[:200], dataset="enterprise_registry", column="uscc", mode="cardinality")
    with runtime.transaction() as s:
        arts = s.execute(select(PsiArtifactRow)).scalars().all()
        sessions = s.execute(select(PsiSessionRow)).scalars().all()
    assert sorted(a.kind for a in arts) == ["encrypted-set", "setup"]
    assert len({x.artifact_id for x in sessions}) == 1 and first.size >= second.size
    enc = next(a for a in arts if a.kind == "encrypted-set")
    assert enc.sealed and enc.object_key.startswith("psi/setups/enterprise_registry/")
    assert 0 < enc.server_size <= len(set(uscc))  # open data: no padding
    assert charges(runtime, psi_project["project"])["units"] == 1 and charges(runtime, other)["units"] == 1


def test_chunked_upload_in_parts(
    psi_project: dict[str, Any], runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings.psi, "part_items", 64)  # the API reads the runtime's settings
    uscc, _ = column(SCALE, "enterprise_registry", "uscc", "enterprise_id")
    items, expected = operator_list(uscc, "uscc", n=250, inside=100, invalid=5)
    r = psi_project["client"].psi.intersect(items, dataset="enterprise_registry", column="uscc")
    assert {NORMALIZERS["uscc"](x) for x in r.matches} == expected
    with runtime.transaction() as s:
        row = s.execute(select(PsiSessionRow).where(PsiSessionRow.record_id == r.record_id)).scalar_one()
    assert row.parts == 4 and row.status == "done"
    assert runtime.store.list_keys(runtime.store.cfg.bucket_work, f"projects/{row.project_id}/psi/") == []
