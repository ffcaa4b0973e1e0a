"""The same lifecycle through the Python client and through ``lab projects`` (CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import lab.client as lc
from lab.db.base import utcnow
from lab.runtime import Runtime
from lab.settings import get_settings
from tests.conftest import HubHandle
from tests.integration._projects import People, application, auth, import_catalog

pytestmark = [pytest.mark.integration, pytest.mark.hub]


@pytest.fixture
def people(api: Any, hub: HubHandle, runtime: Runtime) -> People:
    import_catalog(runtime, ["population", "enterprise_registry"])
    return People(hub)


def _client(api: Any, token: str) -> lc.Client:
    c = lc.Client("http://testserver", token)
    c.transport.http.close()
    c.transport.http = TestClient(api.app, headers=auth(token))
    return c


def test_client_apply_review_budget_and_errors(api: Any, hub: HubHandle, people: People) -> None:
    alice, b1, b2 = (_client(api, t) for t in (people.alice, people.bureau1, people.bureau2))
    body = application()
    p = alice.projects.apply(
        title=body["title"],
        purpose=body["purpose"],
        scenario=body["scenario"],
        days=30,
        members=["bob"],
        datasets={"population": {"dp": {"epsilon": 1.0, "delta": 0.0}}},
        organization=body["organization"],
        contact=body["contact"],
    )
    assert p.status == "pending" and p.members == ["alice", "bob"] and p.id.startswith("p")
    with pytest.raises(lc.Forbidden):
        alice.projects.review(p.id, decision="approve")
    with pytest.raises(lc.BadRequest, match="epsilon_per_project=5"):
        alice.projects.apply(
            title="x" * 5, purpose="y" * 12, scenario="z" * 4, datasets={"population": {"dp": {"epsilon": 6}}}
        )
    assert b1.projects.review(p.id, decision="approve", reason="ok").status == "pending"
    p = b2.projects.review(p.id, decision="approve", reason="ok", days=10)
    assert p.status == "active" and p.serving and p.grants["population"]["dp"]["epsilon"] == "1"
    assert list(p.events["action"]) == ["apply", "approve", "approve"]

    alice.use(p.id)
    assert alice.projects.check("population", "dp", epsilon=0.5)["remaining"]["epsilon"] == "1"
    budget = alice.projects.budget()
    assert budget.to_dict("records")[0] | {"fraction_spent": "0"} == {
        "dataset": "population", "epsilon_total": "1", "epsilon_spent": "0", "epsilon_remaining": "1",
        "delta_total": "0", "delta_spent": "0", "delta_remaining": "0", "spends": 0, "fraction_spent": "0",
        # the dataset's own account (population: ε = 8 a year, δ = 0.00003), shared by every project
        "dataset_epsilon_lifetime": "12", "dataset_epsilon_allowance": "8",
        "dataset_epsilon_remaining": "8", "dataset_delta_remaining": "0.00003",
        "dataset_period": str(utcnow().year), "dataset_composition": "basic", "binding": "project",
    }  # fmt: skip
    mine = alice.projects.list()
    assert p.id in set(mine["id"]) and set(b1.projects.list(status="active")["status"]) == {"active"}
    assert b1.projects.suspend(p.id, reason="check").status == "suspended"
    with pytest.raises(lc.ProjectInactive):
        alice.projects.check("population", "dp", epsilon=0.5)
    assert b1.projects.resume(p.id).status == "active"
    assert b1.projects.remove_members(p.id, ["bob"]).members == ["alice"]
    assert b1.projects.add_members(p.id, ["bob"]).members == ["alice", "bob"]
    ended = b1.projects.end(p.id, reason="finished")
    assert ended.status == "ended" and ended.raw["disposed_at"]
    with pytest.raises(lc.NotFound):
        _client(api, people.eve).projects.get(p.id)
    for c in (alice, b1, b2):
        c.close()


@pytest.fixture
def cli_env(runtime: Runtime, hub: HubHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    s = runtime.settings
    env = {
        "LAB_DATABASE_URL": s.db_url,
        "LAB_DATA_DIR": str(s.data_dir),
        "LAB_SECRET_KEY": s.secret_key.get_secret_value(),
        "LAB_S3__ENDPOINT": s.s3.endpoint,
        "LAB_S3__ACCESS_KEY": s.s3.access_key,
        "LAB_S3__SECRET_KEY": s.s3.secret_key.get_secret_value(),
        "LAB_S3__BUCKET_RAW": s.s3.bucket_raw,
        "LAB_S3__BUCKET_PRODUCTS": s.s3.bucket_products,
        "LAB_S3__BUCKET_WORK": s.s3.bucket_work,
        "LAB_HUB__API_URL": hub.settings.api_url,
        "LAB_HUB__API_TOKEN": hub.settings.api_token.get_secret_value(),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_apply_review_supervise_sweep(
    people: People, cli_env: None, hub: HubHandle, tmp_path: Path
) -> None:
    from lab.cli.main import app

    run = CliRunner().invoke
    file = tmp_path / "app.yaml"
    file.write_text(yaml.safe_dump(application(), allow_unicode=True), encoding="utf-8")
    r = run(app, ["projects", "apply", "--file", str(file), "--as", "alice"])
    assert r.exit_code == 0, r.output
    pid = r.output.split()[0]
    r = run(app, ["projects", "review", pid, "--as", "alice", "--decision", "approve"])
    assert r.exit_code == 2 and "may not review" in r.output
    grants = tmp_path / "grants.yaml"
    grants.write_text("population: {dp: {epsilon: '0.5'}}\n")
    for who in ("bureau1", "bureau2"):
        r = run(
            app, ["projects", "review", pid, "--as", who, "--decision", "approve", "--grants", str(grants)]
        )
        assert r.exit_code == 0, r.output
    assert "active" in r.output
    shown = json.loads(run(app, ["projects", "show", pid]).output)
    assert shown["grants"]["population"]["dp"]["epsilon"] == "0.5" and shown["hub_synced"]
    assert pid in run(app, ["projects", "list", "--status", "active"]).output
    printed = run(app, ["projects", "budget", pid]).output
    assert "ε 0/0.5" in printed and "ε 12 for life, 8 in " in printed and "left 8; project binds" in printed
    assert "dataset account (basic)" in printed
    assert run(app, ["projects", "suspend", pid, "--as", "bureau1", "--reason", "x"]).exit_code == 0
    r = run(app, ["projects", "sync-hub"])
    assert r.exit_code == 0 and f"project-{pid}: (empty)" in r.output
    r = run(app, ["projects", "end", pid, "--as", "bureau2"])
    assert r.exit_code == 0 and "ended" in r.output
    r = run(app, ["projects", "sweep"])
    assert r.exit_code == 0 and "expired: -" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(application(days=0)))
    r = run(app, ["projects", "apply", "--file", str(bad), "--as", "alice"])
    assert r.exit_code == 2 and "days" in r.output
