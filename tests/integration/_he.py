"""Helpers of the HE suites: sample import, server-side material rows, projects, clients, counters."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

import lab.client as lc
from lab.artifacts.models import ModelRow, StatTableRow
from lab.catalog.service import DatasetVersion
from lab.db.base import utcnow
from lab.ledger.models import LedgerEntryRow
from lab.projects.models import UsageRow
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.factories import active_project, import_sample

SAMPLE_BASE = Path(tempfile.mkdtemp(prefix="lab-he-sample-"))
TOWNS = ["城桥镇", "堡镇", "新河镇", "庙镇", "竖新镇", "向化镇", "三星镇", "港沿镇", "中兴镇"]
TOWNS += ["陈家镇", "绿华镇", "港西镇", "建设镇", "新海镇", "东平镇", "长兴镇", "新村乡", "横沙乡"]
EDUCATION = ["小学及以下", "初中", "高中", "大专", "本科及以上"]
N_FEATURES = 16
FEATURES = [f"f{i:02d}" for i in range(N_FEATURES)]
BOUNDS = {f: [0.0, float(10 * (i + 1))] for i, f in enumerate(FEATURES)}


def import_he_sample(runtime: Runtime) -> dict[str, DatasetVersion]:
    """population (tables) and social_insurance (models), imported through the real catalog."""
    return import_sample(runtime, ["population", "social_insurance"], 300, SAMPLE_BASE)


def linear_params(seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    coef = (rng.normal(size=N_FEATURES) / np.array([b[1] for b in BOUNDS.values()])).tolist()
    return {"coef": coef, "intercept": 0.25, "bounds": BOUNDS}


def add_model(
    runtime: Runtime,
    name: str,
    kind: str,
    params: dict[str, Any],
    *,
    project_id: str | None = None,
    features: list[str] = FEATURES,
    dataset: str = "social_insurance",
    release: str | None = "published",
) -> str:
    """A model row written directly (as DP training or a bureau publication would)."""
    mid = "m_" + uuid.uuid4().hex
    with runtime.transaction() as s:
        s.add(
            ModelRow(
                id=mid,
                project_id=project_id,
                name=name,
                kind=kind,
                dataset_id=dataset,
                dataset_version=1,
                features=features,
                target="y",
                params=params,
                epsilon="0.5" if project_id else "0",
                created_by="bureau1" if project_id is None else "alice",
                created_at=utcnow(),
                record_id=None,
                release=release if project_id is None else "dp",
            )
        )
    return mid


def income_table(seed: int = 3) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Dims town × education and DP-looking mean incomes (one suppressed cell)."""
    values = np.round(np.random.default_rng(seed).uniform(2000, 45000, (len(TOWNS), len(EDUCATION))), 2)
    return [{"column": "town", "domain": TOWNS}, {"column": "education", "domain": EDUCATION}], values


def add_table(
    runtime: Runtime,
    name: str = "income_by_town",
    *,
    project_id: str | None = None,
    release: str | None = "published",
) -> str:
    dims, values = income_table()
    flat: list[float | None] = values.ravel().tolist()
    flat[7] = None  # a suppressed cell
    tid = "t_" + uuid.uuid4().hex
    with runtime.transaction() as s:
        s.add(
            StatTableRow(
                id=tid,
                project_id=project_id,
                name=name,
                dataset_id="population",
                dataset_version=1,
                dims=dims,
                statistic="mean(monthly_income)",
                values=flat,
                epsilon="0.5",
                created_by="bureau1",
                created_at=utcnow(),
                record_id=None,
                release=release if project_id is None else "dp",
            )
        )
    return tid


def he_project(
    runtime: Runtime,
    *,
    models: list[str] = ("credit_score_v1",),  # type: ignore[assignment]
    tables: list[str] = ("income_by_town",),  # type: ignore[assignment]
    record_quota: int = 60_000,
    members: list[str] = ("alice",),  # type: ignore[assignment]
) -> str:
    return active_project(
        runtime,
        {
            "social_insurance": {"he": {"models": list(models), "record_quota": record_quota}},
            "population": {"he": {"tables": list(tables), "record_quota": record_quota}},
        },
        list(members),
    )


def client(api: Any, token: str, project: str | None = None) -> lc.Client:
    """The lab client speaking HTTP to the in-process API (tokens resolved by the real Hub)."""
    from fastapi.testclient import TestClient

    c = lc.Client("http://testserver", token)
    c.transport.http.close()
    c.transport.http = TestClient(api.app, headers={"Authorization": f"token {token}"})
    return c.use(project) if project else c


def charged(runtime: Runtime, project_id: str) -> tuple[int, int, int]:
    """(HE records charged, derived records, ledger entries) — to assert that refusals charge nothing."""
    with runtime.transaction() as s:
        used = s.execute(
            select(func.coalesce(func.sum(UsageRow.used), 0)).where(
                UsageRow.project_id == project_id, UsageRow.channel == "he"
            )
        ).scalar_one()
        records = s.execute(
            select(func.count())
            .select_from(DerivedRecordRow)
            .where(DerivedRecordRow.project_id == project_id)
        ).scalar_one()
        entries = s.execute(select(func.count()).select_from(LedgerEntryRow)).scalar_one()
    return int(used), int(records), int(entries)


def features_frame(n: int, seed: int = 5) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({f: rng.uniform(lo, hi, n) for f, (lo, hi) in BOUNDS.items()})
