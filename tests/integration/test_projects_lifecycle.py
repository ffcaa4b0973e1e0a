"""The project lifecycle through the API with real Hub tokens, a real S3 store and both databases."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from lab.artifacts.cohorts import save_cohort
from lab.artifacts.models import CohortRow, ModelRow, StatTableRow
from lab.db.base import utcnow
from lab.errors import ProjectInactive, ProjectNotFound
from lab.identity import Principal
from lab.projects.access import Ask, authorize, no_channel_params
from lab.projects.models import ProjectEventRow, ProjectRow
from lab.projects.sweep import sweep
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.integration._projects import People, application, apply_and_approve, auth, import_catalog, spend

pytestmark = [pytest.mark.integration, pytest.mark.hub]
P = "/api/v1/projects"


@pytest.fixture
def people(api: Any, hub: HubHandle, runtime: Runtime) -> People:
    import_catalog(runtime)
    return People(hub)


def _working_data(runtime: Runtime, pid: str) -> list[str]:
    """Give the project a cohort, a model, a stats table and loose working objects; return object keys."""
    store, work = runtime.store, runtime.settings.s3.bucket_work
    loose = [store.put_bytes(work, f"projects/{pid}/scratch", f"tmp {i}".encode()).key for i in range(3)]
    now = utcnow()
    with runtime.transaction() as s:
        cohort = save_cohort(
            s,
            store,
            project_id=pid,
            dataset_id="population",
            dataset_version=1,
            column="resident_id",
            keys=["P1", "P2", "P3"],
            created_by="alice",
            record_id="dr_x",
            ttl=dt.timedelta(days=1),
        )
        common = {"dataset_id": "population", "dataset_version": 1, "created_by": "alice", "created_at": now}
        s.add(
            ModelRow(
                id="m_" + pid,
                project_id=pid,
                name="m",
                kind="linear",
                features=["age"],
                target="employed",
                params={},
                epsilon="0.5",
                record_id=None,
                **common,
            )
        )
        s.add(
            StatTableRow(
                id="t_" + pid,
                project_id=pid,
                name="t",
                dims=[],
                statistic="mean(monthly_income)",
                values=[1.0],
                epsilon="0.5",
                record_id=None,
                **common,
            )
        )
        cohort_key = cohort.object_key
    return sorted([*loose, cohort_key])


def test_full_lifecycle_apply_changes_approve_use_expire_dispose(
    api: Any, hub: HubHandle, runtime: Runtime, people: People
) -> None:
    # apply: pending, the applicant is a member, the request is normalized against the policies
    r = api.post(P, json=application(members=["bob"]), headers=auth(people.alice))
    assert r.status_code == 201, r.text
    p = r.json()
    pid = p["id"]
    assert p["status"] == "pending" and p["applicant"] == "alice"
    assert {m["username"] for m in p["members"]} == {"alice", "bob"}
    assert p["requested"]["population"]["dp"] == {
        "epsilon": "2",
        "delta": "0.00001",
        "epsilon_per_query": "1",
        "delta_per_query": "0.000001",
    }
    assert p["requested"]["population"]["psi"] == {
        "modes": ["cohort"],
        "columns": ["phone", "resident_id"],
        "quota": 20,
    }
    assert p["approvals"] == {"required": 2, "by": [], "changes": []}

    # changes requested (a reason is required), then resubmitted with a smaller request
    r = api.post(f"{P}/{pid}/review", json={"decision": "changes"}, headers=auth(people.bureau1))
    assert r.status_code == 400 and "reason" in r.json()["detail"]
    r = api.post(
        f"{P}/{pid}/review",
        json={"decision": "changes", "reason": "PSI on phone numbers is not needed"},
        headers=auth(people.bureau1),
    )
    assert r.json()["status"] == "changes_requested"
    changed = application()["datasets"]
    changed["population"]["psi"]["columns"] = ["resident_id"]
    r = api.post(
        f"{P}/{pid}/resubmit", json={"datasets": changed, "note": "dropped phone"}, headers=auth(people.bob)
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending"
    assert r.json()["requested"]["population"]["psi"]["columns"] == ["resident_id"]

    # two distinct approvals (non-open data); the first reduces ε, the second shortens the term
    r = api.post(
        f"{P}/{pid}/review",
        json={"decision": "approve", "reason": "ok", "grants": {"population": {"dp": {"epsilon": "1.0"}}}},
        headers=auth(people.bureau1),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["approvals"] == {
        "required": 2,
        "by": ["bureau1"],
        "changes": [],
    }
    again = api.post(f"{P}/{pid}/review", json={"decision": "approve"}, headers=auth(people.bureau1))
    assert again.status_code == 409
    r = api.post(f"{P}/{pid}/review", json={"decision": "approve", "days": 30}, headers=auth(people.bureau2))
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["status"] == "active" and p["serving"] and p["hub_synced"]
    assert p["grants"]["population"]["dp"] == {
        "epsilon": "1",
        "delta": "0.00001",
        "epsilon_per_query": "1",
        "delta_per_query": "0.000001",
    }
    ends = dt.datetime.fromisoformat(p["ends_at"])
    assert dt.timedelta(days=29, hours=23) < ends - utcnow() <= dt.timedelta(days=30)
    assert sorted(hub.http.get(f"groups/project-{pid}").json()["users"]) == ["alice", "bob"]

    # use: the authorize answer through the API, a real spend, the budget after it
    r = api.post(
        f"{P}/{pid}/check",
        json={"dataset": "population", "channel": "dp", "params": {"epsilon": "0.25"}},
        headers=auth(people.bob),
    )
    assert r.status_code == 200, r.text
    assert r.json()["remaining"] == {"epsilon": "1", "delta": "0.00001"}
    spend(runtime, "bob", pid, "population", "0.25")
    b = api.get(f"{P}/{pid}/budget", headers=auth(people.alice)).json()["budgets"]
    assert b[0]["epsilon_spent"] == "0.25" and b[0]["epsilon_remaining"] == "0.75" and b[0]["spends"] == 1
    keys = _working_data(runtime, pid)
    assert all(runtime.store.exists(runtime.settings.s3.bucket_work, k) for k in keys)

    # expire: past its end date the project is refused at once, the sweep expires and disposes of it
    with runtime.transaction() as s:
        s.execute(
            update(ProjectRow).where(ProjectRow.id == pid).values(ends_at=utcnow() - dt.timedelta(minutes=1))
        )
    r = api.post(
        f"{P}/{pid}/check",
        json={"dataset": "population", "channel": "dp", "params": {"epsilon": "0.1"}},
        headers=auth(people.bob),
    )
    assert r.status_code == 403 and r.json()["code"] == "project-inactive" and "expired" in r.json()["detail"]
    report = sweep(runtime)
    assert report.expired == [pid] and [d.project for d in report.disposed] == [pid] and not report.errors

    # disposed: objects gone from S3, rows gone, the record lists them, the Hub group is empty
    assert runtime.store.list_keys(runtime.settings.s3.bucket_work, f"projects/{pid}/") == []
    with runtime.transaction() as s:
        for model in (CohortRow, ModelRow, StatTableRow):
            assert s.execute(select(model).where(model.project_id == pid)).first() is None
        disposal = s.execute(
            select(ProjectEventRow).where(
                ProjectEventRow.project_id == pid, ProjectEventRow.action == "disposed"
            )
        ).scalar_one()
        entry = runtime.ledger(s).entry(disposal.ledger_index)
    assert entry.kind == "project.disposal"
    body = entry.entry["body"]
    assert body["details"]["counts"] == {"cohorts": 1, "models": 1, "stat_tables": 1, "objects": 4}
    assert body["details"]["objects"] == sorted(f"{runtime.settings.s3.bucket_work}/{k}" for k in keys)
    assert body["details"]["models"] == ["m_" + pid] and body["details"]["stat_tables"] == ["t_" + pid]
    assert hub.http.get(f"groups/project-{pid}").json()["users"] == []

    p = api.get(f"{P}/{pid}", headers=auth(people.alice)).json()
    assert p["status"] == "expired" and p["disposed_at"] and not p["serving"]
    actions = [e["action"] for e in p["events"]]
    assert actions == ["apply", "changes", "resubmit", "approve", "approve", "expire", "disposed"]
    with runtime.transaction() as s:
        assert runtime.ledger(s).verify().ok
    assert sweep(runtime).disposed == []  # never twice


def test_a_reviewer_cannot_review_their_own_project(api: Any, hub: HubHandle, people: People) -> None:
    carol = hub.token_for("carol", ["operator", "bureau"])
    pid = api.post(P, json=application(members=[]), headers=auth(carol)).json()["id"]
    r = api.post(f"{P}/{pid}/review", json={"decision": "approve"}, headers=auth(carol))
    assert r.status_code == 403 and r.json()["code"] == "self-review"
    # a reviewer who is a member is refused too
    pid2 = api.post(P, json=application(members=["bureau2"]), headers=auth(people.alice)).json()["id"]
    r = api.post(f"{P}/{pid2}/review", json={"decision": "approve"}, headers=auth(people.bureau2))
    assert r.status_code == 403 and r.json()["code"] == "self-review"
    # operators do not review at all
    r = api.post(f"{P}/{pid2}/review", json={"decision": "approve"}, headers=auth(people.bob))
    assert r.status_code == 403 and "bureau" in r.json()["detail"]


OVER_CAP = [
    (
        {"population": {"dp": {"epsilon": 9}}},
        "population.dp.epsilon: requested 9 exceeds the policy cap epsilon_per_project=5",
    ),
    (
        {"population": {"dp": {"epsilon": "1", "epsilon_per_query": "2"}}},
        "population.dp.epsilon_per_query: requested 2 exceeds the policy cap epsilon_per_query=1",
    ),
    (
        {"population": {"psi": {"modes": ["intersection"]}}},
        "population.psi.modes: intersection reveals membership",
    ),
    (
        {"enterprise_registry": {"psi": {"modes": ["cardinality"], "quota": 500}}},
        "enterprise_registry.psi.quota: requested 500 exceeds the policy cap daily_quota=100",
    ),
    (
        {"environment_monitoring": {"psi": {"modes": ["cardinality"]}}},
        "environment_monitoring: the dataset's policy does not open the psi channel",
    ),
    (
        {"population": {"he": {"tables": ["secret_table"]}}},
        "population.he.tables: secret_table not cleared",
    ),
    ({"nope": {"dp": {"epsilon": 1}}}, "nope: no such dataset in the catalog"),
]


def test_requests_above_policy_caps_are_refused_at_application(api: Any, people: People) -> None:
    for datasets, message in OVER_CAP:
        r = api.post(P, json=application(datasets=datasets), headers=auth(people.alice))
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == "invalid-project" and body["detail"].startswith(message), (datasets, body)
        assert body["dataset"] == next(iter(datasets))
    assert api.get(P, headers=auth(people.alice)).json() == []  # nothing was filed


def test_grants_and_terms_only_shrink_at_review(api: Any, people: People) -> None:
    pid = api.post(P, json=application(), headers=auth(people.alice)).json()["id"]
    for body, fragment in (
        ({"grants": {"population": {"dp": {"epsilon": "3"}}}}, "larger than the requested"),
        ({"grants": {"tax_credit": {"dp": {"epsilon": "1"}}}}, "not requested"),
        ({"grants": {"population": {"he": {"tables": []}}}}, "not requested"),
        ({"days": 61}, "never extended"),
        ({"grants": {"population": None, "enterprise_registry": None}}, "empty"),
    ):
        r = api.post(f"{P}/{pid}/review", json={"decision": "approve", **body}, headers=auth(people.bureau1))
        assert r.status_code == 400 and fragment in r.json()["detail"], (body, r.json())
    r = api.post(
        f"{P}/{pid}/review", json={"decision": "reject", "reason": " "}, headers=auth(people.bureau1)
    )
    assert r.status_code == 400
    # dropping a dataset and narrowing PSI is fine; the two approvals are intersected
    r = api.post(
        f"{P}/{pid}/review",
        json={"decision": "approve", "grants": {"enterprise_registry": {"psi": {"quota": 5}}}},
        headers=auth(people.bureau1),
    )
    assert r.status_code == 200, r.text
    r = api.post(
        f"{P}/{pid}/review",
        json={"decision": "approve", "grants": {"population": {"psi": None}}},
        headers=auth(people.bureau2),
    )
    g = r.json()["grants"]
    assert r.json()["status"] == "active"
    assert set(g["population"]) == {"dp"} and g["enterprise_registry"]["psi"]["quota"] == 5
    assert [b["dataset"] for b in r.json()["budgets"]] == ["population"]


def test_open_datasets_need_one_approval_and_rejection_is_final(api: Any, people: People) -> None:
    body = application(datasets={"environment_monitoring": {"dp": {"epsilon": "5"}}})
    pid = api.post(P, json=body, headers=auth(people.alice)).json()["id"]
    r = api.post(f"{P}/{pid}/review", json={"decision": "approve"}, headers=auth(people.bureau1))
    assert r.json()["status"] == "active"
    pid = api.post(P, json=body, headers=auth(people.alice)).json()["id"]
    r = api.post(
        f"{P}/{pid}/review", json={"decision": "reject", "reason": "no purpose"}, headers=auth(people.bureau2)
    )
    assert r.json()["status"] == "rejected"
    for action in ("review", "resubmit"):
        r = api.post(
            f"{P}/{pid}/{action}",
            json={"decision": "approve"} if action == "review" else {},
            headers=auth(people.bureau1 if action == "review" else people.alice),
        )
        assert r.status_code == 409 and r.json()["code"] == "invalid-transition"


def test_non_member_suspended_and_expired_projects_are_refused(
    api: Any, runtime: Runtime, people: People
) -> None:
    pid = apply_and_approve(api, people)["id"]
    question = {"dataset": "population", "channel": "dp", "params": {"epsilon": "0.1"}}
    assert api.post(f"{P}/{pid}/check", json=question, headers=auth(people.alice)).status_code == 200
    eve = Principal.from_groups("eve", ["operator"])
    alice = Principal.from_groups("alice", ["operator"])

    # a non-member: 404 through the API and from authorize (existence not confirmed)
    r = api.post(f"{P}/{pid}/check", json=question, headers=auth(people.eve))
    assert r.status_code == 404
    for path in (f"{P}/{pid}", f"{P}/{pid}/budget"):
        assert api.get(path, headers=auth(people.eve)).status_code == 404
    with runtime.transaction() as s, pytest.raises(ProjectNotFound):
        authorize(s, eve, pid, "population", "dp", "query", Ask.spend("0.1"), check=no_channel_params)

    # suspended: refused, data kept; resumed: served again
    r = api.post(f"{P}/{pid}/suspend", json={"reason": "audit"}, headers=auth(people.bureau1))
    assert r.json()["status"] == "suspended" and not r.json()["serving"]
    r = api.post(f"{P}/{pid}/check", json=question, headers=auth(people.alice))
    assert r.status_code == 403 and r.json()["code"] == "project-inactive"
    with runtime.transaction() as s, pytest.raises(ProjectInactive):
        authorize(s, alice, pid, "population", "dp", "query", Ask.spend("0.1"), check=no_channel_params)
    with pytest.raises(ProjectInactive):
        spend(runtime, "alice", pid, "population", "0.1")
    assert api.post(f"{P}/{pid}/resume", headers=auth(people.bureau1)).json()["status"] == "active"
    assert api.post(f"{P}/{pid}/check", json=question, headers=auth(people.alice)).status_code == 200

    # expired (past ends_at, before any sweep): refused
    with runtime.transaction() as s:
        s.execute(
            update(ProjectRow).where(ProjectRow.id == pid).values(ends_at=utcnow() - dt.timedelta(seconds=1))
        )
    r = api.post(f"{P}/{pid}/check", json=question, headers=auth(people.alice))
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    with runtime.transaction() as s, pytest.raises(ProjectInactive):
        authorize(s, alice, pid, "population", "dp", "query", Ask.spend("0.1"), check=no_channel_params)
    r = api.post(f"{P}/{pid}/suspend", headers=auth(people.bureau1))
    assert r.json()["status"] == "suspended"
    r = api.post(f"{P}/{pid}/resume", headers=auth(people.bureau1))
    assert r.status_code == 409 and "end date" in r.json()["detail"]


def test_visibility_and_listing(api: Any, hub: HubHandle, people: People) -> None:
    mine = api.post(P, json=application(members=[]), headers=auth(people.alice)).json()["id"]
    theirs = api.post(P, json=application(members=[]), headers=auth(people.eve)).json()["id"]
    ids = {p["id"] for p in api.get(P, headers=auth(people.alice)).json()}
    assert mine in ids and theirs not in ids
    assert api.get(f"{P}/{theirs}", headers=auth(people.alice)).status_code == 404
    assert api.get(f"{P}/does-not-exist", headers=auth(people.alice)).status_code == 404
    everything = {p["id"] for p in api.get(P, headers=auth(people.bureau1)).json()}
    assert {mine, theirs} <= everything
    pending = api.get(P, params={"status": "pending"}, headers=auth(people.bureau1)).json()
    assert all(p["status"] == "pending" for p in pending)
    auditor = hub.token_for("auditor1", ["auditor"])
    assert api.get(f"{P}/{theirs}", headers=auth(auditor)).status_code == 200
    assert api.post(P, json=application(), headers=auth(auditor)).status_code == 403  # operators apply


def test_hub_group_follows_approve_remove_suspend_resume_end(
    api: Any, hub: HubHandle, runtime: Runtime, people: People
) -> None:
    pid = apply_and_approve(api, people)["id"]
    group = f"groups/project-{pid}"

    def members() -> list[str]:
        return sorted(hub.http.get(group).json()["users"])

    assert members() == ["alice", "bob"]
    r = api.request("DELETE", f"{P}/{pid}/members", json={"users": ["bob"]}, headers=auth(people.alice))
    assert r.status_code == 403  # after approval only the bureau changes members
    r = api.request("DELETE", f"{P}/{pid}/members", json={"users": ["bob"]}, headers=auth(people.bureau1))
    assert r.status_code == 200 and r.json()["hub_synced"]
    assert members() == ["alice"]
    assert api.get(f"{P}/{pid}", headers=auth(people.bob)).status_code == 404
    with pytest.raises(ProjectNotFound):  # a removed member is an outsider: not told it exists
        spend(runtime, "bob", pid, "population", "0.1")
    r = api.request("DELETE", f"{P}/{pid}/members", json={"users": ["alice"]}, headers=auth(people.bureau1))
    assert r.status_code == 400  # the applicant stays
    api.post(f"{P}/{pid}/members", json={"users": ["eve"]}, headers=auth(people.bureau1))
    assert members() == ["alice", "eve"]
    api.post(f"{P}/{pid}/suspend", headers=auth(people.bureau2))
    assert members() == []
    api.post(f"{P}/{pid}/resume", headers=auth(people.bureau2))
    assert members() == ["alice", "eve"]
    r = api.post(f"{P}/{pid}/end", json={"reason": "done"}, headers=auth(people.bureau2))
    assert r.json()["status"] == "ended" and r.json()["disposed_at"]
    assert members() == []
    assert [e["action"] for e in r.json()["events"]][-2:] == ["end", "disposed"]


def test_unreachable_hub_leaves_the_database_state_and_is_reconciled(
    api: Any, hub: HubHandle, runtime: Runtime, people: People
) -> None:
    from lab.identity.hub import HubClient
    from lab.projects import hubsync
    from lab.projects.workflow import ProjectWorkflow

    pid = apply_and_approve(api, people)["id"]
    good = runtime._hub
    runtime._hub = HubClient(
        hub.settings.model_copy(update={"api_url": "http://127.0.0.1:9/hub/api"}), timeout=1
    )
    try:
        out = ProjectWorkflow(runtime).suspend(Principal.from_groups("bureau1", ["bureau"]), pid, "incident")
    finally:
        runtime._hub.close()
        runtime._hub = good
    assert out.status == "suspended" and not out.hub_synced
    assert sorted(hub.http.get(f"groups/project-{pid}").json()["users"]) == ["alice", "bob"]  # stale
    report = sweep(runtime)
    assert pid in [s.project for s in report.synced] and not report.errors
    assert hub.http.get(f"groups/project-{pid}").json()["users"] == []
    assert ProjectWorkflow(runtime).get(Principal.from_groups("bureau1", ["bureau"]), pid).hub_synced
    # a group changed behind the lab's back is put right by the full reconciliation
    hub.http.post(f"groups/project-{pid}/users", json={"users": ["eve"]}).raise_for_status()
    done, errors = hubsync.sync_all(runtime)
    assert not errors and next(d for d in done if d.project == pid).removed == ["eve"]
    assert hub.http.get(f"groups/project-{pid}").json()["users"] == []


@pytest.mark.slow
def test_removing_a_member_stops_their_running_server(api: Any, hub: HubHandle, people: People) -> None:
    import time

    dave = hub.token_for("dave", ["operator"])
    pid = apply_and_approve(api, people, application(members=["dave"]))["id"]
    own = {"Authorization": f"token {dave}"}
    r = hub.http.post("users/dave/server", headers=own)
    assert r.status_code in (201, 202), r.text

    def server() -> dict[str, Any] | None:
        servers: dict[str, Any] = hub.http.get("users/dave").json().get("servers") or {}
        return servers.get("")

    deadline = time.monotonic() + 120
    while not (server() or {}).get("ready"):
        assert time.monotonic() < deadline, "dave's server did not start"
        time.sleep(0.5)
    r = api.request("DELETE", f"{P}/{pid}/members", json={"users": ["dave"]}, headers=auth(people.bureau1))
    assert r.status_code == 200 and r.json()["hub_synced"]
    deadline = time.monotonic() + 60
    while server() is not None:
        assert time.monotonic() < deadline, "dave's server was not stopped"
        time.sleep(0.5)
    assert "project-" + pid not in hub.groups_of("dave")
    assert hub.http.post("users/dave/server", headers=own).status_code == 403  # may not spawn again


def test_the_api_sweeps_in_the_background(runtime: Runtime, hub: HubHandle) -> None:
    import time

    from fastapi.testclient import TestClient

    from lab.api.main import create_app
    from tests.factories import active_project

    import_catalog(runtime, ["population"])
    pid = active_project(runtime, {"population": {"dp": {"epsilon": "1"}}}, days=1)
    with runtime.transaction() as s:
        s.execute(
            update(ProjectRow).where(ProjectRow.id == pid).values(ends_at=utcnow() - dt.timedelta(hours=1))
        )
    runtime.settings.hub = hub.settings
    runtime.settings.projects.sweep_seconds = 0.2
    with TestClient(create_app(runtime=runtime)):
        deadline = time.monotonic() + 30
        while True:
            with runtime.transaction() as s:
                project = s.get(ProjectRow, pid)
                assert project is not None
                if project.disposed_at is not None:
                    break
            assert time.monotonic() < deadline, "the background sweep did not run"
            time.sleep(0.1)
    assert project.status == "expired"
