"""Test data builders shared by the suites (real database rows and real imports, no mocks).

* :func:`import_sample` generates the synthetic catalog at a small scale and imports the chosen
  datasets through the real catalog service (SeaweedFS + database + ledger), cached per scale.
* :func:`active_project` writes an approved, active project with members, grants and budgets
  directly, so that channel tests do not depend on the review workflow.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from lab.budgets import Budget
from lab.catalog.policy import load_policy
from lab.catalog.service import CatalogImporter, DatasetVersion
from lab.db.base import utcnow
from lab.projects.models import BudgetRow, GrantRow, ProjectMemberRow, ProjectRow, ProjectStatus
from lab.runtime import Runtime

_SAMPLES: dict[tuple[int, int], Path] = {}


def sample_dir(scale: int, base: Path, seed: int = 20260101) -> Path:
    """Generate (once per process) the sample catalog at ``scale``."""
    from lab.sample.generate import generate

    key = (scale, seed)
    if key not in _SAMPLES or not _SAMPLES[key].exists():
        out = base / f"sample-{scale}-{seed}"
        generate(scale, out, seed=seed)
        _SAMPLES[key] = out
    return _SAMPLES[key]


def import_sample(runtime: Runtime, datasets: list[str], scale: int, base: Path) -> dict[str, DatasetVersion]:
    """Import ``datasets`` of the sample catalog at ``scale``; returns their versions."""
    out = sample_dir(scale, base)
    versions = {}
    for name in datasets:
        policy = load_policy(out / "policies" / f"{name}.yaml")
        with runtime.transaction() as s:
            versions[name] = CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(
                out / f"{name}.parquet", policy, "steward1"
            )
    return versions


def active_project(
    runtime: Runtime,
    grants: dict[str, dict[str, Any]],
    members: list[str] = ("alice",),  # type: ignore[assignment]
    *,
    project_id: str | None = None,
    days: int = 30,
    status: ProjectStatus = ProjectStatus.active,
    applicant: str | None = None,
) -> str:
    """An active project whose grant is ``grants`` (dataset -> channel limits, see lab.projects.access)."""
    pid = project_id or "p" + uuid.uuid4().hex[:10]
    now = utcnow()
    with runtime.transaction() as s:
        s.add(
            ProjectRow(
                id=pid,
                title=f"test project {pid}",
                purpose="testing",
                scenario="tests",
                organization="Test Co.",
                contact="test@example.com",
                applicant=applicant or members[0],
                status=status.value,
                requested_days=days,
                requested=grants,
                commitment="我方承诺遵守数据安全规定",
                commitment_signed_by=members[0],
                created_at=now,
                updated_at=now,
                starts_at=now,
                ends_at=now + dt.timedelta(days=days),
            )
        )
        s.flush()
        for m in members:
            s.add(ProjectMemberRow(project_id=pid, username=m, added_at=now))
        for dataset, limits in grants.items():
            s.add(GrantRow(project_id=pid, dataset_id=dataset, limits=limits))
            if "dp" in limits:
                b = Budget.of(limits["dp"]["epsilon"], limits["dp"].get("delta", 0)).as_strings()
                s.add(
                    BudgetRow(
                        project_id=pid,
                        dataset_id=dataset,
                        epsilon_total=b["epsilon"],
                        delta_total=b["delta"],
                        epsilon_spent="0",
                        delta_spent="0",
                        spends=0,
                    )
                )
    return pid
