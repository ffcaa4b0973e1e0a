"""Fixtures of the products tests: sample datasets, a project with real derived records, clients.

* ``sample`` — health_visits, enterprise_registry and population imported at a small scale.
* ``records`` — an active project of alice's with a DP-like spend on health_visits and a
  PSI-like intersection on enterprise_registry, both written by ``commit_result`` (so their
  ledger entries and budgets are real), plus the CSV a product built from them would be.
* ``as_user`` — ``as_user(name, groups)`` returns a :class:`lab.client.Client` talking to the
  in-process API through the ``api`` TestClient with a real Hub token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lab.budgets import Budget
from lab.catalog.service import DatasetVersion
from lab.client import Client
from lab.identity import Principal, Role
from lab.projects.access import Ask, authorize, commit_result, no_channel_params
from lab.runtime import Runtime
from psi_service.access import PsiParams
from psi_service.access import check_params as psi_check
from tests.conftest import HubHandle
from tests.factories import active_project, import_sample, sample_dir

SCALE = 200
GRANTS: dict[str, Any] = {
    "health_visits": {"dp": {"epsilon": "2.0", "delta": "0"}},
    "enterprise_registry": {"psi": {"modes": ["intersection", "cardinality"], "quota": 20}},
    "population": {"psi": {"modes": ["cohort"], "quota": 20}},
}


@pytest.fixture
def sample(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> dict[str, DatasetVersion]:
    base = tmp_path_factory.getbasetemp() / "samples"
    base.mkdir(exist_ok=True)
    return import_sample(runtime, ["health_visits", "enterprise_registry", "population"], SCALE, base)


def sample_file(tmp_path_factory: pytest.TempPathFactory, dataset: str) -> Path:
    return sample_dir(SCALE, tmp_path_factory.getbasetemp() / "samples") / f"{dataset}.parquet"


def dp_record(runtime: Runtime, project: str, user: str = "alice", epsilon: str = "0.2") -> str:
    """A DP-like spend on health_visits, charged and recorded by commit_result."""
    who = Principal(user, frozenset({Role.operator}))
    with runtime.transaction() as s:
        access = authorize(
            s, who, project, "health_visits", "dp", "query", Ask.spend(epsilon), check=no_channel_params
        )
        rec = commit_result(
            s,
            runtime.ledger(s),
            access,
            cost=Budget.of(epsilon),
            parameters={"select": [{"agg": "count"}], "group_by": ["town"], "epsilon": epsilon},
            result_digest=hashlib.sha256(f"dp-result-{project}-{epsilon}".encode()).hexdigest(),
        )
        return rec.id


def psi_record(
    runtime: Runtime,
    project: str,
    dataset: str = "enterprise_registry",
    mode: str = "intersection",
    column: str = "uscc",
    size: int = 150,
) -> str:
    """A PSI-like run, counted against the quota and recorded by commit_result."""
    who = Principal("alice", frozenset({Role.operator}))
    with runtime.transaction() as s:
        access = authorize(
            s,
            who,
            project,
            dataset,
            "psi",
            mode,
            Ask(units=1),
            check=psi_check,
            params=PsiParams(mode, column, size),
        )
        rec = commit_result(
            s,
            runtime.ledger(s),
            access,
            units=1,
            parameters={"mode": mode, "column": column, "set_size": size},
            result_digest=hashlib.sha256(f"psi-{project}-{dataset}-{mode}".encode()).hexdigest(),
        )
        return rec.id


@dataclass
class Records:
    project: str
    dp: str
    psi: str
    csv: Path


@pytest.fixture
def records(runtime: Runtime, sample: dict[str, DatasetVersion], tmp_path: Path) -> Records:
    project = active_project(runtime, GRANTS, members=["alice"])
    dp, psi = dp_record(runtime, project), psi_record(runtime, project)
    csv = tmp_path / "town_report.csv"
    pd.DataFrame(
        {
            "town": ["城桥镇", "堡镇", "新河镇", "陈家镇"],
            "visits_noisy_count": [41, 7, 23, 2],  # DP release: small noisy counts are fine
            "matched_enterprises": [12, 9, 15, 11],
        }
    ).to_csv(csv, index=False)
    return Records(project, dp, psi, csv)


@pytest.fixture
def as_user(api: TestClient, hub: HubHandle) -> Callable[..., Client]:
    """A lab client for ``name`` (with Hub ``groups``) over the in-process API."""
    made: list[Client] = []

    def make(name: str, groups: list[str] = (), token: str | None = None) -> Client:  # type: ignore[assignment]
        tok = token or hub.token_for(name, list(groups))
        c = Client("http://testserver", tok)
        c.transport.http.close()
        c.transport.http = TestClient(api.app, headers={"Authorization": f"token {tok}"})
        made.append(c)
        return c

    return make
