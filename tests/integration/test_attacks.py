"""A curious operator attacks the lab API; each test asserts what the lab does about it.

Callers hold real Hub tokens; the API runs in-process on SQLite and PostgreSQL. The world: alice's
active project ``a`` (DP on population and health_visits) with one DP answer and an approved product,
and bob's project ``b`` with a record of its own. Every refusal must be a 4xx problem document that
charges nothing and tells the caller nothing it may not know (no budget figures, no record ids).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lab.api.main import create_app
from lab.audit.models import AuditRequestRow
from lab.audit.service import AuditEntry, AuditWriter
from lab.identifiers import make_resident_id
from lab.identity import Principal, Role
from lab.products.tables import load_tables
from lab.projects.access import Ask, authorize, commit_result, no_channel_params
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from lab.shared.certificates import verify_certificate
from lab.web import auth
from tests.conftest import HubHandle
from tests.factories import active_project, sample_dir
from tests.integration._dp import SAMPLE_BASE, SCALE, dp_grant, import_dp_sample, remaining
from tests.integration.products.conftest import psi_record
from tests.integration.test_web_pages import login_as

pytestmark = [pytest.mark.integration, pytest.mark.hub]
PROBLEM = "application/problem+json"
COUNT = {"dataset": "population", "select": [{"agg": "count"}], "group_by": ["town"], "epsilon": "0.1"}


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


@dataclass
class World:
    a: str  # alice's project
    b: str  # bob's project
    record: str  # a DP answer of project a
    b_record: str
    product: str  # approved product of project a
    number: str  # its registration number
    alice: dict[str, str]
    bob: dict[str, str]
    bureau: dict[str, str]
    auditor: dict[str, str]
    registrar: dict[str, str]


@pytest.fixture
def world(api: TestClient, hub: HubHandle, runtime: Runtime) -> World:
    import_dp_sample(runtime)
    grant = {d: {"dp": dp_grant()} for d in ("population", "health_visits")}
    a = active_project(runtime, grant, members=["alice"])
    b = active_project(runtime, {"population": {"dp": dp_grant()}}, members=["bob"])
    tokens = {
        name: auth_header(hub.token_for(name, [group]))
        for name, group in (
            ("alice", "operator"),
            ("bob", "operator"),
            ("bureau1", "bureau"),
            ("auditor1", "auditor"),
            ("registry1", "registrar"),
        )
    }
    record = _ok(api.post(f"/api/v1/projects/{a}/dp/query", json=COUNT, headers=tokens["alice"]))["record_id"]
    b_record = _ok(api.post(f"/api/v1/projects/{b}/dp/query", json=COUNT, headers=tokens["bob"]))["record_id"]
    meta = {"project": a, "name": "乡镇人口报告", "type": "report", "derived_from": [record]}
    product = _ok(
        api.post(
            "/api/v1/products",
            data={"metadata": json.dumps(meta)},
            files={"artifact": ("towns.csv", "town,count\n城桥镇,41\n堡镇,37\n", "text/csv")},
            headers=tokens["alice"],
        ),
        201,
    )["id"]
    review = {"decision": "approve", "reason": "ok"}
    number = _ok(api.post(f"/api/v1/products/{product}/review", json=review, headers=tokens["bureau1"]))[
        "registration_number"
    ]
    return World(
        a,
        b,
        record,
        b_record,
        product,
        number,
        tokens["alice"],
        tokens["bob"],
        tokens["bureau1"],
        tokens["auditor1"],
        tokens["registry1"],
    )


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def problem(r: Any, *statuses: int) -> dict[str, Any]:
    """Assert ``r`` is one of ``statuses`` as an RFC 9457 problem document; return the document."""
    assert r.status_code in statuses, f"{r.status_code}: {r.text[:500]}"
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    doc = r.json()
    assert doc["status"] == r.status_code and doc["title"] and doc["detail"]
    return dict(doc)


def records_of(runtime: Runtime, project: str) -> int:
    with runtime.transaction() as s:
        q = select(func.count()).select_from(DerivedRecordRow).where(DerivedRecordRow.project_id == project)
        return int(s.execute(q).scalar_one())


@pytest.fixture
def unchanged(runtime: Runtime, world: World) -> Iterator[None]:
    """The test must leave project a's budget and derived records as they were."""
    before = (remaining(runtime, world.a), records_of(runtime, world.a))
    yield
    assert (remaining(runtime, world.a), records_of(runtime, world.a)) == before, "something was charged"


# -- 1. a non-member learns nothing about another project ------------------------------------------
def _bodies(w: World) -> dict[tuple[str, str], Any]:
    """A valid body for every project-scoped route (so that authorization, not validation, answers)."""
    table = {"dataset": "population", "statistic": {"agg": "count"}, "dims": ["town"], "epsilon": "0.1"}
    train = {"dataset": "population", "model": "linear", "features": ["age"], "target": "monthly_income"}
    members = {"users": ["bob"], "reason": "let me in"}
    psi = {"dataset": "population", "column": "resident_id", "mode": "cardinality", "size": 150}
    he_call = {"context": PATH_VALUES["{context_id}"], "records": 10, "model": "credit_score_v1"}
    return {
        ("GET", "/api/v1/projects/{project_id}"): None,
        ("GET", "/api/v1/projects/{project_id}/budget"): None,
        ("POST", "/api/v1/projects/{project_id}/check"): {
            "dataset": "population",
            "channel": "dp",
            "params": {"epsilon": "0.1"},
        },
        ("POST", "/api/v1/projects/{project_id}/review"): {"decision": "approve", "reason": "mine"},
        ("POST", "/api/v1/projects/{project_id}/resubmit"): {"note": "x"},
        ("POST", "/api/v1/projects/{project_id}/suspend"): {"reason": "x"},
        ("POST", "/api/v1/projects/{project_id}/resume"): {"reason": "x"},
        ("POST", "/api/v1/projects/{project_id}/end"): {"reason": "x"},
        ("POST", "/api/v1/projects/{project_id}/members"): members,
        ("DELETE", "/api/v1/projects/{project_id}/members"): {"users": ["alice"], "reason": "x"},
        ("POST", "/api/v1/projects/{project}/dp/query"): COUNT,
        ("POST", "/api/v1/projects/{project}/dp/preview"): COUNT,
        ("POST", "/api/v1/projects/{project}/dp/tables"): table,
        ("GET", "/api/v1/projects/{project}/dp/tables"): None,
        ("POST", "/api/v1/projects/{project}/dp/train"): {**train, "epsilon": "0.1"},
        ("GET", "/api/v1/projects/{project}/dp/models"): None,
        ("POST", "/api/v1/projects/{project}/psi/sessions"): psi,
        ("GET", "/api/v1/projects/{project}/psi/sessions/{session_id}"): None,
        ("GET", "/api/v1/projects/{project}/psi/sessions/{session_id}/setup"): None,
        ("POST", "/api/v1/projects/{project}/psi/sessions/{session_id}/request"): None,
        ("POST", "/api/v1/projects/{project}/psi/sessions/{session_id}/cohort"): None,
        ("POST", "/api/v1/projects/{project}/he/contexts"): None,
        ("GET", "/api/v1/projects/{project}/he/contexts"): None,
        ("DELETE", "/api/v1/projects/{project}/he/contexts/{context_id}"): None,
        ("GET", "/api/v1/projects/{project}/he/models"): None,
        ("GET", "/api/v1/projects/{project}/he/tables"): None,
        ("POST", "/api/v1/projects/{project}/he/plan/{op}"): he_call,
        ("POST", "/api/v1/projects/{project}/he/score"): None,
        ("POST", "/api/v1/projects/{project}/he/lookup"): None,
        ("POST", "/api/v1/projects/{project}/he/calls/{op}"): he_call,
        ("PUT", "/api/v1/projects/{project}/he/calls/{call_id}/parts/{part}"): None,
        ("POST", "/api/v1/projects/{project}/he/calls/{call_id}/commit"): None,
        ("DELETE", "/api/v1/projects/{project}/he/calls/{call_id}"): None,
    }


#: values for the path parameters other than the project (a channel's session, context or call)
PATH_VALUES = {
    "{session_id}": "psis_" + "0" * 32,
    "{context_id}": "hc_" + "0" * 32,
    "{call_id}": "hx_" + "0" * 32,
    "{op}": "score",
    "{part}": "0",
}


def test_a_non_member_gets_nothing_from_another_project(
    api: TestClient, world: World, runtime: Runtime, unchanged: None
) -> None:
    bodies = _bodies(world)
    scoped = {
        (method.upper(), path)
        for path, ops in api.get("/openapi.json").json()["paths"].items()
        if re.search(r"{project(_id)?}", path)
        for method in ops
    }
    assert scoped == set(bodies), "a project-scoped route has no attack here"
    secrets = [world.record, "epsilon_total", "epsilon_remaining", "remaining", "乡镇人口报告", world.product]
    for (method, path), body in sorted(bodies.items()):
        url = path.replace("{project_id}", world.a).replace("{project}", world.a)
        for name, value in PATH_VALUES.items():
            url = url.replace(name, value)
        r = api.request(method, url, json=body, headers=world.bob)
        doc = problem(r, 403, 404)
        assert not any(s in r.text for s in secrets), (method, path, doc)
        if "{project}" in path:  # the three channels answer a non-member alike: no such project
            assert (r.status_code, doc["code"]) == (404, "project-not-found"), (method, path, doc)

    # records and products of project a, through the routes that are not scoped by path
    problem(api.get("/api/v1/records", params={"project": world.a}, headers=world.bob), 403, 404)
    problem(api.get(f"/api/v1/records/{world.record}", headers=world.bob), 404)
    mine = _ok(api.get("/api/v1/records", headers=world.bob))
    assert [r["id"] for r in mine] == [world.b_record]
    assert _ok(api.get("/api/v1/records", params={"caller": "alice"}, headers=world.bob)) == []
    assert _ok(api.get("/api/v1/products", params={"project": world.a}, headers=world.bob)) == []
    for suffix in ("", "/artifact", "/certificate"):
        r = api.get(f"/api/v1/products/{world.product}{suffix}", headers=world.bob)
        problem(r, 403, 404)
        assert world.a not in r.text and "城桥镇" not in r.text
    meta = {"name": "mine now", "type": "report", "derived_from": [world.b_record]}
    r = api.post(
        f"/api/v1/products/{world.product}/versions",
        data={"metadata": json.dumps(meta)},
        files={"artifact": ("x.csv", "a\n1\n", "text/csv")},
        headers=world.bob,
    )
    problem(r, 403, 404)
    for action, body in (("review", {"decision": "reject", "reason": "x"}), ("revoke", {"reason": "x"})):
        problem(api.post(f"/api/v1/products/{world.product}/{action}", json=body, headers=world.bob), 403)
    # lineage naming another project's record is refused
    meta = {"project": world.b, "name": "stolen", "type": "report", "derived_from": [world.record]}
    r = api.post(
        "/api/v1/products",
        data={"metadata": json.dumps(meta)},
        files={"artifact": ("x.csv", "a\n1\n", "text/csv")},
        headers=world.bob,
    )
    if r.status_code == 201:  # registered, but the lineage check must fail it
        checks = {c["name"]: c["status"] for c in r.json()["latest"]["checks"]}
        assert checks["lineage"] == "fail" and not r.json()["latest"]["checks_passed"]
    else:
        problem(r, 400, 403, 404)


# -- 2. crafted DP specs: 4xx, no charge -----------------------------------------------------------
def _nested(depth: int) -> bytes:
    return b'{"dataset":"population","epsilon":"0.1","select":' + b"[" * depth + b"]" * depth + b"}"


def _raw(value: str) -> bytes:
    return ('{"dataset":"population","select":[{"agg":"count"}],"epsilon":' + value + "}").encode()


CRAFTED: list[tuple[str, Any]] = [
    ("10k aggregations", {**COUNT, "select": [{"agg": "count", "name": f"c{i}"} for i in range(10_000)]}),
    ("100k set members", {**COUNT, "where": [{"column": "town", "op": "in", "value": ["城桥镇"] * 100_000}]}),
    ("1000 filters", {**COUNT, "where": [{"column": "age", "op": "ge", "value": 1}] * 1000}),
    ("deep nesting", _nested(50_000)),
    ("NaN epsilon", _raw("NaN")),
    ("Infinity epsilon", _raw("Infinity")),
    ("-Infinity epsilon", _raw("-Infinity")),
    ("negative epsilon", {**COUNT, "epsilon": "-0.5"}),
    ("zero epsilon", {**COUNT, "epsilon": 0}),
    ("1000-digit epsilon", {**COUNT, "epsilon": "9" * 1000}),
    ("1000-digit tiny epsilon", {**COUNT, "epsilon": "0." + "0" * 998 + "1"}),
    ("tiny epsilon", {**COUNT, "epsilon": "1e-30"}),
    (
        "1000-digit epsilon share",
        {**COUNT, "epsilon": None, "select": [{"agg": "count", "epsilon": "1" * 1000}]},
    ),
    ("epsilon with 40 decimals", {**COUNT, "epsilon": "0." + "3" * 40}),
    ("NaN filter value", {**COUNT, "where": [{"column": "age", "value": "NaN"}]}),
    ("filter on the entity key", {**COUNT, "where": [{"column": "person_id", "value": "P0000001"}]}),
    (
        "filter on an identifier",
        {**COUNT, "where": [{"column": "resident_id", "value": "110101199003070000"}]},
    ),
    (
        "filter on a phone number",
        {**COUNT, "where": [{"column": "phone", "op": "in", "value": ["13800000000"]}]},
    ),
    ("group by an identifier", {**COUNT, "group_by": ["resident_id"]}),
    ("group by the entity key", {**COUNT, "group_by": ["person_id"]}),
    ("histogram of an identifier", {**COUNT, "select": [{"agg": "histogram", "column": "phone"}]}),
    ("mean of an identifier", {**COUNT, "select": [{"agg": "mean", "column": "resident_id"}]}),
    ("category outside the domain", {**COUNT, "where": [{"column": "town", "value": "不存在镇"}]}),
    ("number outside the bounds", {**COUNT, "where": [{"column": "age", "value": 500}]}),
    (
        "range outside the bounds",
        {**COUNT, "where": [{"column": "age", "op": "between", "value": [-5, 1000]}]},
    ),
    ("negative outside the bounds", {**COUNT, "where": [{"column": "age", "op": "lt", "value": -1}]}),
    ("set outside the bounds", {**COUNT, "where": [{"column": "age", "op": "in", "value": [30, 111]}]}),
    ("1000-digit filter value", {**COUNT, "where": [{"column": "age", "value": "1" * 1000}]}),
    ("malformed date", {**COUNT, "where": [{"column": "birth_date", "value": "1990-02-30"}]}),
    ("widened bounds", {**COUNT, "select": [{"agg": "mean", "column": "age", "bounds": [-1e308, 1e308]}]}),
    (
        "1000-digit quantile level",
        {**COUNT, "select": [{"agg": "quantile", "column": "age", "quantiles": ["0." + "5" * 1000]}]},
    ),
    ("dataset path traversal", {**COUNT, "dataset": "../population"}),
    ("cohort path traversal", {**COUNT, "cohort": "co_../../x"}),
    ("unknown cohort", {**COUNT, "cohort": "co_" + "0" * 32}),
    ("SQL in a column name", {**COUNT, "group_by": ['town" OR 1=1 --']}),
    ("SQL in a value", {**COUNT, "where": [{"column": "town", "value": "城桥镇' OR '1'='1"}]}),
    ("unknown field", {**COUNT, "sql": "SELECT * FROM population"}),
    ("over the per-query cap", {**COUNT, "epsilon": "1.5"}),
    ("delta that vanishes when split", {**COUNT, "delta": "1e-14", "noise": "gaussian"}),
]


def test_crafted_dp_specs_are_refused_and_charge_nothing(
    api: TestClient, world: World, runtime: Runtime, unchanged: None
) -> None:
    failures = []
    for name, body in CRAFTED:
        for path in ("query", "preview", "tables"):
            url = f"/api/v1/projects/{world.a}/dp/{path}"
            if isinstance(body, bytes):
                r = api.post(url, content=body, headers={**world.alice, "content-type": "application/json"})
            else:
                spec = {k: v for k, v in body.items() if v is not None}
                if path == "tables":  # the same selection as a table release (one statistic)
                    if len(body["select"]) > 1:
                        continue
                    spec = {k: v for k, v in spec.items() if k not in ("select", "group_by")}
                    spec.update(statistic=body["select"][0], dims=body.get("group_by") or ["town"])
                    spec.setdefault("epsilon", "0.1")
                r = api.post(url, json=spec, headers=world.alice)
            if path == "preview" and r.status_code == 200 and not r.json()["allowed"]:
                continue  # a preview may answer "not allowed"
            try:
                problem(r, 400, 403, 404, 409, 413, 422)
            except AssertionError as exc:
                failures.append(f"{name} ({path}): {exc}")
    assert not failures, "\n".join(failures)


def test_a_tiny_epsilon_over_many_aggregations_is_quick(api: TestClient, world: World) -> None:
    select = [
        {"agg": "quantile", "column": "age", "name": f"q{i}", "quantiles": ["0.1", "0.5", "0.9"]}
        for i in range(6)
    ]
    select += [{"agg": agg, "column": "monthly_income", "name": agg} for agg in ("sum", "mean", "variance")]
    spec = {**COUNT, "select": select, "group_by": ["town", "education"], "epsilon": "0.000001"}
    started = time.monotonic()
    answer = _ok(api.post(f"/api/v1/projects/{world.a}/dp/query", json=spec, headers=world.alice))
    assert time.monotonic() - started < 10 and answer["epsilon_spent"] == "0.000001"
    assert all(isinstance(row["value"], float) for row in answer["rows"])


def test_training_cannot_be_made_to_hang(api: TestClient, world: World, unchanged: None) -> None:
    """diffprivlib's bounded Laplace sampler takes ~1/ε draws: a tiny ε must be refused, not run."""
    url = f"/api/v1/projects/{world.a}/dp/train"
    spec = {"dataset": "population", "model": "gaussian_nb", "target": "education"}
    for features, eps in ((["age", "monthly_income"], "0.0000001"), (["age", "household_size"], "0.00001")):
        started = time.monotonic()
        problem(
            api.post(url, json={**spec, "features": features, "epsilon": eps}, headers=world.alice), 400, 422
        )
        assert time.monotonic() - started < 5


# -- 3. replaying a query --------------------------------------------------------------------------
def test_replaying_a_query_returns_the_cached_answer_for_free(
    api: TestClient, world: World, runtime: Runtime
) -> None:
    url = f"/api/v1/projects/{world.a}/dp/query"
    first = _ok(api.post(url, json=COUNT, headers=world.alice))
    assert first["cached"] is True and first["record_id"] == world.record  # the world made it already
    spelled = {"epsilon": "0.10", "group_by": ["town"], "select": [{"agg": "count"}], "dataset": "population"}
    before = (remaining(runtime, world.a), records_of(runtime, world.a))
    for body in (COUNT, spelled, {**COUNT, "epsilon": 0.1}, {**COUNT, "epsilon": "1e-1"}):
        again = _ok(api.post(url, json=body, headers=world.alice))
        assert again["cached"] and again["epsilon_spent"] == "0" and again["record_id"] == world.record
        assert again["rows"] == first["rows"], "a replay must be the same noisy answer"
    assert (remaining(runtime, world.a), records_of(runtime, world.a)) == before

    # any other question is a fresh answer at full price
    other = _ok(api.post(url, json={**COUNT, "group_by": ["gender"]}, headers=world.alice))
    assert not other["cached"] and other["epsilon_spent"] == "0.1"
    assert remaining(runtime, world.a).epsilon == before[0].epsilon - Decimal("0.1")
    assert records_of(runtime, world.a) == before[1] + 1

    # concurrent identical new queries: one charge, one answer
    spec = {**COUNT, "group_by": ["education"]}
    answers: list[dict[str, Any]] = []

    def ask() -> None:
        for _ in range(200):  # admission control lets two of one caller's heavy queries in at a time
            r = api.post(url, json=spec, headers=world.alice)
            if r.status_code != 429:
                answers.append(r.json())
                return
            time.sleep(0.1)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a["record_id"] for a in answers}) == 1 and sum(not a["cached"] for a in answers) == 1
    assert all(a["rows"] == answers[0]["rows"] for a in answers)
    assert records_of(runtime, world.a) == before[1] + 2

    # once the budget is gone, the replay is still served; a new question is refused
    spend = {**COUNT, "group_by": [], "epsilon": "1"}
    while remaining(runtime, world.a).epsilon >= 1:
        spend = {**spend, "select": [{"agg": "count", "name": f"n{records_of(runtime, world.a)}"}]}
        _ok(api.post(url, json=spend, headers=world.alice))
    assert _ok(api.post(url, json=COUNT, headers=world.alice))["rows"] == first["rows"]
    problem(api.post(url, json={**COUNT, "group_by": ["gender"], "epsilon": "1"}, headers=world.alice), 409)


# -- 4. bodies: oversized, streamed, not JSON ------------------------------------------------------
@pytest.fixture
def small_api(runtime: Runtime, api: TestClient) -> Iterator[TestClient]:
    """The same API with a 64 KiB body limit."""
    runtime.settings.max_request_bytes = 64 * 1024
    with TestClient(create_app(runtime=runtime)) as client:
        yield client


def test_oversized_and_malformed_bodies_are_problems(
    small_api: TestClient, world: World, runtime: Runtime, unchanged: None
) -> None:
    url = f"/api/v1/projects/{world.a}/dp/query"
    big = json.dumps({**COUNT, "name": "x" * 100_000}).encode()
    json_type = {**world.alice, "content-type": "application/json"}
    problem(small_api.post(url, content=big, headers=json_type), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must still hold
        yield b'{"dataset":"population","name":"'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    problem(small_api.post(url, content=chunks(), headers=json_type), 413)
    problem(small_api.post(url, content=b"\x89PNG\r\n\x1a\n\x00\x00", headers=json_type), 400, 422)
    problem(small_api.post(url, content=b"dataset=population", headers=world.alice), 400, 415, 422)
    problem(small_api.post(url, content=b'{"dataset": "popul', headers=json_type), 400, 422)
    problem(small_api.post(url, content=b"", headers=json_type), 400, 422)
    problem(
        small_api.post(url, content='"\udcff"'.encode("utf-8", "surrogatepass"), headers=json_type), 400, 422
    )
    problem(small_api.post(url, content=b"[]", headers={**json_type, "content-length": "abc"}), 400)
    problem(small_api.post(url, content=b"[]", headers={**json_type, "content-length": "-1"}), 400)
    # a multipart upload over the limit
    meta = {"project": world.a, "name": "big", "type": "report", "derived_from": [world.record]}
    files = {"artifact": ("big.csv", b"a\n" + b"1\n" * 40_000, "text/csv")}
    r = small_api.post(
        "/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice
    )
    problem(r, 413)


# -- 5. path traversal and odd file names ----------------------------------------------------------
TRAVERSALS = [
    "/api/v1/catalog/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/v1/catalog/population%2F..%2Fhealth_visits/schema",
    "/api/v1/catalog/..%2Fpopulation/dummy",
    "/api/v1/products/..%2F..%2Fetc%2Fpasswd/artifact",
    "/api/v1/products/%2E%2E/artifact",
    "/api/v1/records/..%2F..%2Fetc%2Fpasswd",
    "/api/v1/registry/..%2F..%2Fetc%2Fpasswd",
    "/api/v1/projects/..%2F..%2Fetc%2Fpasswd/budget",
    "/api/v1/projects/%00/dp/models",
    "/api/v1/catalog/population%00.parquet",
    "/api/v1/products?status=%00",
    "/api/v1/ledger/entries/99999999999999999999",
    "/api/v1/ledger/entries?start=99999999999999999999",
    "/api/v1/ledger/proof/inclusion/0?size=3000000000",
    "/api/v1/catalog/population?version=3000000000",
    "/api/v1/products?offset=3000000000",
    "/api/v1/records?offset=3000000000",
]


def test_traversal_nul_and_out_of_range_ids_are_4xx(api: TestClient, world: World) -> None:
    for url in TRAVERSALS:
        r = api.get(url, headers=world.bureau)
        problem(r, 400, 404, 422)
        assert "root:" not in r.text
    r = api.get("/ui/static/..%2F..%2F..%2Fsettings.py")
    assert r.status_code in (303, 400, 404) and "SecretStr" not in r.text


NAMES = [
    "../../../../tmp/evil.csv",
    "乡镇报告.csv",
    'a"; b=c.csv',
    "a\r\nX-Injected: 1.csv",
    "..",
    "x" * 400 + ".csv",
]
MEDIA = ["text/csv", "text/" + "x" * 300, "text/csv; charset=" + "y" * 200, "../../etc/passwd"]


def test_artifact_names_and_types_cannot_break_the_upload_or_download(api: TestClient, world: World) -> None:
    meta = {"project": world.a, "name": "报告", "type": "report", "derived_from": [world.record]}
    content = "town,count\n城桥镇,41\n"
    for filename, media in [(n, "text/csv") for n in NAMES] + [("r.csv", m) for m in MEDIA]:
        files = {"artifact": (filename, content, media)}
        r = api.post(
            "/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice
        )
        if r.status_code != 201:
            problem(r, 400, 422)
            continue
        stored = r.json()["latest"]["artifact"]
        assert not set("/\\\r\n") & set(stored["filename"]), stored
        assert len(stored["filename"]) <= 255 and len(stored["media_type"] or "") <= 128
        got = api.get(f"/api/v1/products/{r.json()['id']}/artifact", headers=world.alice)
        assert got.status_code == 200 and got.content == content.encode(), (filename, media)
        assert "x-injected" not in got.headers
        assert got.headers["content-disposition"].startswith("attachment; filename=")


def test_identifiers_beyond_the_scanned_columns_are_flagged_and_wide_files_read_fast(
    api: TestClient, world: World, tmp_path: Path
) -> None:
    people = pq.read_table(sample_dir(SCALE, SAMPLE_BASE) / "population.parquet", columns=["resident_id"])
    ids = people.column(0).to_pylist()[:50]
    header = [f"c{i}" for i in range(600)]
    rows = [[*(["1"] * 550), rid, *(["1"] * 49)] for rid in ids]  # resident ids in column 551
    hidden = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    wide = ",".join(f"c{i}" for i in range(1_000_000)) + "\n" + ",".join("1" * 1_000_000) + "\n"
    meta = {"project": world.a, "name": "报告", "type": "dataset", "derived_from": [world.record]}
    for name, content in (("hidden.csv", hidden), ("wide.csv", wide)):
        started = time.monotonic()
        files = {"artifact": (name, content, "text/csv")}
        r = api.post(
            "/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice
        )
        latest = _ok(r, 201)["latest"]
        assert time.monotonic() - started < 10, name
        checks = {c["name"]: c["status"] for c in latest["checks"]}
        assert checks["scan_limits"] == "fail" and not latest["checks_passed"], (name, checks)
        assert latest["status"] == "flagged"
    long = tmp_path / "long.csv"
    long.write_text("town,count\n" + "城桥镇,41\n" * 20, encoding="utf-8")
    [(_, frame)] = load_tables(long, "csv", max_rows=10)
    assert len(frame) == 10 and frame.attrs["partial"].startswith("more than 10 rows")


def test_malformed_project_requests_are_4xx(api: TestClient, world: World, unchanged: None) -> None:
    url = f"/api/v1/projects/{world.a}/check"
    for params in (
        {"units": "abc"},
        {"units": "²"},
        {"set_size": "many"},
        {"epsilon": "NaN"},
        {"epsilon": "0." + "0" * 998 + "1"},
        {"epsilon": 0.1, "sql": "1"},
    ):
        body = {"dataset": "population", "channel": "dp", "params": params}
        problem(api.post(url, json=body, headers=world.alice), 400, 422)
    psi = {"dataset": "population", "channel": "psi", "params": {"mode": "cohort", "set_size": "10"}}
    problem(api.post(url, json=psi, headers=world.alice), 400, 403, 422)
    application = {
        "title": "odd numbers",
        "purpose": "a purpose that is long enough",
        "scenario": "sce",
        "organization": "org",
        "contact": "c@example.com",
        "days": 30,
        "commitment": "我方承诺遵守数据安全规定",
    }
    for request in (
        {"population": {"dp": {"epsilon": "²"}}},
        {"population": {"dp": {"epsilon": "1e999999999"}}},
        {"population": {"dp": {"epsilon": "0." + "0" * 998 + "1"}}},
        {"population": {"dp": {"epsilon": "1", "delta": "NaN"}}},
        {"population": {"dp": {"epsilon": ["1"]}}},
        {"population": {"psi": {"modes": ["cohort"], "quota": "²"}}},
        {"population": {"psi": {"modes": ["cohort"], "quota": "9" * 4000}}},
        {"population": {"psi": {"modes": "cohort" * 10_000}}},
        {"population": {"he": {"record_quota": -1}}},
    ):
        r = api.post("/api/v1/projects", json={**application, "datasets": request}, headers=world.alice)
        problem(r, 400, 422)


# -- 6. NUL characters and values the database cannot hold: 4xx on both databases ------------------
def test_nul_characters_in_bodies_are_4xx(api: TestClient, world: World, runtime: Runtime) -> None:
    application = {
        "title": "t\u0000itle",
        "purpose": "a purpose that is long enough",
        "scenario": "sce",
        "organization": "org",
        "contact": "c@example.com",
        "datasets": {"population": {"dp": {"epsilon": "1"}}},
        "days": 30,
        "commitment": "我方承诺遵守数据安全规定",
    }
    r = api.post("/api/v1/projects", json=application, headers=world.alice)
    problem(r, 400, 422)
    r = api.post(f"/api/v1/projects/{world.a}/suspend", json={"reason": "x\u0000y"}, headers=world.bureau)
    problem(r, 400, 422)
    assert _ok(api.get(f"/api/v1/projects/{world.a}", headers=world.alice))["status"] == "active"
    meta = {"project": world.a, "name": "a\u0000b", "type": "report", "derived_from": [world.record]}
    files = {"artifact": ("r.csv", "town,count\n城桥镇,41\n", "text/csv")}
    r = api.post("/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice)
    problem(r, 400, 422)
    table = {
        "dataset": "population",
        "statistic": {"agg": "quantile", "column": "monthly_income", "quantiles": ["0.5" + "0" * 60 + "1"]},
        "dims": ["town"],
        "epsilon": "0.1",
    }
    r = api.post(f"/api/v1/projects/{world.a}/dp/tables", json=table, headers=world.alice)
    problem(r, 400, 422)


def test_one_unstorable_request_does_not_erase_the_audit_of_others(
    api: TestClient, world: World, runtime: Runtime
) -> None:
    problem(api.get("/api/v1/projects/p%00x/budget", headers=world.bob), 400)  # refused before routing
    problem(api.get(f"/api/v1/projects/{world.a}/budget", headers=world.bob), 404)  # the probe
    r = api.get("/api/v1/audit/requests", params={"user": "bob"}, headers=world.bureau)
    assert "/api/v1/projects/{project_id}/budget" in [e["route"] for e in _ok(r)]

    # a batch holding one entry the database refuses (PostgreSQL: NUL, too long) keeps the others
    writer = AuditWriter(runtime.sessions)
    now = dt.datetime.now(dt.UTC)
    entries = [
        AuditEntry(now, name, None, "GET", "/api/v1/me", 200, "ok", 1.0)
        for name in ("probe-1", "x\u0000" + "y" * 300, "probe-2")
    ]
    postgres = runtime.settings.db_url.startswith("postgresql")
    assert writer._write(entries) == (2 if postgres else 3) and writer.failed == (1 if postgres else 0)
    with runtime.transaction() as s:
        names = set(s.execute(select(AuditRequestRow.principal)).scalars())
    assert {"probe-1", "probe-2"} <= names


# -- 7. a project suspended (or ended) mid-session -------------------------------------------------
def test_a_suspended_project_serves_nothing_to_a_live_session(
    api: TestClient, world: World, runtime: Runtime
) -> None:
    url = f"/api/v1/projects/{world.a}/dp"
    fresh = {**COUNT, "group_by": ["gender"]}
    assert not _ok(api.post(f"{url}/preview", json=fresh, headers=world.alice))["cached"]
    _ok(api.post(f"/api/v1/projects/{world.a}/suspend", json={"reason": "audit"}, headers=world.bureau))
    before = (remaining(runtime, world.a), records_of(runtime, world.a))
    table = {"dataset": "population", "statistic": {"agg": "count"}, "dims": ["town"], "epsilon": "0.1"}
    train = {"dataset": "population", "model": "linear", "features": ["age"], "target": "monthly_income"}
    for path, body in (
        ("query", fresh),
        ("query", COUNT),  # not even the replay of an earlier answer
        ("preview", fresh),
        ("tables", table),
        ("train", {**train, "epsilon": "0.1"}),
    ):
        doc = problem(api.post(f"{url}/{path}", json=body, headers=world.alice), 403)
        assert doc["code"] == "project-inactive", doc
    meta = {"project": world.a, "name": "late", "type": "report", "derived_from": [world.record]}
    files = {"artifact": ("r.csv", "town,count\n城桥镇,41\n", "text/csv")}
    r = api.post("/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice)
    problem(r, 403)
    check = {"dataset": "population", "channel": "dp", "params": {"epsilon": "0.1"}}
    problem(api.post(f"/api/v1/projects/{world.a}/check", json=check, headers=world.alice), 403)
    assert (remaining(runtime, world.a), records_of(runtime, world.a)) == before

    _ok(api.post(f"/api/v1/projects/{world.a}/resume", json={"reason": "ok"}, headers=world.bureau))
    assert _ok(api.post(f"{url}/query", json=COUNT, headers=world.alice))["cached"]
    _ok(api.post(f"/api/v1/projects/{world.a}/end", json={"reason": "done"}, headers=world.bureau))
    problem(api.post(f"{url}/query", json=fresh, headers=world.alice), 403)
    assert records_of(runtime, world.a) == before[1]


# -- 8. records, registry, artifacts ----------------------------------------------------------------
def test_the_public_registry_leaks_no_lineage_and_no_artifact(
    api: TestClient, world: World, runtime: Runtime
) -> None:
    anonymous = TestClient(api.app)
    entry = _ok(anonymous.get(f"/api/v1/registry/{world.number}"))
    assert entry["status"] == "registered"
    cert = _ok(api.get(f"/api/v1/products/{world.product}/certificate", headers=world.alice))
    status = _ok(
        anonymous.get(
            f"/api/v1/registry/{world.number}/status", params={"since": cert["ledger"]["tree_size"]}
        )
    )
    for doc in (entry, status):
        text = json.dumps(doc, ensure_ascii=False)
        for secret in (world.record, world.a, world.product, "alice", "derived_from", "town,count", "城桥镇"):
            assert secret not in text, (secret, text[:2000])
    keys = _ok(api.get("/api/v1/ledger/keys", headers=world.alice))
    report = verify_certificate(cert, status=status, trusted_keys=keys)
    assert report.ok and report.status == "valid", report.reason
    problem(anonymous.get(f"/api/v1/products/{world.product}/artifact"), 401)
    problem(anonymous.get("/api/v1/registry/CMDL-2026-999999"), 404)


def test_a_long_lineage_over_a_long_log_is_approved_and_proven_quickly(
    api: TestClient, world: World, runtime: Runtime
) -> None:
    """Proofs share one pass over the leaves: 201 proofs over a 30,000-entry log took ~16 s
    per public status request when each proof re-read and re-hashed the whole log."""
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        for start in range(0, 30_000, 5_000):
            ledger.append_many([("psi.key_epoch", {"epoch": start + i}, "sweep") for i in range(5_000)])
        alice = Principal("alice", frozenset({Role.operator}))
        access = authorize(
            s, alice, world.a, "health_visits", "dp", "q", Ask.spend("0.1"), check=no_channel_params
        )
        lineage = [
            commit_result(s, ledger, access, parameters={"n": i}, result_digest=f"{i:064x}").id
            for i in range(199)
        ]
    meta = {"project": world.a, "name": "long", "type": "report", "derived_from": [world.record, *lineage]}
    files = {"artifact": ("r.csv", "town,count\n城桥镇,41\n", "text/csv")}
    r = api.post("/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice)
    product = _ok(r, 201)["id"]
    started = time.monotonic()
    review = {"decision": "approve", "reason": "ok"}
    number = _ok(api.post(f"/api/v1/products/{product}/review", json=review, headers=world.bureau))[
        "registration_number"
    ]
    cert = _ok(api.get(f"/api/v1/products/{product}/certificate", headers=world.alice))
    status = _ok(api.get(f"/api/v1/registry/{number}/status", params={"since": cert["ledger"]["tree_size"]}))
    assert time.monotonic() - started < 10
    assert (
        len(status["entries"]) == 201
        and verify_certificate(
            cert, status=status, trusted_keys=_ok(api.get("/api/v1/ledger/keys", headers=world.alice))
        ).ok
    )


def test_artifacts_are_for_the_projects_members_and_the_bureau(api: TestClient, world: World) -> None:
    url = f"/api/v1/products/{world.product}/artifact"
    for who in (world.alice, world.bureau):
        r = api.get(url, headers=who)
        assert r.status_code == 200 and r.content.startswith(b"town,count")
    for who in (world.bob, world.auditor, world.registrar):
        r = api.get(url, headers=who)
        problem(r, 403, 404)
        assert b"town,count" not in r.content
    # registrars and auditors still read the product's metadata and certificate
    for who in (world.auditor, world.registrar):
        assert _ok(api.get(f"/api/v1/products/{world.product}", headers=who))["id"] == world.product


def test_records_endpoint_lists_only_ones_own_projects(api: TestClient, world: World) -> None:
    for who, project, record, other in (
        (world.alice, world.a, world.record, world.b_record),
        (world.bob, world.b, world.b_record, world.record),
    ):
        listed = _ok(api.get("/api/v1/records", params={"limit": 1000}, headers=who))
        assert {r["project"] for r in listed} == {project} and record in {r["id"] for r in listed}
        for params in (
            {"channel": "dp"},
            {"caller": "alice"},
            {"caller": "bob"},
            {"since": "2000-01-01T00:00:00Z"},
        ):
            got = _ok(api.get("/api/v1/records", params=params, headers=who))
            assert other not in {r["id"] for r in got}
        problem(api.get(f"/api/v1/records/{other}", headers=who), 404)
    everything = _ok(api.get("/api/v1/records", headers=world.bureau))
    assert {world.record, world.b_record} <= {r["id"] for r in everything}


def test_the_ledger_withholds_other_projects_entries(api: TestClient, world: World) -> None:
    from lab.shared.standalone import verify_inclusion_document

    def entries(who: dict[str, str]) -> list[dict[str, Any]]:
        return list(_ok(api.get("/api/v1/ledger/entries", params={"limit": 1000}, headers=who)))

    about_a = [e for e in entries(world.bureau) if (e["entry"].get("body") or {}).get("project") == world.a]
    assert about_a and any(e["entry"]["body"].get("record") == world.record for e in about_a)
    seen_by_bob = {e["index"]: e for e in entries(world.bob)}
    for e in about_a:
        shown = seen_by_bob[e["index"]]
        assert shown["entry"] == {"kind": e["kind"], "v": 1, "time": e["entry"]["time"], "withheld": True}
        assert shown["leaf_hash"] == e["leaf_hash"]
    text = json.dumps(list(seen_by_bob.values()), ensure_ascii=False)
    assert world.record not in text and world.a not in text and "乡镇人口报告" not in text
    assert any(e["kind"] == "catalog.dataset_version" and "body" in e["entry"] for e in seen_by_bob.values())
    assert any((e["entry"].get("body") or {}).get("record") == world.b_record for e in seen_by_bob.values())
    alice_sees = {e["index"]: e for e in entries(world.alice)}
    assert all(alice_sees[e["index"]]["entry"] == e["entry"] for e in about_a)

    index = next(e["index"] for e in about_a if e["kind"] == "derived.record")
    proof = _ok(api.get(f"/api/v1/ledger/proof/inclusion/{index}", headers=world.bob))
    assert proof["entry"]["withheld"] is True and world.record not in json.dumps(proof)
    ok, why = verify_inclusion_document(proof, _ok(api.get("/api/v1/ledger/keys", headers=world.bob)))
    assert ok and why.startswith("withheld entry"), why
    assert _ok(api.get(f"/api/v1/ledger/entries/{index}", headers=world.bob))["entry"]["withheld"]
    assert _ok(api.get(f"/api/v1/ledger/entries/{index}", headers=world.auditor))["entry"]["body"]


# -- 9. the bureau's review form ---------------------------------------------------------------------
def test_odd_values_in_the_review_form_are_a_400_page(
    api: TestClient, world: World, runtime: Runtime, hub: HubHandle
) -> None:
    from lab.projects.models import ProjectStatus

    pending = active_project(
        runtime, {"population": {"dp": dp_grant()}}, members=["alice"], status=ProjectStatus.pending
    )
    session = auth.WebSession.new(world.bureau["Authorization"].split()[1], "bureau1")
    api.cookies.set(auth.SESSION_COOKIE, session.cookie(runtime.settings))
    csrf = auth.csrf_token(runtime.settings, session)
    for days in ("²", "٣", "9" * 5000, "-1", "1e3"):
        form = {"csrf_token": csrf, "decision": "approve", "keep.population.dp": "on", "days": days}
        r = api.post(f"/ui/projects/{pending}/review", data=form, follow_redirects=False)
        assert r.status_code in (303, 400), (days, r.status_code)
        assert "text/html" in r.headers["content-type"] or r.status_code == 303


# -- 17.1 identifiers in disguise and counts under other names are flagged --------------------------
def _real_ids(n: int) -> list[str]:
    people = pq.read_table(sample_dir(SCALE, SAMPLE_BASE) / "population.parquet", columns=["resident_id"])
    return [str(x) for x in people.column(0).to_pylist()[:n]]


def _decoys(n: int) -> list[str]:
    """Valid resident ids (check characters right) that are in no dataset: born on 1 January 1901."""
    return [make_resident_id("650101", dt.date(1901, 1, 1), i) for i in range(n)]


def _table_bytes(frame: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(frame, sink)
    return sink.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return sink.getvalue()


def _disguises(real: list[str]) -> list[tuple[str, str, bytes]]:
    """(what, filename, content): a few real resident ids hidden the ways an operator would try."""
    few = real[:3]
    decoys = _decoys(600)
    lines = lambda rows: ("\n".join(rows) + "\n").encode()  # noqa: E731
    return [
        ("diluted among 600 valid decoys", "ids.csv", lines(["id", *decoys[:300], *few, *decoys[300:]])),
        ("prefixed RID:", "ids.csv", lines(["ref", *(f"RID:{r}" for r in few)])),
        ("suffixed", "ids.csv", lines(["ref", *(f"{r}-2024-ok" for r in few)])),
        ("semicolons in a .csv", "ids.csv", lines(["a;id;b", *(f"x;{r};y" for r in few)])),
        ("tabs in a .csv", "ids.csv", lines(["a\tid\tb", *(f"x\t{r}\ty" for r in few)])),
        ("pipes in a .csv", "ids.csv", lines(["a|id|b", *(f"x|{r}|y" for r in few)])),
        ("reversed", "ids.csv", lines(["di", *(r[::-1] for r in few)])),
        ("split across two columns", "ids.csv", lines(["head,tail", *(f"{r[:9]},{r[9:]}" for r in few)])),
        ("split, columns swapped", "ids.csv", lines(["tail,head", *(f"{r[9:]},{r[:9]}" for r in few)])),
        ("md5", "ids.csv", lines(["h", *(hashlib.md5(r.encode()).hexdigest() for r in few)])),
        ("sha1", "ids.csv", lines(["h", *(hashlib.sha1(r.encode()).hexdigest() for r in few)])),
        ("sha256", "ids.csv", lines(["h", *(hashlib.sha256(r.encode()).hexdigest() for r in few)])),
        ("JSON value in a cell", "ids.csv", lines(["k,v", *(f'k,"{{""p"": [""{r}""]}}"' for r in few)])),
        ("Parquet list column", "ids.parquet", _table_bytes(pa.table({"l": [[r, "x"] for r in few]}))),
        (
            "Parquet struct column",
            "ids.parquet",
            _table_bytes(pa.table({"s": [{"who": {"id": r}} for r in few]})),
        ),
        ("JSON records", "ids.json", json.dumps({"rows": [{"p": {"id": r}} for r in few]}).encode()),
        ("JSON list", "ids.json", json.dumps([[1, r] for r in few]).encode()),
        ("JSON lines", "ids.jsonl", lines([json.dumps({"x": r}) for r in few])),
        ("plain text", "notes.txt", lines([f"contact {r} tomorrow" for r in few])),
        ("ZIP of a CSV", "bundle.zip", _zip({"inner/ids.csv": lines(["a;id", *(f"x;{r}" for r in few)])})),
        ("ZIP of JSON", "bundle.zip", _zip({"ids.json": json.dumps({"ids": few}).encode()})),
    ]


def test_identifiers_in_disguise_are_flagged(api: TestClient, world: World) -> None:
    meta = {"project": world.a, "name": "名单", "type": "dataset", "derived_from": [world.record]}
    missed = []
    for what, name, content in _disguises(_real_ids(50)):
        r = api.post(
            "/api/v1/products",
            data={"metadata": json.dumps(meta)},
            files={"artifact": (name, content, "application/octet-stream")},
            headers=world.alice,
        )
        latest = _ok(r, 201)["latest"]
        ids = next(c for c in latest["checks"] if c["name"] == "identifiers")
        if ids["status"] != "fail" or latest["status"] != "flagged":
            missed.append(what)
            continue
        assert {c["dataset"] for c in ids["data"]["columns"]} <= {"population", "health_visits"}, what
        assert all(i not in json.dumps(latest) for i in _real_ids(3)), "the check echoed an identifier"
    assert not missed, f"not flagged: {missed}"
    # the same shapes with decoys only pass: the check matches real identifiers, not patterns
    clean = [("decoys only", "ids.csv", ("id\n" + "\n".join(_decoys(600)) + "\n").encode())]
    for _what, name, content in clean:
        files = {"artifact": (name, content, "text/csv")}
        r = api.post(
            "/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice
        )
        assert (
            next(c for c in _ok(r, 201)["latest"]["checks"] if c["name"] == "identifiers")["status"] == "pass"
        )


def test_what_was_not_scanned_is_shown_and_flagged(
    api: TestClient, world: World, runtime: Runtime, hub: HubHandle
) -> None:
    meta = {"project": world.a, "name": "附件", "type": "dataset", "derived_from": [world.record]}
    bundle = _zip({"towns.csv": "town,count\n城桥镇,41\n".encode(), "scan.pdf": b"%PDF-1.4 ..."})
    files = {"artifact": ("bundle.zip", bundle, "application/zip")}
    r = api.post("/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice)
    latest = _ok(r, 201)["latest"]
    checks = {c["name"]: c for c in latest["checks"]}
    assert checks["coverage"]["data"]["scanned"] == [{"table": "towns.csv", "rows": 1, "columns": 2}]
    assert checks["coverage"]["data"]["not_scanned"] == ["scan.pdf: a member the checks cannot read"]
    assert checks["scan_limits"]["status"] == "fail" and latest["status"] == "flagged"
    login_as(api, runtime, hub, "bureau1", ["bureau"])
    for lang, words in (("en", ["Scanned in full", "Not scanned"]), ("zh", ["已完整扫描", "未扫描"])):
        page = api.get(f"/services/lab-api/ui/products/{r.json()['id']}?lang={lang}")
        assert page.status_code == 200 and "scan.pdf" in page.text and "towns.csv" in page.text
        assert all(w in page.text for w in words), lang
    api.cookies.clear()


def test_small_counts_under_other_names_are_flagged(api: TestClient, world: World, runtime: Runtime) -> None:
    grant = {"population": {"psi": {"modes": ["cohort"], "quota": 20}}}  # cohort: its only PSI mode
    project = active_project(runtime, grant, members=["alice"])
    record = psi_record(runtime, project, dataset="population", mode="cohort", column="resident_id")
    meta = {"project": project, "name": "匹配人数", "type": "report", "derived_from": [record]}
    missed = []
    for column in ("total", "headcount", "members_matched", "n_people", "value", "合计"):
        content = f"town,{column}\n城桥镇,1\n堡镇,2\n新河镇,3\n陈家镇,250\n"
        files = {"artifact": ("counts.csv", content, "text/csv")}
        r = api.post(
            "/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice
        )
        chk = next(c for c in _ok(r, 201)["latest"]["checks"] if c["name"] == "small_counts")
        if chk["status"] != "fail" or chk["data"]["cells"][0]["cells"] != 3:
            missed.append(column)
    assert not missed, f"small counts passed in columns {missed}"
    # a dimension with small whole numbers is not a count: it is not flagged
    files = {"artifact": ("c.csv", "year,rank,total\n2024,1,250\n2025,2,300\n", "text/csv")}
    r = api.post("/api/v1/products", data={"metadata": json.dumps(meta)}, files=files, headers=world.alice)
    assert next(c for c in _ok(r, 201)["latest"]["checks"] if c["name"] == "small_counts")["status"] == "pass"


# -- 17.3 a changed application voids the approvals given so far ------------------------------------
def _changes(api: TestClient, project: str, who: dict[str, str], step: str) -> None:
    """One change to a pending application, made by its applicant between two approvals."""
    url = f"/api/v1/projects/{project}/members"
    if step == "add":
        _ok(api.post(url, json={"users": ["mallory"], "reason": "late addition"}, headers=who))
    elif step == "remove":
        _ok(api.request("DELETE", url, json={"users": ["bob"], "reason": "swap"}, headers=who))
    else:  # add and remove again: the same application in the end, but not the one reviewed step by step
        _ok(api.post(url, json={"users": ["mallory"], "reason": "x"}, headers=who))
        _ok(api.request("DELETE", url, json={"users": ["mallory"], "reason": "x"}, headers=who))


@pytest.mark.parametrize("step", ["add", "remove", "add then remove"])
def test_a_change_between_approvals_voids_them(
    api: TestClient, world: World, hub: HubHandle, runtime: Runtime, step: str
) -> None:
    from tests.integration._projects import application

    bureau2 = auth_header(hub.token_for("bureau2", ["bureau"]))
    body = application(members=["alice", "bob"], datasets={"population": {"dp": {"epsilon": "1.0"}}})
    project = _ok(api.post("/api/v1/projects", json=body, headers=world.alice), 201)["id"]
    approve = {"decision": "approve", "reason": "fine"}
    first = _ok(api.post(f"/api/v1/projects/{project}/review", json=approve, headers=world.bureau))
    assert first["status"] == "pending" and first["approvals"]["by"] == ["bureau1"]
    _changes(api, project, world.alice, step)
    second = _ok(api.post(f"/api/v1/projects/{project}/review", json=approve, headers=bureau2))
    assert second["status"] == "pending", "the second approval activated a changed application"
    assert second["approvals"]["by"] == ["bureau2"]
    changes = second["approvals"]["changes"]
    assert changes and changes[0]["voided"] == ["bureau1"] and changes[0]["actor"] == "alice"
    # the void is in the ledger, where the reviewers (and auditors) can verify it
    with runtime.transaction() as s:
        entry = runtime.ledger(s).entry(changes[0]["ledger_index"]).entry
    assert entry["body"]["details"]["voids_approvals"] == ["bureau1"]
    # the first reviewer approves the application as it now is: now it is active, with whoever is in it
    done = _ok(api.post(f"/api/v1/projects/{project}/review", json=approve, headers=world.bureau))
    assert done["status"] == "active"
    members = {m["username"] for m in done["members"] if m["removed_at"] is None}
    approved = [e for e in done["events"] if e["action"] == "approve"][-2:]
    assert all(set(e["details"]["members"]) == members for e in approved)


# -- 17.5 / 17.6 from the outside: a real uvicorn worker, one caller's requests vs everyone else's ---
def _settings_env(settings: Any, prefix: str = "LAB_") -> dict[str, str]:
    """The ``LAB_*`` environment that makes a fresh process load these settings."""
    from pydantic import BaseModel, SecretStr

    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        key = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            env.update(_settings_env(value, key + "__"))
        elif isinstance(value, SecretStr):
            env[key] = value.get_secret_value()
        elif isinstance(value, (list, tuple, dict, set)):
            env[key] = json.dumps(sorted(value) if isinstance(value, set) else value)
        elif value is not None:
            env[key] = str(value)
    return env


@dataclass
class Served:
    url: str
    process: Any


@pytest.fixture
def served(runtime: Runtime, hub: HubHandle, world: World) -> Iterator[Served]:
    """The lab API as its own uvicorn process (as the Hub runs it) over the world's database and storage."""
    import os
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(_settings_env(runtime.settings))
    env["LAB_ADMISSION__MAX_COST"] = "2e7"  # two heavy sample queries at once exceed it (one alone runs)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "lab.api.main:app_factory", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(runtime.settings.data_dir / "uvicorn.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            log = (runtime.settings.data_dir / "uvicorn.log").read_text(errors="replace")
            raise RuntimeError(f"the lab API did not start: {log[-2000:]}")
        yield Served(url, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _catalog_while(
    served: Served, who: dict[str, str], attack: Any
) -> tuple[list[Any], list[float], list[int]]:
    """Run ``attack`` (a list of request thunks) concurrently with ten plain catalog reads by ``who``."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    latencies: list[float] = []
    statuses: list[int] = []

    def read() -> None:
        with httpx.Client(base_url=served.url, timeout=60) as http:
            for _ in range(10):
                t = time.monotonic()
                statuses.append(http.get("/api/v1/catalog", headers=who).status_code)
                latencies.append(time.monotonic() - t)
                time.sleep(0.05)

    with ThreadPoolExecutor(len(attack) + 1) as pool:
        reader = pool.submit(read)
        answers = [f.result() for f in [pool.submit(a) for a in attack]]
        reader.result()
    return answers, latencies, statuses


def _post(served: Served, path: str, body: Any, who: dict[str, str]) -> Any:
    import httpx

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**who, "content-type": "application/json"}
    return httpx.post(f"{served.url}{path}", content=raw, headers=headers, timeout=120)


def _bad_previews(project: str) -> dict[str, Any]:
    url = f"/api/v1/projects/{project}/dp/preview"
    mean = {"agg": "mean", "column": "age"}
    quantile = {"agg": "quantile", "column": "monthly_income", "quantiles": ["0.5"]}
    return {
        "overflowing bounds": (url, {**COUNT, "select": [{**mean, "bounds": ["0", "1e5000000"]}]}),
        "bounds equal as floats": (
            url.replace("/preview", "/query"),
            {**COUNT, "select": [{**quantile, "bounds": ["30", "30.0000000000000000001"]}]},
        ),
        "overflowing bounds in a table release": (
            url.replace("/preview", "/tables"),
            {
                "dataset": "population",
                "statistic": {"agg": "sum", "column": "monthly_income", "bounds": ["-1e5000000", "0"]},
                "dims": ["town"],
                "epsilon": "0.1",
            },
        ),
    }


@pytest.mark.parametrize(
    "variant", ["overflowing bounds", "bounds equal as floats", "overflowing bounds in a table release"]
)
def test_one_callers_failing_requests_do_not_hurt_others(served: Served, world: World, variant: str) -> None:
    path, body = _bad_previews(world.a)[variant]
    pid = served.process.pid
    attack = [lambda: _post(served, path, body, world.alice) for _ in range(10)]
    answers, latencies, statuses = _catalog_while(served, world.bob, attack)
    for r in answers:
        assert r.status_code < 500, f"{variant}: {r.status_code} {r.text[:200]}"
        assert 400 <= r.status_code < 500 and len(r.content) < 2048, (variant, len(r.content))
    assert statuses == [200] * 10, statuses
    assert max(latencies) < 5, latencies
    assert served.process.poll() is None and served.process.pid == pid, "the worker died"


def _heavy(project: str, i: int) -> tuple[str, dict[str, Any]]:
    levels = [f"0.{j:02d}" for j in range(5, 100, 5)]  # 19 levels
    columns = ["age", "monthly_income", "household_size", "employed", "age"]
    select = [
        {"agg": "quantile", "column": c, "quantiles": levels, "name": f"q{k}"} for k, c in enumerate(columns)
    ]
    body = {
        "dataset": "population",
        "select": select,
        "group_by": ["town", "education", "gender"],
        "epsilon": f"0.00{i + 1}",
    }
    return f"/api/v1/projects/{project}/dp/query", body


def _busy(r: Any) -> None:
    assert r.status_code == 429, r.text[:300]
    doc = r.json()
    assert doc["code"] == "busy" and doc["status"] == 429 and len(r.content) < 1024
    assert 1 <= int(r.headers["retry-after"]) <= 3600


@pytest.mark.parametrize("variant", ["one caller", "one project, two callers", "two projects, cost"])
def test_heavy_queries_are_admitted_within_limits_and_light_ones_stay_fast(
    served: Served, world: World, runtime: Runtime, hub: HubHandle, variant: str
) -> None:
    from lab.projects.members import add_members

    callers: list[tuple[str, dict[str, str]]]
    if variant == "one caller":
        callers = [(world.a, world.alice)] * 6
    elif variant == "one project, two callers":
        with runtime.transaction() as s:
            add_members(
                s, runtime.ledger(s), Principal("bureau1", frozenset({Role.bureau})), world.a, ["carol"]
            )
        carol = auth_header(hub.token_for("carol", ["operator"]))
        callers = [(world.a, world.alice), (world.a, carol)] * 3
    else:
        callers = [(world.a, world.alice), (world.b, world.bob)]
    jobs = [_heavy(project, i) for i, (project, _) in enumerate(callers)]
    attack = [
        (lambda path=path, body=body, who=who: _post(served, path, body, who))
        for (path, body), (_, who) in zip(jobs, callers, strict=True)
    ]
    answers, latencies, statuses = _catalog_while(served, world.bob, attack)
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert ok, [r.text[:200] for r in answers]
    assert refused, "every heavy query was admitted at once"
    for r in refused:
        _busy(r)
    assert statuses == [200] * 10 and max(latencies) < 5, latencies
