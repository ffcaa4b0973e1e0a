"""The DP channel against a malicious operator: exact counts hidden in models, numbers at the edges.

* **Naive Bayes row counts** (issue 12.3): diffprivlib's ``GaussianNB`` forces its noisy class counts
  to add up to the true number of rows, and ``class_prior`` is those counts over their sum, so the
  smallest denominator that makes every prior an integer fraction *is* the row count. The attacker
  selects ``n`` and then ``n + 1`` entities (a where filter over a cohort) and reads the count back
  from the released priors (and from any released class counts).
* **Numbers at the edges** (issue 17.2): exponents that overflow a decimal context, bounds equal as
  floats but distinct as decimals, absurd ε and δ, megabyte-long values. Each request must be
  refused with a 4xx problem (never a 5xx) whose body stays small, whatever the input's size.

Runs through the real API (Hub-resolved tokens) on both databases.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

import lab.client as lc
from lab.catalog.service import CatalogFetcher, CatalogImporter
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.integration._dp import dp_project, import_dp_sample, make_cohort

pytestmark = [pytest.mark.integration, pytest.mark.hub]
MAX_BODY = 4096  # bytes: no problem body grows with the input


@pytest.fixture
def setup(api: Any, runtime: Runtime, hub: HubHandle) -> Iterator[dict[str, Any]]:
    versions = import_dp_sample(runtime, ("population",))
    pid = dp_project(runtime, ("population",), epsilon="10", per_query="1")
    token = hub.token_for("alice", ["operator"])
    http = TestClient(api.app, headers={"Authorization": f"token {token}"})
    client = lc.Client("http://testserver", token)
    client.transport.http.close()
    client.transport.http = http
    yield {"pid": pid, "version": versions["population"], "client": client.use(pid), "http": http}
    client.close()


def _adults(runtime: Runtime, setup: dict[str, Any]) -> list[str]:
    """Entity keys of adults whose training columns are all present (each counts exactly once)."""
    path = CatalogFetcher(runtime.store).fetch(setup["version"], runtime.cache_dir)
    t = pq.read_table(path, columns=["person_id", "age", "monthly_income", "education"])
    ok = pc.and_(pc.greater_equal(t["age"], 18), pc.is_valid(t["monthly_income"]))
    t = t.filter(pc.and_(ok, pc.is_valid(t["education"])))
    return [str(k) for k in t["person_id"].to_pylist()]


def recovered_count(priors: list[float], limit: int = 5000) -> int | None:
    """The attacker: the least ``N`` for which every prior is (numerically) an integer over ``N``."""
    for n in range(1, limit):
        if all(abs(p * n - round(p * n)) < 1e-6 for p in priors):
            return n
    return None


def test_naive_bayes_does_not_reveal_the_exact_number_of_selected_rows(
    setup: dict[str, Any], runtime: Runtime
) -> None:
    keys, c = _adults(runtime, setup), setup["client"]
    classes = 5  # education's domain; the old code added one anchor row per class
    hits = []
    for n in (301, 302):  # n and n + 1 selected entities, each with an adult where filter
        cohort = make_cohort(runtime, setup["pid"], setup["version"], keys[:n])
        for _ in range(4):
            m = c.dp.train(
                "population",
                model="gaussian_nb",
                features=["monthly_income"],
                target="education",
                epsilon=0.2,
                where={"age": (18, 110)},
                cohort=cohort,
            )
            params = m.raw["params"]
            got = recovered_count(params["class_prior"])
            counted = params.get("noisy_class_counts")
            hits.append(got in (n, n + classes) or (counted is not None and sum(counted) == n))
    assert not all(hits), "the released priors (or counts) give the exact number of selected rows"
    assert sum(hits) <= 2  # an exact hit is a rare coincidence of noise, not a read-out


def test_regressions_train_on_a_noisy_size_that_is_released(setup: dict[str, Any]) -> None:
    c = setup["client"]
    sizes = set()
    for _ in range(3):
        m = c.dp.train(
            "population",
            model="logistic",
            features=["age", "monthly_income"],
            target="employed",
            epsilon=0.3,
        )
        params = m.raw["params"]
        sizes.add(params["noisy_rows"])
    assert len(sizes) > 1  # a fresh noisy size per training, not the exact row count


def _post(setup: dict[str, Any], route: str, body: Any) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    return setup["http"].post(
        f"/api/v1/projects/{setup['pid']}/dp/{route}",
        content=raw,
        headers={"Content-Type": "application/json"},
    )


def _refused(resp: Any) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert len(resp.content) <= MAX_BODY, len(resp.content)
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["status"] == resp.status_code


def _quantile(bounds: list[Any], epsilon: Any = "0.1") -> dict[str, Any]:
    return {
        "dataset": "population",
        "select": [{"agg": "quantile", "column": "monthly_income", "bounds": bounds}],
        "epsilon": epsilon,
    }


BOUNDS = [
    pytest.param(["0", "1e5000000"], id="decimal-overflow"),
    pytest.param(["-1e5000000", "10"], id="negative-overflow"),
    pytest.param(["0", "1e-1000000"], id="tiny-exponent"),
    pytest.param(["0.1", "0.10000000000000001"], id="equal-as-floats"),
    pytest.param(["1000", "1000.0000000000001"], id="equal-as-floats-large"),
    pytest.param(["0", "1" + "0" * 5000], id="five-thousand-digits"),
]


@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize("route", ["query", "preview"])
def test_bounds_at_the_edges_are_refused_with_small_bodies(
    setup: dict[str, Any], bounds: list[Any], route: str
) -> None:
    _refused(_post(setup, route, _quantile(bounds)))


def test_quantile_bounds_distinct_as_floats_but_too_narrow_for_the_grid(setup: dict[str, Any]) -> None:
    _refused(_post(setup, "preview", _quantile(["1000", "1000.000000000001"])))


@pytest.mark.parametrize(
    "epsilon",
    ["1e5000000", "1e-5000000", "-1e5000000", "NaN", "Infinity", "0." + "0" * 100000 + "1", "1e999999999"],
)
def test_absurd_epsilons_are_refused_with_small_bodies(setup: dict[str, Any], epsilon: str) -> None:
    _refused(_post(setup, "query", _quantile(["0", "20000"], epsilon)))


@pytest.mark.parametrize("delta", ["1e-99999999", "1e99999999", "-0.5", "0." + "0" * 50000 + "1"])
def test_absurd_deltas_are_refused_with_small_bodies(setup: dict[str, Any], delta: str) -> None:
    body = {"dataset": "population", "select": [{"agg": "count"}], "epsilon": "0.1", "delta": delta}
    _refused(_post(setup, "query", body))


def test_json_number_literals_beyond_float_range_are_refused(setup: dict[str, Any]) -> None:
    raw = (
        '{"dataset": "population", "epsilon": 0.1, "select": '
        '[{"agg": "mean", "column": "monthly_income", "bounds": [0, 1e5000000]}]}'
    )
    _refused(_post(setup, "query", raw))
    _refused(_post(setup, "query", raw.replace("0.1", "1e-400")))


@pytest.mark.parametrize(
    "where",
    [
        {"column": "town", "op": "eq", "value": "x" * 1_000_000},
        {"column": "age", "op": "between", "value": ["0", "1e5000000"]},
        {"column": "age", "op": "eq", "value": "9" * 100_000},
        {"column": "x" * 100_000, "op": "eq", "value": "1"},
    ],
    ids=["megabyte-text", "overflow-between", "long-number-text", "long-column"],
)
def test_filters_at_the_edges_are_refused_with_small_bodies(
    setup: dict[str, Any], where: dict[str, Any]
) -> None:
    body = {"dataset": "population", "select": [{"agg": "count"}], "epsilon": "0.1", "where": [where]}
    _refused(_post(setup, "query", body))


@pytest.mark.parametrize(
    "bounds",
    [
        {"age": ["0", "1e5000000"]},
        {"age": ["5", "5.0000000000000001"]},
        {"monthly_income": ["0", "1e-99999"]},
    ],
)
def test_training_bounds_at_the_edges_are_refused(setup: dict[str, Any], bounds: dict[str, Any]) -> None:
    body = {
        "dataset": "population",
        "model": "logistic",
        "features": ["age", "monthly_income"],
        "target": "employed",
        "epsilon": "0.1",
        "bounds": bounds,
    }
    _refused(_post(setup, "train", body))


def test_every_refusal_leaves_the_budget_untouched(setup: dict[str, Any]) -> None:
    _refused(_post(setup, "query", _quantile(["0.1", "0.10000000000000001"])))
    left = setup["client"].dp.preview("population", select=["count"], epsilon=0.1).remaining
    assert math.isclose(left["epsilon"], 10.0)


# -- the catalog's sizes of non-open data (issue 12: exact counts to the bureau only) ---------------


def test_catalog_never_shows_operators_an_exact_size_or_version_difference(
    api: Any, runtime: Runtime, hub: HubHandle, tmp_path: Path
) -> None:
    from tests.integration.test_catalog_import import POLICY, write_health_csv

    n = 41
    for rows in (n, n + 1):  # two monthly versions, one resident apart
        with runtime.transaction() as s:
            CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(
                write_health_csv(tmp_path / f"h{rows}.csv", rows), POLICY, "steward1"
            )
    op = {"Authorization": f"token {hub.token_for('alice', ['operator'])}"}
    bureau = {"Authorization": f"token {hub.token_for('bureau1', ['bureau'])}"}
    listed = api.get("/api/v1/catalog", headers=op).json()
    current = api.get("/api/v1/catalog/health_visits", headers=op).json()
    versions = api.get("/api/v1/catalog/health_visits/versions", headers=op).json()
    old = api.get("/api/v1/catalog/health_visits?version=1", headers=op).json()
    shown = [e["row_count"] for e in versions]
    assert [e["row_count"] for e in listed] == [current["row_count"]] == shown[1:]
    assert old["row_count"] == shown[0] and not any(e["row_count_exact"] for e in [*versions, current])
    assert shown[1] - shown[0] != 1  # the exact difference between the versions is not published
    assert all(s % 10 == 0 for s in shown)
    again = api.get("/api/v1/catalog/health_visits/versions", headers=op).json()
    assert [e["row_count"] for e in again] == shown  # one noisy value per version: nothing to average

    exact = api.get("/api/v1/catalog/health_visits/versions", headers=bureau).json()
    assert [e["row_count"] for e in exact] == [n, n + 1] and all(e["row_count_exact"] for e in exact)

    for e in versions:  # the version's ledger entry, as the operator reads it
        body = api.get(f"/api/v1/ledger/entries/{e['ledger_index']}", headers=op).json()["entry"]["body"]
        assert body.get("row_count") in (None, "withheld")


def test_catalog_size_counts_distinct_entities_not_rows_of_a_multi_row_dataset(
    api: Any, runtime: Runtime, hub: HubHandle, tmp_path: Path
) -> None:
    """One resident with k visits must move the published size by one, not by k.

    A noisy *row* count at ε = 0.1 with sensitivity one row is a k × 0.1 release per resident when
    the raw Parquet holds k rows of that resident: the catalog counts distinct entity keys instead.
    """
    from tests.integration.test_catalog_import import POLICY, write_health_csv

    residents, per = 150, 5  # 750 visit rows
    with runtime.transaction() as s:
        v = CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(
            write_health_csv(tmp_path / "multi.csv", residents * per, per_entity=per), POLICY, "steward1"
        )
    assert (v.row_count, v.entity_count) == (residents * per, residents)
    op = {"Authorization": f"token {hub.token_for('alice', ['operator'])}"}
    shown = api.get("/api/v1/catalog/health_visits", headers=op).json()
    assert shown["counted"] == "entities" and shown["row_count_exact"] is False
    assert shown["entity_count"] == shown["row_count"]
    # two-sided geometric at ε = 0.1, sensitivity 1: P(|Z| > 65) < 0.2 %; a row count sits near 750
    assert abs(shown["row_count"] - residents) <= 70, shown
    bureau = {"Authorization": f"token {hub.token_for('bureau1', ['bureau'])}"}
    exact = api.get("/api/v1/catalog/health_visits", headers=bureau).json()
    assert (exact["row_count"], exact["entity_count"], exact["counted"]) == (
        residents * per,
        residents,
        "rows",
    )


def test_catalog_pages_show_operators_only_the_noisy_size(
    api: Any, runtime: Runtime, hub: HubHandle, tmp_path: Path
) -> None:
    from lab.web import auth
    from tests.integration.test_catalog_import import POLICY, write_health_csv

    with runtime.transaction() as s:
        CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(
            write_health_csv(tmp_path / "h.csv", 37), POLICY, "steward1"
        )
    api.follow_redirects = False
    pages = {}
    for user, groups in (("alice", ["operator"]), ("bureau1", ["bureau"])):
        session = auth.WebSession.new(hub.token_for(user, groups), user)
        api.cookies.set(auth.SESSION_COOKIE, session.cookie(runtime.settings))
        pages[user] = [
            api.get(f"/services/lab-api/ui/catalog{p}?lang=en").text for p in ("", "/health_visits")
        ]
    listing, entry = pages["alice"]
    assert "≈" in listing and "≈" in entry and ">37 <" not in listing and "<dd>37 " not in entry
    assert "entities (distinct entity keys, noisy)" in listing + entry  # what the figure counts
    assert ">37 <small>records<" in pages["bureau1"][0] and "<dd>37 records</dd>" in pages["bureau1"][1]
    assert "≈" not in pages["bureau1"][0] + pages["bureau1"][1]


def test_admission_weighs_an_operators_request_by_the_size_it_may_see(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Admission refuses a request whose estimated cost pushes the in-flight total past a limit; an
    operator timing two of its own requests against each other learns whether ``size × F`` passed
    it, for any F it likes. The estimate must use the noisy size the operator is shown."""
    from lab.api.routes.dp import _cost
    from lab.catalog.visibility import shown_size
    from lab.dp.plan import estimated_cost, plan_query
    from lab.dp.spec import QuerySpec
    from lab.identity import Principal, Role
    from tests.integration.test_catalog_import import POLICY, write_health_csv

    with runtime.transaction() as s:  # 150 residents, 5 visits each: the shown size is near 150
        v = CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(
            write_health_csv(tmp_path / "multi.csv", 750, per_entity=5), POLICY, "steward1"
        )
    noisy = shown_size(v.row_count, v.entity_count, runtime.settings.encryption_key, v.dataset, v.version)
    spec = QuerySpec.model_validate({"dataset": v.dataset, "select": [{"agg": "count"}], "epsilon": "0.1"})
    plan = plan_query(spec, v.policy)
    alice, bureau = Principal("alice", frozenset({Role.operator})), Principal("b", frozenset({Role.bureau}))
    assert _cost(runtime, alice, spec) == estimated_cost(plan, noisy)
    assert _cost(runtime, bureau, spec) == estimated_cost(plan, 750) != estimated_cost(plan, noisy)
