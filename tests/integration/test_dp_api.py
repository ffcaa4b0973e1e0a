"""The DP channel end to end: lab client → API → Hub-resolved caller → service, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

import lab.client as lc
from lab.catalog.service import CatalogFetcher
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.integration._dp import counts, dp_project, import_dp_sample, make_cohort, remaining

pytestmark = [pytest.mark.integration, pytest.mark.hub]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


@pytest.fixture
def project(api: Any, runtime: Runtime) -> dict[str, Any]:
    versions = import_dp_sample(runtime)
    return {"id": dp_project(runtime, epsilon="3", per_query="1"), "versions": versions}


@pytest.fixture
def alice(api: Any, hub: HubHandle, project: dict[str, Any]) -> Iterator[lc.Client]:
    """The lab client as alice, speaking HTTP to the in-process API."""
    token = hub.token_for("alice", ["operator"])
    client = lc.Client("http://testserver", token)
    client.transport.http.close()
    client.transport.http = TestClient(api.app, headers=auth(token))
    yield client.use(project["id"])
    client.close()


def test_operator_works_through_the_client(
    alice: lc.Client, runtime: Runtime, project: dict[str, Any]
) -> None:
    pid = project["id"]
    select = ["count", {"agg": "mean", "column": "monthly_income", "bounds": [0, 20000]}]
    p = alice.dp.preview("population", select=select, group_by="town", epsilon=0.5, assumed_count=200)
    assert p.allowed and p.cost == {"epsilon": 0.5, "delta": 0.0} and not p.cached
    assert list(p.frame["name"]) == ["count", "mean_monthly_income"] and p.frame["error_95"].notna().all()
    assert remaining(runtime, pid).epsilon == Decimal(3) and counts(runtime, pid) == (0, 0)

    r = alice.dp.query("population", select=select, group_by="town", where={"age": (18, 65)}, epsilon=0.5)
    assert r.epsilon_spent == 0.5 and r.remaining["epsilon"] == 2.5 and r.record_id.startswith("dr_")
    assert len(r.frame) == 36 and r.frame["town"].nunique() == 18
    assert {"value", "error_95", "lower", "upper", "mechanism", "flag"} <= set(r.frame.columns)
    wide = r.wide()
    assert len(wide) == 18 and list(wide.columns[1:]) == [
        "count",
        "count_error_95",
        "mean_monthly_income",
        "mean_monthly_income_error_95",
    ]
    assert set(r.mechanisms["mechanism"]) == {"Geometric", "FixedPointGeometric"}  # sums in fixed point

    again = alice.dp.query("population", select=select, group_by="town", where={"age": (18, 65)}, epsilon=0.5)
    assert again.cached and again.epsilon_spent == 0 and again.frame.equals(r.frame)

    m = alice.dp.train(
        "population", model="logistic", features=["age", "monthly_income"], target="employed", epsilon=0.5
    )
    assert m.id.startswith("m_") and m.coef.shape == (2,) and m.classes == [0, 1] and m.epsilon_spent == 0.5
    assert [x.id for x in alice.dp.models()] == [m.id]

    t = alice.dp.release_table(
        "population", "mean(monthly_income)", dims=["town", "education"], epsilon=0.5, name="income_by_town"
    )
    assert len(t.frame) == 90 and list(t.frame.columns) == ["town", "education", "value", "error_95"]
    assert [x.id for x in alice.dp.tables()] == [t.id]

    version = project["versions"]["population"]
    path = CatalogFetcher(runtime.store).fetch(version, runtime.cache_dir)
    keys = pq.read_table(path, columns=["person_id"]).column(0).to_pylist()[::5]
    cohort = make_cohort(runtime, pid, version, keys)
    c = alice.dp.query("population", select=["count", "quantile(age, 0.5)"], cohort=cohort, epsilon=1)
    n = c.frame.set_index("name").loc["count"]
    assert abs(n["value"] - len(keys)) <= 3 * n["error_95"]
    assert remaining(runtime, pid).epsilon == Decimal("0.5") and counts(runtime, pid) == (4, 2)


REFUSALS = [
    ({"select": [{"agg": "mean", "column": "monthly_income", "bounds": [0, 99999]}]}, 400, "invalid-query"),
    (
        {"select": [{"agg": "count"}], "where": [{"column": "phone", "value": "13800000000"}]},
        400,
        "invalid-query",
    ),
    ({"select": [{"agg": "count"}], "group_by": ["birth_date"]}, 400, "invalid-query"),
    ({"select": [{"agg": "count"}], "epsilon": "1.01"}, 403, "not-in-grant"),
    ({"select": [{"agg": "median", "column": "age"}]}, 422, "validation"),
    ({"select": [{"agg": "count"}] * 21}, 422, "validation"),
    (
        {"select": [{"agg": "count"}], "where": [{"column": "town", "op": "in", "value": ["城桥镇"] * 300}]},
        422,
        "validation",
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), REFUSALS)
def test_refusals_are_problems_and_charge_nothing(
    api: Any,
    hub: HubHandle,
    runtime: Runtime,
    project: dict[str, Any],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    pid, token = project["id"], hub.token_for("alice", ["operator"])
    r = api.post(
        f"/api/v1/projects/{pid}/dp/query",
        json={"dataset": "population", "epsilon": "0.5", **body},
        headers=auth(token),
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json" and r.json()["code"] == code
    assert remaining(runtime, pid).epsilon == Decimal(3) and counts(runtime, pid) == (0, 0)


def test_callers_outside_the_project_are_refused(
    api: Any, hub: HubHandle, runtime: Runtime, project: dict[str, Any]
) -> None:
    pid = project["id"]
    body = {"dataset": "population", "select": [{"agg": "count"}], "epsilon": "0.5"}
    assert api.post(f"/api/v1/projects/{pid}/dp/query", json=body).status_code == 401
    bob = auth(hub.token_for("bob", ["operator"]))
    r = api.post(f"/api/v1/projects/{pid}/dp/query", json=body, headers=bob)
    assert r.status_code == 404 and r.json()["code"] == "project-not-found"  # not told it exists
    assert api.get(f"/api/v1/projects/{pid}/dp/models", headers=bob).status_code == 404
    bureau = auth(hub.token_for("bureau1", ["bureau"]))
    assert api.get(f"/api/v1/projects/{pid}/dp/tables", headers=bureau).json() == []
    assert api.post("/api/v1/projects/nope/dp/query", json=body, headers=bob).status_code == 404
    assert counts(runtime, pid) == (0, 0)


def test_budget_exhaustion_is_a_409_and_preview_reports_it(alice: lc.Client, project: dict[str, Any]) -> None:
    for eps in (1, 0.9, 0.8):
        alice.dp.query("population", select="count", group_by="gender", epsilon=eps)
    p = alice.dp.preview("population", select="count", epsilon=0.5)
    assert not p.allowed and "remaining" in p.raw["reason"]
    with pytest.raises(lc.BudgetExhausted) as caught:
        alice.dp.query("population", select="count", epsilon=0.5)
    assert caught.value.status == 409 and caught.value.problem["remaining"]["epsilon"] == "0.3"
    with pytest.raises(lc.BadRequest):
        alice.dp.query("population", select="mean(monthly_income)", group_by="age", epsilon=0.1)
