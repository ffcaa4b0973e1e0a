"""``client.projects``: apply for a project, review it (bureau), follow its budget.

Usage, with ``c`` a connected :class:`~lab.client.Client` (needs a running lab, so not run here)::

    p = c.projects.apply(title="...", purpose="...", scenario="...", days=90, members=["alice"],
                         datasets={"population": {"dp": {"epsilon": 1.0}}},
                         organization="...", contact="...", commitment="...")
    c.projects.review(p.id, decision="approve", reason="ok")   # bureau
    c.projects.budget(p.id)                                      # DataFrame per dataset
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from lab.client._client import Client

BASE = "/api/v1/projects"
DEFAULT_COMMITMENT = (
    "本单位承诺：仅在批准的用途和范围内使用公共数据，遵守数据安全与个人信息保护的法律法规及实验室规则，"
    "不尝试识别个人或还原原始数据，项目结束后配合处置全部工作数据。"
)


@dataclass(frozen=True)
class Project:
    """A project as the API returned it; ``raw`` holds every field (grants, budgets, events...)."""

    id: str
    title: str
    status: str
    applicant: str
    serving: bool
    ends_at: str | None
    members: list[str] = field(default_factory=list)
    grants: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Project:
        return cls(
            id=body["id"],
            title=body["title"],
            status=body["status"],
            applicant=body["applicant"],
            serving=bool(body.get("serving")),
            ends_at=body.get("ends_at"),
            members=[m["username"] for m in body.get("members", []) if not m.get("removed_at")],
            grants=body.get("grants", {}),
            raw=body,
        )

    @property
    def events(self) -> pd.DataFrame:
        """Every transition of the project, oldest first."""
        cols = ["at", "actor", "action", "from_status", "to_status", "reason", "ledger_index"]
        return pd.DataFrame(self.raw.get("events", []), columns=cols)


class ProjectsAPI:
    """Project applications, reviews, supervision and budgets."""

    def __init__(self, client: Client) -> None:
        self._c = client
        self._t = client.transport

    def apply(
        self,
        *,
        title: str,
        purpose: str,
        scenario: str,
        datasets: dict[str, dict[str, Any]],
        days: int = 90,
        members: list[str] | None = None,
        organization: str = "",
        contact: str = "",
        commitment: str = DEFAULT_COMMITMENT,
    ) -> Project:
        """Apply for a project; refused at once if a request exceeds a dataset policy's caps."""
        body = {
            "title": title,
            "purpose": purpose,
            "scenario": scenario,
            "datasets": datasets,
            "days": days,
            "members": list(members or []),
            "organization": organization or "(not given)",
            "contact": contact or "(not given)",
            "commitment": commitment,
        }
        return Project.from_api(self._t.post(BASE, json=body))

    def get(self, project: str | None = None) -> Project:
        """One project (members, grant, budgets, events)."""
        return Project.from_api(self._t.get(f"{BASE}/{self._c.require_project(project)}"))

    def review(
        self,
        project: str,
        *,
        decision: str,
        reason: str = "",
        grants: dict[str, Any] | None = None,
        days: int | None = None,
    ) -> Project:
        """Bureau: ``approve`` (``grants``/``days`` may only reduce), ``reject`` or ``changes``."""
        body = {"decision": decision, "reason": reason, "grants": grants, "days": days}
        return Project.from_api(self._t.post(f"{BASE}/{project}/review", json=body))

    def resubmit(self, project: str, *, note: str = "", **changes: Any) -> Project:
        """Resubmit after changes were requested; ``changes`` are fields of the application."""
        return Project.from_api(self._t.post(f"{BASE}/{project}/resubmit", json={"note": note, **changes}))

    def _supervise(self, action: str, project: str, reason: str) -> Project:
        return Project.from_api(self._t.post(f"{BASE}/{project}/{action}", json={"reason": reason}))

    def suspend(self, project: str, reason: str = "") -> Project:
        """Bureau: serve nothing until resumed (data kept)."""
        return self._supervise("suspend", project, reason)

    def resume(self, project: str, reason: str = "") -> Project:
        """Bureau: serve a suspended project again."""
        return self._supervise("resume", project, reason)

    def end(self, project: str, reason: str = "") -> Project:
        """Bureau: end the project; access is revoked and its working data disposed of."""
        return self._supervise("end", project, reason)

    def add_members(self, project: str, users: list[str], reason: str = "") -> Project:
        return Project.from_api(
            self._t.post(f"{BASE}/{project}/members", json={"users": users, "reason": reason})
        )

    def remove_members(self, project: str, users: list[str], reason: str = "") -> Project:
        r = self._t.request("DELETE", f"{BASE}/{project}/members", json={"users": users, "reason": reason})
        return Project.from_api(r.json())

    def budget(self, project: str | None = None) -> pd.DataFrame:
        """Per dataset: ε and δ total, spent and remaining (exact decimal strings), and spends; the
        dataset's own account (shared by every project): its lifetime ε and this period's allowance,
        what it has left (the smaller of the two), its composition rule (``basic``: Σε; ``zcdp``: Σρ,
        so ε left is not additive) and which limit binds the next release (``project`` or
        ``dataset``: whether a release of the project's remaining ε would still fit the account)."""
        report = self._t.get(f"{BASE}/{self._c.require_project(project)}/budget")
        cols = [
            "dataset",
            "epsilon_total",
            "epsilon_spent",
            "epsilon_remaining",
            "delta_total",
            "delta_spent",
            "delta_remaining",
            "spends",
            "fraction_spent",
            "dataset_epsilon_lifetime",
            "dataset_epsilon_allowance",
            "dataset_epsilon_remaining",
            "dataset_delta_remaining",
            "dataset_period",
            "dataset_composition",
            "binding",
        ]
        return pd.DataFrame(report["budgets"], columns=cols)

    def check(
        self, dataset: str, channel: str, operation: str = "query", project: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """Ask whether a channel call would be allowed (raises the refusal a channel would raise)."""
        body = {"dataset": dataset, "channel": channel, "operation": operation, "params": params}
        answer: dict[str, Any] = self._t.post(f"{BASE}/{self._c.require_project(project)}/check", json=body)
        return answer

    # defined last: inside the class body the name ``list`` means this method
    def list(self, status: str | None = None) -> pd.DataFrame:
        """The caller's projects (all projects for the bureau), newest first."""
        rows = self._t.get(BASE, params={"status": status} if status else None)
        cols = [
            "id",
            "title",
            "status",
            "serving",
            "applicant",
            "organization",
            "datasets",
            "created_at",
            "ends_at",
        ]
        return pd.DataFrame(rows, columns=cols)
