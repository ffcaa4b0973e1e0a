"""HE material counts as released: what a malicious operator extracts, and what listings show.

A lookup with chosen one-hot vectors returns every cell of a table; ``output="logit"`` on d + 1
chosen records returns a model's weights. So the lab uses only material that is DP-released or
published by the bureau as given to operators (``lab.artifacts.release``), refuses the rest, and
every listing (DP and HE) shows an operator the values of exactly the material their project may use.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

import lab.client as lc
from lab.artifacts.models import StatTableRow
from lab.ledger.models import LedgerEntryRow
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._he import (
    EDUCATION,
    FEATURES,
    TOWNS,
    add_model,
    add_table,
    charged,
    client,
    he_project,
    import_he_sample,
    linear_params,
)

pytestmark = [pytest.mark.integration, pytest.mark.hub]
LOGISTIC = {**linear_params(seed=4), "classes": [0, 1]}


def every_cell() -> pd.DataFrame:
    """The chosen inputs of a table extraction: one record per cell (a one-hot per dimension)."""
    return pd.DataFrame(list(itertools.product(TOWNS, EDUCATION)), columns=["town", "education"])


def extract_weights(c: lc.Client, model: str) -> np.ndarray:
    """d + 1 chosen records through output="logit": the zero vector, then one unit per feature."""
    x = np.vstack([np.zeros(len(FEATURES)), np.eye(len(FEATURES))])
    logits = c.he.score(pd.DataFrame(x, columns=FEATURES), model=model, output="logit", progress=False)
    return np.append(logits.to_numpy()[1:] - logits.to_numpy()[0], logits.to_numpy()[0])


@pytest.fixture
def alice(api: Any, runtime: Runtime, hub: HubHandle) -> lc.Client:
    import_he_sample(runtime)
    pid = he_project(runtime)
    return client(api, hub.token_for("alice", ["operator"]), pid)


def test_chosen_onehot_lookup_of_an_unreleased_table_is_refused(alice: lc.Client, runtime: Runtime) -> None:
    add_table(runtime, release=None)  # a bureau table published before releases were recorded
    before = charged(runtime, alice.project or "")
    with pytest.raises(lc.Forbidden) as err:
        alice.he.lookup(every_cell(), table="income_by_town", progress=False)
    assert err.value.code == "material-not-released"
    assert charged(runtime, alice.project or "") == before
    listed = alice.he.tables()
    assert listed["release"].isna().all() and listed["values"].isna().all()


def test_chosen_onehot_lookup_of_a_published_table_yields_only_its_listed_values(
    alice: lc.Client, runtime: Runtime
) -> None:
    add_table(runtime)  # release "published"
    got = alice.he.lookup(every_cell(), table="income_by_town", progress=False)
    listed = alice.he.tables().iloc[0]
    assert listed["release"] == "published"
    shown = np.array([np.nan if v is None else v for v in listed["values"]])
    assert np.allclose(got.to_numpy(), shown, rtol=1e-6, equal_nan=True)  # nothing beyond what is shown


def test_logit_extraction_of_an_unreleased_model_is_refused(alice: lc.Client, runtime: Runtime) -> None:
    add_model(runtime, "credit_score_v1", "logistic", LOGISTIC, release=None)
    before = charged(runtime, alice.project or "")
    with pytest.raises(lc.Forbidden) as err:
        extract_weights(alice, "credit_score_v1")
    assert err.value.code == "material-not-released"
    assert charged(runtime, alice.project or "") == before
    assert alice.he.models()["coef"].isna().all()


def test_logit_extraction_of_a_published_model_recovers_only_its_listed_weights(
    alice: lc.Client, runtime: Runtime
) -> None:
    add_model(runtime, "credit_score_v1", "logistic", LOGISTIC)
    got = extract_weights(alice, "credit_score_v1")
    listed = alice.he.models().iloc[0]
    assert listed["release"] == "published"
    assert np.allclose(got, [*listed["coef"], listed["intercept"]], atol=1e-4)
    assert np.allclose(got, [*LOGISTIC["coef"], LOGISTIC["intercept"]], atol=1e-4)


def test_publication_states_its_release(api: Any, runtime: Runtime, hub: HubHandle) -> None:
    import_he_sample(runtime)
    bureau = client(api, hub.token_for("bureau1", ["bureau"]))
    content = {"dataset": "population", "dims": [{"column": "town", "domain": TOWNS}],
               "statistic": "mean(monthly_income)", "values": [1.0] * len(TOWNS)}  # fmt: skip
    refusals = [
        {"name": "t", **content},  # no release: refused, never silently "secret"
        {"name": "t", "release": "dp", **content},  # dp: only a DP release may be promoted
        {"name": "t", "release": "published", "epsilon": "1.0", **content},  # no ε claim without DP
        {"name": "t", "release": "published", "source": "t_x", **content},
        {"name": "t", "release": "published", "dataset": "population"},  # no content
    ]
    for body in refusals:
        r = bureau.transport.http.post("/api/v1/he/tables", json=body)
        assert r.status_code in (400, 422), (body, r.text)
    with pytest.raises(lc.BadRequest, match="DP table"):
        bureau.he.publish_table("t", release="dp", source=add_table(runtime, "legacy", release=None))

    # a project's DP release, promoted: ε charged when it was released, content copied from it
    pid = active_project(runtime, {"population": {"dp": {"epsilon": "2.0", "delta": "0"}}})
    alice = client(api, hub.token_for("alice", ["operator"]), pid)
    t = alice.dp.release_table("population", "mean(monthly_income)", dims=["town"], epsilon=0.5, name="inc")
    pub = bureau.he.publish_table("income_by_town", release="dp", source=t.id)
    assert pub["release"] == "dp" and pub["epsilon"] == "0.5" and pub["scope"] == "bureau"
    with runtime.transaction() as s:
        row = s.get(StatTableRow, pub["id"])
        assert row is not None and row.values == s.get(StatTableRow, t.id).values  # type: ignore[union-attr]
        entry = s.execute(
            select(LedgerEntryRow).where(LedgerEntryRow.kind == "artifact.published")
        ).scalar_one()
    body = json.loads(entry.body)["body"]
    assert body["release"] == "dp" and body["source"]["record_id"] == row.record_id is not None


def test_listings_show_bureau_material_alike(api: Any, runtime: Runtime, hub: HubHandle) -> None:
    """One decision for every route: the project that may use a table sees its values, others don't."""
    import_he_sample(runtime)
    add_table(runtime)  # published, opened by population's policy
    add_model(runtime, "credit_score_v1", "linear", linear_params())
    add_table(runtime, "legacy_table", release=None)
    granted = he_project(runtime, tables=["income_by_town", "legacy_table"])
    dp_only = {"dp": {"epsilon": "1.0", "delta": "0"}}
    other = active_project(runtime, {"population": dp_only, "social_insurance": dp_only})
    token = hub.token_for("alice", ["operator"])
    c = client(api, token)
    http = c.transport.http

    def seen(project: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for route, kind, field in (
            (f"/api/v1/projects/{project}/dp/tables", "table", "values"),
            (f"/api/v1/projects/{project}/he/tables", "table", "values"),
            (f"/api/v1/projects/{project}/dp/models", "model", "coef"),
            (f"/api/v1/projects/{project}/he/models", "model", "coef"),
        ):
            r = http.get(route)
            assert r.status_code == 200, r.text
            for item in r.json():
                out.setdefault((kind, item["name"]), set()).add(item.get(field) is not None)
        return out

    assert seen(granted) == {
        ("table", "income_by_town"): {True},
        ("table", "legacy_table"): {False},  # unreleased: usable by no one, shown to no operator
        ("model", "credit_score_v1"): {True},
    }
    assert seen(other) == {
        ("table", "income_by_town"): {False},
        ("table", "legacy_table"): {False},
        ("model", "credit_score_v1"): {False},
    }
    bureau = client(api, hub.token_for("bureau1", ["bureau"]))
    rows = bureau.transport.http.get(f"/api/v1/projects/{other}/dp/tables").json()
    assert all(r["values"] is not None for r in rows)  # the bureau sees everything
    # every table of the lab (no project's): the bureau's view; operators list a project's
    everything = bureau.transport.http.get("/api/v1/he/tables")
    assert everything.status_code == 200, everything.text
    assert {r["name"] for r in everything.json()} == {"income_by_town", "legacy_table"}
    assert http.get("/api/v1/he/tables").status_code == 403
    moved = bureau.transport.http.get("/api/v1/he/tables", params={"project": granted})  # the old query
    assert moved.status_code == 400 and "/api/v1/projects/{project}/he/tables" in moved.json()["detail"]
