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
    api.post(P, json={"project": pid, "secret": "s3cr3t"}, headers=auth(people.bob))  # refused, body read
    api.get("/api/v1/nowhere", headers=auth(people.bob))
    api.get(P, params={"project": pid, "token": people.bob}, headers=auth(people.bob))
    rows = _rows(api, runtime)
    got = [(r.principal, r.project_id, r.method, r.route, r.status, r.outcome) for r in rows]
    assert got[:6] == [
        ("alice", None, "POST", P, 201, "ok"),
        ("alice", pid, "GET", f"{P}/{{project_id}}", 200, "ok"),
        (None, pid, "GET", f"{P}/{{project_id}}", 401, "unauthenticated"),
        ("bob", pid, "POST", P, 422, "validation"),
        (None, None, "GET", "(no route)", 404, "http-404"),
        ("bob", pid, "GET", P, 200, "ok"),
    ]
    assert all(r.latency_ms > 0 for r in rows)
    dump = repr([[getattr(r, c.name) for c in AuditRequestRow.__table__.columns] for r in rows])
    for secret in (people.alice, people.bob, "not-a-token", "s3cr3t", body["purpose"]):
        assert secret not in dump


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
