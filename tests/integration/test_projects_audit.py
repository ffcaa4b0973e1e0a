"""Every API request is audited (no tokens, no payloads); the bureau sees anomalies."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select, text

from lab.audit.models import AuditRequestRow
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.integration._projects import People, application, apply_and_approve, auth, import_catalog, spend

pytestmark = [pytest.mark.integration, pytest.mark.hub]
P = "/api/v1/projects"


@pytest.fixture
def people(api: Any, hub: HubHandle, runtime: Runtime) -> People:
    import_catalog(runtime, ["population", "enterprise_registry"])
    return People(hub)


def _rows(api: Any, runtime: Runtime) -> list[AuditRequestRow]:
    api.app.state.audit_writer.flush()
    with runtime.transaction() as s:
        return list(s.execute(select(AuditRequestRow).order_by(AuditRequestRow.id)).scalars())


def test_requests_are_recorded_with_route_template_and_project_but_no_secrets(
    api: Any, runtime: Runtime, people: People
) -> None:
    body = application()
    r = api.post(P, json=body, headers=auth(people.alice))
    pid = r.json()["id"]
    api.get(f"/services/lab-api{P}/{pid}", headers=auth(people.alice))
    api.get(f"{P}/{pid}", headers=auth("not-a-token"))
    api.post(
        P, json={"project": pid, "secret": "s3cr3t"}, headers=auth(people.bob)
    )  # a body names no project
    api.get("/api/v1/nowhere", headers=auth(people.bob))
    api.get(P, params={"project": pid, "token": people.bob}, headers=auth(people.bob))
    rows = _rows(api, runtime)
    got = [(r.principal, r.project_id, r.method, r.route, r.status, r.outcome) for r in rows]
    assert got[:6] == [
        ("alice", None, "POST", P, 201, "ok"),
        ("alice", pid, "GET", f"{P}/{{project_id}}", 200, "ok"),
        (None, pid, "GET", f"{P}/{{project_id}}", 401, "unauthenticated"),
        ("bob", None, "POST", P, 422, "validation"),
        (None, None, "GET", "(no route)", 404, "http-404"),
        ("bob", pid, "GET", P, 200, "ok"),
    ]
    assert all(r.latency_ms > 0 for r in rows)
    dump = repr([[getattr(r, c.name) for c in AuditRequestRow.__table__.columns] for r in rows])
    for secret in (people.alice, people.bob, "not-a-token", "s3cr3t", body["purpose"]):
        assert secret not in dump


def test_every_channel_request_is_attributed_to_its_paths_project(
    api: Any, runtime: Runtime, people: People
) -> None:
    """DP, PSI and HE alike: the project is the path's, answered or refused, whether or not the route
    read its body, and whatever project a body or frame header names; what is no project's has none."""
    pid = apply_and_approve(api, people)["id"]
    base = f"{P}/{pid}"
    frame = {"content-type": "application/vnd.lab.he-frame"}
    pb = {"content-type": "application/x-protobuf; messageType=lab.psi.v1.Envelope"}
    psi = {"dataset": "enterprise_registry", "column": "uscc", "mode": "intersection", "size": 150}
    he = {"context": "hc_" + "0" * 32, "records": 10, "model": "credit_score_v1"}
    sent = [  # (who, method, url, keyword arguments, expected status)
        (people.alice, "POST", f"{base}/dp/query", {"json": {}}, 422),
        (people.eve, "POST", f"{base}/dp/query", {"json": {"dataset": "population"}}, 422),
        (people.alice, "GET", f"{base}/dp/models", {}, 200),
        (people.alice, "POST", f"{base}/psi/sessions", {"json": {**psi, "project": "p_other"}}, 400),
        (people.eve, "POST", f"{base}/psi/sessions", {"json": psi}, 404),
        (people.alice, "GET", f"{base}/psi/sessions/psis_x/setup", {}, 404),
        (people.alice, "POST", f"{base}/psi/sessions/psis_x/request", {"content": b"x", "headers": pb}, 400),
        (people.alice, "GET", f"{base}/he/contexts", {}, 200),
        (people.alice, "POST", f"{base}/he/plan/score", {"json": {**he, "project": "p_other"}}, 400),
        (people.eve, "POST", f"{base}/he/score", {"content": b"LHE1", "headers": frame}, 404),
        (people.alice, "POST", f"{base}/he/lookup", {"content": b"not a frame", "headers": frame}, 400),
        (people.alice, "PUT", f"{base}/he/calls/hx_x/parts/0", {"content": b"LHE1", "headers": frame}, 404),
        (people.alice, "GET", "/api/v1/he/params", {}, 200),
    ]
    for token, method, url, kw, status in sent:
        headers = {**kw.pop("headers", {}), **auth(token)}
        r = api.request(method, url, headers=headers, **kw)
        assert r.status_code == status, (method, url, r.text)
    rows = [r for r in _rows(api, runtime) if "/dp/" in r.route or "/psi/" in r.route or "/he/" in r.route]
    assert [(r.method, r.route.removeprefix(P), r.status, r.project_id) for r in rows] == [
        ("POST", "/{project}/dp/query", 422, pid),
        ("POST", "/{project}/dp/query", 422, pid),
        ("GET", "/{project}/dp/models", 200, pid),
        ("POST", "/{project}/psi/sessions", 400, pid),
        ("POST", "/{project}/psi/sessions", 404, pid),
        ("GET", "/{project}/psi/sessions/{session_id}/setup", 404, pid),
        ("POST", "/{project}/psi/sessions/{session_id}/request", 400, pid),
        ("GET", "/{project}/he/contexts", 200, pid),
        ("POST", "/{project}/he/plan/{op}", 400, pid),
        ("POST", "/{project}/he/score", 404, pid),
        ("POST", "/{project}/he/lookup", 400, pid),
        ("PUT", "/{project}/he/calls/{call_id}/parts/{part}", 404, pid),
        ("GET", "/api/v1/he/params", 200, None),
    ]


def test_anomalies_show_refused_requests_near_exhausted_budgets_and_quota_hits(
    api: Any, runtime: Runtime, people: People
) -> None:
    pid = apply_and_approve(api, people)["id"]  # population ε = 2
    for _ in range(3):  # eve probes a project that is not hers
        assert api.get(f"{P}/{pid}", headers=auth(people.eve)).status_code == 404
    spend(runtime, "alice", pid, "population", "1")
    spend(runtime, "alice", pid, "population", "0.6")  # 80 % spent
    r = api.post(
        f"{P}/{pid}/check",
        json={
            "dataset": "enterprise_registry",
            "channel": "psi",
            "params": {"mode": "intersection", "column": "uscc", "units": 21},
        },
        headers=auth(people.bob),
    )
    assert r.status_code == 429 and r.json()["code"] == "quota-exceeded"
    assert api.get("/api/v1/audit/anomalies", headers=auth(people.alice)).status_code == 403
    r = api.get("/api/v1/audit/anomalies", headers=auth(people.bureau1))
    assert r.status_code == 200, r.text
    a = r.json()
    eve = next(x for x in a["refused"] if x["principal"] == "eve")
    assert eve["refused"] == 3 and eve["by_status"] == {"404": 3}
    bob = next(x for x in a["refused"] if x["principal"] == "bob")
    assert bob["by_status"] == {"429": 1}
    assert [(b["project"], b["dataset"], b["epsilon_spent"], b["fraction_spent"]) for b in a["budgets"]] == [
        (pid, "population", "1.6", "0.8000")
    ]
    assert a["quota_hits"] == [
        {"principal": "bob", "project_id": pid, "hits": 1, "last_at": a["quota_hits"][0]["last_at"]}
    ]
    log = api.get(
        "/api/v1/audit/requests", params={"project": pid, "min_status": 400}, headers=auth(people.bureau1)
    ).json()
    assert {(x["principal"], x["status"]) for x in log} == {("eve", 404), ("bob", 429)}


def test_a_failing_audit_write_never_fails_the_request(
    api: Any, runtime: Runtime, people: People, caplog: pytest.LogCaptureFixture
) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_requests"))
    with caplog.at_level(logging.ERROR, logger="lab.audit"):
        r = api.get(P, headers=auth(people.alice))
        assert r.status_code == 200
        api.app.state.audit_writer.flush()
    assert api.app.state.audit_writer.failed >= 1
    assert any("audit write" in rec.getMessage() for rec in caplog.records)
