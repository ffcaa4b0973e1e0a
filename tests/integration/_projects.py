"""Helpers shared by the projects suites: catalog import, applications, tokens, direct spends."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lab.budgets import Budget
from lab.identity import Principal
from lab.projects.access import Ask, authorize, commit_result, no_channel_params
from lab.projects.models import BudgetRow
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.factories import import_sample

SAMPLE_BASE = Path(tempfile.mkdtemp(prefix="lab-projects-sample-"))
DATASETS = ["population", "enterprise_registry", "environment_monitoring"]


def import_catalog(runtime: Runtime, names: list[str] = DATASETS) -> None:
    """Import the sample datasets the projects tests use (small scale, real SeaweedFS)."""
    import_sample(runtime, names, 200, SAMPLE_BASE)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def application(**overrides: Any) -> dict[str, Any]:
    """A valid application body touching a non-open dataset (two approvals by default)."""
    body: dict[str, Any] = {
        "title": "镇域就业与收入分析",
        "purpose": "Estimate employment and income by town to plan job-training programs.",
        "scenario": "就业培训规划 (job-training planning)",
        "organization": "Chongming Analytics Co.",
        "contact": "alice@example.com",
        "members": ["alice", "bob"],
        "datasets": {
            "population": {"dp": {"epsilon": "2.0", "delta": "0.00001"}, "psi": {"modes": ["cohort"]}},
            "enterprise_registry": {"psi": {"modes": ["intersection"], "quota": 20}},
        },
        "days": 60,
        "commitment": "本单位承诺仅在批准范围内使用数据，不尝试识别个人，项目结束后配合处置全部工作数据。",
    }
    body.update(overrides)
    return body


class People:
    """Hub tokens of the demo roles (real Hub users and groups)."""

    def __init__(self, hub: HubHandle) -> None:
        self.alice = hub.token_for("alice", ["operator"])
        self.bob = hub.token_for("bob", ["operator"])
        self.eve = hub.token_for("eve", ["operator"])
        self.bureau1 = hub.token_for("bureau1", ["bureau"])
        self.bureau2 = hub.token_for("bureau2", ["bureau"])


def apply_and_approve(api: Any, people: People, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """File ``body`` as alice and approve it by both reviewers; returns the active project."""
    r = api.post("/api/v1/projects", json=body or application(), headers=auth(people.alice))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    for reviewer in (people.bureau1, people.bureau2):
        r = api.post(f"/api/v1/projects/{pid}/review", json={"decision": "approve"}, headers=auth(reviewer))
        assert r.status_code == 200, r.text
        if r.json()["status"] == "active":
            break
    assert r.json()["status"] == "active", r.json()
    return dict(r.json())


def spend(
    runtime: Runtime, user: str, project: str, dataset: str, epsilon: str, *, fail_after: bool = False
) -> DerivedRecordRow:
    """authorize + commit_result for a DP spend of ``epsilon`` in one transaction (as a channel would)."""
    principal = Principal.from_groups(user, ["operator"])
    with runtime.transaction() as s:
        access = authorize(
            s, principal, project, dataset, "dp", "query", Ask.spend(epsilon), check=no_channel_params
        )
        # like a channel that shows the remaining budget before charging: the row stays in the
        # session's identity map, and commit_result must still re-read it once locked
        seen = s.execute(select(BudgetRow).where(BudgetRow.project_id == project)).scalars().all()
        record = commit_result(
            s,
            runtime.ledger(s),
            access,
            cost=Budget.of(epsilon),
            parameters={"select": "count", "epsilon": epsilon},
            result_digest=hashlib.sha256(f"{project}{epsilon}".encode()).hexdigest(),
        )
        assert seen is not None
        if fail_after:
            raise RuntimeError("the channel failed after charging")
    return record
