"""Helpers of the DP suites: a small imported sample, DP projects, budget and record counters."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from lab.artifacts.cohorts import save_cohort
from lab.budgets import Budget
from lab.catalog.service import DatasetVersion
from lab.dp.models import DpAnswerRow
from lab.identity import Principal
from lab.projects.access import budget_remaining
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.factories import active_project, import_sample

SAMPLE_BASE = Path(tempfile.mkdtemp(prefix="lab-dp-sample-"))
SCALE = 3000
ALICE = Principal.from_groups("alice", ["operator"])
BOB = Principal.from_groups("bob", ["operator"])


def import_dp_sample(
    runtime: Runtime, names: tuple[str, ...] = ("population", "health_visits")
) -> dict[str, DatasetVersion]:
    return import_sample(runtime, list(names), SCALE, SAMPLE_BASE)


def dp_grant(
    epsilon: str = "3", per_query: str = "1", delta: str = "0.00001", delta_per_query: str = "0.000001"
) -> dict[str, Any]:
    return {
        "epsilon": epsilon,
        "delta": delta,
        "epsilon_per_query": per_query,
        "delta_per_query": delta_per_query,
    }


def dp_project(
    runtime: Runtime, datasets: tuple[str, ...] = ("population", "health_visits"), **grant: str
) -> str:
    return active_project(runtime, {d: {"dp": dp_grant(**grant)} for d in datasets}, members=["alice"])


def remaining(runtime: Runtime, project: str, dataset: str = "population") -> Budget:
    with runtime.transaction() as s:
        left = budget_remaining(s, project, dataset)
    assert left is not None
    return left


def counts(runtime: Runtime, project: str) -> tuple[int, int]:
    """(derived records, stored DP answers) of ``project``."""
    with runtime.transaction() as s:
        records = s.execute(
            select(func.count()).select_from(DerivedRecordRow).where(DerivedRecordRow.project_id == project)
        ).scalar_one()
        answers = s.execute(
            select(func.count()).select_from(DpAnswerRow).where(DpAnswerRow.project_id == project)
        ).scalar_one()
    return int(records), int(answers)


def make_cohort(runtime: Runtime, project: str, version: DatasetVersion, keys: list[str]) -> str:
    """A cohort of entity keys, as the PSI channel would store it."""
    with runtime.transaction() as s:
        row = save_cohort(
            s,
            runtime.store,
            project_id=project,
            dataset_id=version.dataset,
            dataset_version=version.version,
            column="resident_id",
            keys=keys,
            created_by="alice",
            record_id="dr_" + "0" * 32,
            ttl=dt.timedelta(days=1),
        )
    return row.id
