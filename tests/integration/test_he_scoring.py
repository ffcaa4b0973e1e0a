"""Encrypted scoring and lookups end to end: lab client → API → Hub-resolved caller → worker pool.

Correctness on 10k records (linear within 1e-3, logistic within the reported approximation
error, lookups up to CKKS precision), and what each call is charged and recorded as.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from lab.budgets.models import DatasetChargeRow
from lab.ledger.models import LedgerEntryRow
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.integration._he import (
    EDUCATION,
    FEATURES,
    TOWNS,
    add_model,
    add_table,
    charged,
    client,
    features_frame,
    he_project,
    import_he_sample,
    income_table,
    linear_params,
)

pytestmark = [pytest.mark.integration, pytest.mark.hub]
N = 10_000


def account_charges(runtime: Runtime) -> int:
    """Charges to dataset accounts: HE scores models and reads tables released (and charged) before."""
    with runtime.transaction() as s:
        return int(s.execute(select(func.count()).select_from(DatasetChargeRow)).scalar_one())


@pytest.fixture
def setup(api: Any, runtime: Runtime, hub: HubHandle) -> dict[str, Any]:
    import_he_sample(runtime)
    linear = add_model(runtime, "credit_score_v1", "linear", linear_params())
    table = add_table(runtime)
    pid = he_project(runtime, models=["credit_score_v1", "default_risk"])
    logistic_params = {**linear_params(seed=2), "classes": [0, 1]}
    logistic = add_model(runtime, "default_risk", "logistic", logistic_params, project_id=pid)
    token = hub.token_for("alice", ["operator"])
    return {"project": pid, "linear": linear, "logistic": logistic, "table": table, "token": token}


def test_linear_score_matches_plaintext_and_is_charged_once(
    api: Any, runtime: Runtime, setup: dict[str, Any]
) -> None:
    pid = setup["project"]
    c = client(api, setup["token"], pid)
    df = features_frame(N)
    before, charges_before = charged(runtime, pid), account_charges(runtime)
    scores = c.he.score(df, model="credit_score_v1", progress=False)
    p = linear_params()
    expected = df[FEATURES].to_numpy() @ np.array(p["coef"]) + p["intercept"]
    assert scores.index.equals(df.index) and len(scores) == N
    assert np.max(np.abs(scores.to_numpy() - expected)) < 1e-3
    a = scores.attrs
    assert a["records"] == N and a["batches"] == 3 and a["slots"] == 4096 and a["param_set"] == "ckks-8192"
    assert a["model"]["id"] == setup["linear"] and "coef" not in json.dumps(a)
    assert a["quota"] == {"limit": 60_000, "used": N}

    used, records, entries = charged(runtime, pid)
    assert (used - before[0], records - before[1], entries - before[2]) == (N, 1, 1)
    assert account_charges(runtime) == charges_before  # no ε: the model was charged when trained
    with runtime.transaction() as s:
        rec = s.get(DerivedRecordRow, a["record_id"])
        entry = s.execute(select(LedgerEntryRow).where(LedgerEntryRow.idx == rec.ledger_index)).scalar_one()
    assert rec.channel == "he" and rec.operation == "score" and rec.result_digest == a["result_sha256"]
    assert rec.parameters["model"] == {"id": setup["linear"], "name": "credit_score_v1"}
    assert rec.parameters["records"] == N and len(rec.parameters["input_sha256"]) == 64
    logged = json.loads(entry.body)["body"]
    assert entry.kind == "derived.record" and logged["units"] == N and logged["parameters"] == rec.parameters
    assert "coef" not in entry.body and "intercept" not in entry.body  # metadata only: no weights


def test_logistic_score_within_the_stated_approximation_error(
    api: Any, runtime: Runtime, setup: dict[str, Any]
) -> None:
    c = client(api, setup["token"], setup["project"])
    df = features_frame(N, seed=9)
    probs = c.he.score(df, model="default_risk", progress=False)
    p = linear_params(seed=2)
    z = df[FEATURES].to_numpy() @ np.array(p["coef"]) + p["intercept"]
    exact = 1 / (1 + np.exp(-z))
    approx = probs.attrs["approximation"]
    assert probs.attrs["param_set"] == "ckks-8192-deep" and approx["degree"] == 3
    lo, hi = approx["logit_range"]
    assert lo <= z.min() and z.max() <= hi
    err = np.max(np.abs(probs.to_numpy() - exact))
    assert err <= approx["max_error"] + 1e-4, (err, approx)
    logits = c.he.score(df.head(500), model="default_risk", output="logit", progress=False)
    assert np.max(np.abs(logits.to_numpy() - z[:500])) < 1e-3


def test_lookup_matches_the_table(api: Any, runtime: Runtime, setup: dict[str, Any]) -> None:
    import pandas as pd

    c = client(api, setup["token"], setup["project"])
    rng = np.random.default_rng(11)
    people = pd.DataFrame(
        {"town": rng.choice(TOWNS, N), "education": rng.choice(EDUCATION, N)},
        index=pd.RangeIndex(100, 100 + N),
    )
    people.loc[105, "town"] = "不存在镇"  # outside the domain
    charges_before = account_charges(runtime)
    got = c.he.lookup(people, table="income_by_town", progress=False)
    assert account_charges(runtime) == charges_before  # no ε: the table was charged when released
    _, values = income_table()
    t = {town: i for i, town in enumerate(TOWNS)}
    e = {ed: i for i, ed in enumerate(EDUCATION)}
    expected = np.array(
        [values[t[a], e[b]] if a in t else np.nan for a, b in zip(people.town, people.education, strict=True)]
    )
    suppressed = (people.town == TOWNS[1]) & (people.education == EDUCATION[2])  # flat cell 7
    assert got.index.equals(people.index) and np.isnan(got[105]) and got[suppressed].isna().all()
    ok = ~np.isnan(expected) & ~suppressed.to_numpy()
    assert np.max(np.abs(got.to_numpy()[ok] - expected[ok])) < 1e-6 * values.max()
    assert got.attrs["records"] == N and got.attrs["table"]["id"] == setup["table"]
    assert "values" not in got.attrs["table"]
