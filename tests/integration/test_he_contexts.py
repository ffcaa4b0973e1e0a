"""The lab never holds a key that can decrypt an operator's data; contexts go at disposal; bureau material.

* every stored context (rows and objects) is inspected: none is private, none has a secret key,
  none decrypts a ciphertext of its operator;
* disposal deletes a project's contexts (objects gone, rows stamped) through the registered disposer;
* the bureau publishes models and tables (API, client, CLI) that every project may then use if its
  grant and the dataset's policy name them; operators never see weights or values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tenseal as ts
from sqlalchemy import select
from typer.testing import CliRunner

import lab.client as lc
from he_compute.models import HeContextRow
from lab.ledger.models import LedgerEntryRow
from lab.projects.disposal import dispose
from lab.projects.models import ProjectRow
from lab.runtime import Runtime
from lab.settings import get_settings
from lab.storage import StoredObject
from tests.conftest import HubHandle
from tests.integration._he import TOWNS, client, he_project, import_he_sample

pytestmark = [pytest.mark.integration, pytest.mark.hub]


@pytest.fixture
def project(api: Any, runtime: Runtime) -> str:
    import_he_sample(runtime)
    return he_project(runtime, members=["alice", "bob"])


def test_no_stored_context_can_decrypt(api: Any, runtime: Runtime, hub: HubHandle, project: str) -> None:
    alice = client(api, hub.token_for("alice", ["operator"]), project)
    bob = client(api, hub.token_for("bob", ["operator"]), project)
    secrets = {}
    for c, sets in (
        (alice, ["ckks-8192", "ckks-8192-deep", "ckks-16384"]),
        (bob, ["ckks-8192"]),
    ):
        for name in sets:
            ctx = c.he.context(name)
            secrets[ctx.sha256] = ctx
        with pytest.raises(lc.BadRequest, match="secret key"):
            c.transport.post(
                f"/api/v1/projects/{project}/he/contexts",
                params={"param_set": "ckks-8192"},
                content=c.he.context("ckks-8192").ctx.serialize(save_secret_key=True),
            )
    assert len(alice.he.contexts()) == 3 and len(bob.he.contexts()) == 1

    bucket = runtime.settings.s3.bucket_work
    with runtime.transaction() as s:
        rows = list(s.execute(select(HeContextRow)).scalars())
    stored = runtime.store.list_keys(bucket, "projects/")
    assert sorted(r.object_key for r in rows) == sorted(k for k in stored if "/he/" in k) and len(rows) == 4
    for row in rows:
        data = runtime.store.get_bytes(StoredObject(row.bucket, row.object_key, row.sha256, row.size_bytes))
        held = ts.context_from(data)
        assert not held.is_private() and not held.has_secret_key(), row.id
        with pytest.raises(ValueError):
            held.secret_key()
        owner = secrets[row.sha256]  # the operator's own context, secret key and all
        ct = ts.ckks_vector(owner.ctx, [1.0, 2.0, 3.0]).serialize()
        with pytest.raises(ValueError):
            ts.ckks_vector_from(held, ct).decrypt()
        assert np.allclose(ts.ckks_vector_from(owner.ctx, ct).decrypt(), [1, 2, 3], atol=1e-4)

    bureau = client(api, hub.token_for("bureau1", ["bureau"]))
    assert len(bureau.he.contexts(project)) == 4  # the bureau sees everyone's (public parts)
    doomed = alice.he.contexts()["id"].iloc[0]
    bearer = {"Authorization": f"token {hub.token_for('bob', ['operator'])}"}
    gone = api.delete(f"/api/v1/projects/{project}/he/contexts/{doomed}", headers=bearer)
    assert gone.status_code == 404  # bob cannot delete alice's context
    alice.transport.request("DELETE", f"/api/v1/projects/{project}/he/contexts/{doomed}")
    assert doomed not in set(alice.he.contexts()["id"])
    assert len(runtime.store.list_keys(bucket, f"projects/{project}/he/")) == 3


def test_disposal_deletes_the_contexts(api: Any, runtime: Runtime, hub: HubHandle, project: str) -> None:
    alice = client(api, hub.token_for("alice", ["operator"]), project)
    cid = alice.he.context("ckks-8192").registered[project]
    bucket = runtime.settings.s3.bucket_work
    assert runtime.store.list_keys(bucket, f"projects/{project}/he/")
    with runtime.transaction() as s:
        s.get(ProjectRow, project).status = "ended"  # type: ignore[union-attr]
    report = dispose(runtime, project, actor="bureau1")
    assert report is not None and report.disposers["he.contexts"] == {"contexts": 1, "objects": 1}
    assert runtime.store.list_keys(bucket, f"projects/{project}/he/") == []
    with runtime.transaction() as s:
        row = s.get(HeContextRow, cid)
        assert row is not None and row.deleted_at is not None
    assert alice.he.contexts().empty
    fresh = client(api, hub.token_for("alice", ["operator"]), project)
    with pytest.raises(lc.ProjectInactive):
        fresh.he.context("ckks-8192")  # an ended project takes no new context


def test_bureau_publishes_models_and_tables(
    api: Any, runtime: Runtime, hub: HubHandle, project: str, tmp_path: Path, cli_env: None
) -> None:
    bureau = client(api, hub.token_for("bureau1", ["bureau"]))
    alice = client(api, hub.token_for("alice", ["operator"]), project)
    coef, intercept = [0.002, 0.0001], -1.5
    pub = bureau.he.publish_model(
        "credit_score_v1", release="published", kind="linear", dataset="social_insurance",
        features=["headcount", "avg_wage_base"], target="risk", coef=coef, intercept=intercept,
    )  # fmt: skip
    assert pub["scope"] == "bureau" and pub["bounds"] == {
        "headcount": [0, 5000],
        "avg_wage_base": [2000, 40000],
    }
    assert pub["release"] == "published" and pub["coef"] == coef  # the bureau sees what it published
    with pytest.raises(lc.Forbidden):
        alice.he.publish_model("x", release="published", kind="linear", dataset="social_insurance",
                               features=["headcount"], target="t", coef=[1.0], intercept=0.0)  # fmt: skip
    with pytest.raises(lc.BadRequest, match="no column"):
        bureau.he.publish_model("y", release="published", kind="linear", dataset="social_insurance",
                                features=["salary"], target="t", coef=[1.0], intercept=0.0)  # fmt: skip
    with pytest.raises(lc.BadRequest, match="2 numbers"):
        bureau.he.publish_model("y", release="published", kind="linear", dataset="social_insurance",
                                features=["headcount", "avg_wage_base"], target="t", coef=[1.0],
                                intercept=0.0)  # fmt: skip
    values = [float(1000 * (i + 1)) for i in range(len(TOWNS))]
    table = bureau.he.publish_table("income_by_town", release="published", dataset="population",
                                    dims=[{"column": "town", "domain": TOWNS}],
                                    statistic="mean(monthly_income)", values=values)  # fmt: skip
    assert table["dims"][0]["domain"] == TOWNS and table["values"] == values
    with pytest.raises(lc.BadRequest, match="domain"):
        bureau.he.publish_table("t2", release="published", dataset="population",
                                dims=[{"column": "town", "domain": ["上海"]}], statistic="count",
                                values=[1.0])  # fmt: skip
    with runtime.transaction() as s:
        entries = [json.loads(e.body) for e in s.execute(
            select(LedgerEntryRow).where(LedgerEntryRow.kind == "artifact.published")).scalars()]  # fmt: skip
    assert [e["body"]["name"] for e in entries] == ["credit_score_v1", "income_by_town"]
    assert all(len(e["body"]["content_sha256"]) == 64 for e in entries) and "0.002" not in json.dumps(entries)

    listed = alice.he.models()
    # published and usable by alice's project: its weights are released to her (lab.artifacts.release)
    assert list(listed["name"]) == ["credit_score_v1"] and list(listed["coef"][0]) == coef
    df = pd.DataFrame({"headcount": [10, 200, 7000], "avg_wage_base": [5000.0, 12000.0, 1000.0]})
    with pytest.warns(UserWarning, match="1 records had features outside"):
        s = alice.he.score(df, model="credit_score_v1", progress=False)
    clipped = df.clip(lower=[0, 2000], upper=[5000, 40000], axis=1).to_numpy()
    assert np.allclose(s.to_numpy(), clipped @ np.array(coef) + intercept, atol=1e-3)
    got = alice.he.lookup(pd.Series(TOWNS[::-1], name="town"), table="income_by_town", progress=False)
    assert np.allclose(got.to_numpy(), values[::-1], rtol=1e-6)

    from lab.cli.main import app

    run = CliRunner().invoke
    spec = tmp_path / "model.json"
    spec.write_text(json.dumps({
        "name": "wage_model", "release": "published", "kind": "logistic", "dataset": "social_insurance",
        "features": ["avg_wage_base"], "target": "default", "coef": [0.0001], "intercept": -2.0,
        "classes": [0, 1]}))  # fmt: skip
    r = run(app, ["he", "publish-model", str(spec), "--as", "bureau2"])
    assert r.exit_code == 0 and json.loads(r.output)["name"] == "wage_model", r.output
    r = run(app, ["he", "models"])
    assert r.exit_code == 0 and {m["name"] for m in json.loads(r.output)} == {"credit_score_v1", "wage_model"}
    assert {m["release"] for m in json.loads(r.output)} == {"published"}
    assert "ckks-8192-deep" in run(app, ["he", "params"]).output
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "name": "t",
                "release": "published",
                "dataset": "population",
                "dims": [],
                "statistic": "x",
                "values": [1],
            }
        )
    )
    r = run(app, ["he", "publish-table", str(bad), "--as", "bureau2"])
    assert r.exit_code == 2 and "dims" in r.output


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
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
