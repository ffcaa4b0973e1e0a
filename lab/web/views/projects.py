"""Applications queue and project detail (members, grant, budget chart, history, request log),
and the parsing of the review form into the projects service's :class:`ReviewIn`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from lab.errors import BadRequest
from lab.identity import Principal, Role
from lab.projects.models import ProjectStatus
from lab.projects.schemas import ProjectOut, ReviewIn
from lab.projects.service import insiders
from lab.projects.views import budget_report, list_projects, project_view, visible
from lab.settings import ProjectsSettings
from lab.web import queries
from lab.web.charts import BudgetBar, budget_chart
from lab.web.i18n import Translator
from lab.web.render import fmt_decimal

#: The one limit per channel a reviewer edits in the form (others are shown, kept as requested).
EDITABLE = {"dp": ("epsilon", False), "psi": ("quota", True), "he": ("record_quota", True)}
MAX_FIELDS = 200


def queue(session: Session, principal: Principal, status: str, lang: str) -> dict[str, Any]:
    """The applications awaiting review, those awaiting the applicant, and all projects (filtered)."""
    statuses = [s.value for s in ProjectStatus]
    status = status if status in statuses else ""
    pending = list_projects(session, principal, ProjectStatus.pending.value)
    waiting = list_projects(session, principal, ProjectStatus.changes_requested.value)
    projects = list_projects(session, principal, status or None)
    datasets = {ds for p in (*pending, *waiting, *projects) for ds in p.datasets}
    return {
        "pending": pending,
        "waiting": waiting,
        "projects": projects,
        "labels": queries.dataset_labels(session, datasets, lang),
        "status": status,
        "statuses": statuses,
    }


def _show(value: Any, t: Translator, field: str) -> str:
    if isinstance(value, list):
        shown = [t.of("psimode", v) if field == "modes" else str(v) for v in value]
        return t("common.sep").join(shown) if shown else t("common.none")
    if isinstance(value, str):
        return fmt_decimal(value)
    return str(value)


def grant_rows(grants: Mapping[str, Any], labels: Mapping[str, str], t: Translator) -> list[dict[str, Any]]:
    """One row per dataset and channel with its limits, formatted."""
    rows = []
    for ds in sorted(grants):
        for ch in sorted(grants[ds] or {}):
            limits = grants[ds][ch] or {}
            rows.append(
                {
                    "dataset": ds,
                    "dataset_label": labels.get(ds, ds),
                    "channel": ch,
                    "limits": [(k, _show(v, t, k)) for k, v in limits.items()],
                }
            )
    return rows


def _review_form(
    session: Session, principal: Principal, out: ProjectOut, labels: Mapping[str, str], t: Translator
) -> dict[str, Any] | None:
    """The review form's rows, or why this reviewer cannot review (None if not a reviewer at all)."""
    if out.status != ProjectStatus.pending or not principal.has(Role.bureau):
        return None
    blocked = ""
    project = visible(session, principal, out.id)
    if principal.name in insiders(session, project):
        blocked = "review.self"
    elif principal.name in out.approvals.by:
        blocked = "review.already"
    rows = []
    for row in grant_rows(out.requested, labels, t):
        field, integer = EDITABLE.get(row["channel"], ("", False))
        limits = out.requested[row["dataset"]][row["channel"]] or {}
        rows.append(
            {
                **row,
                "field": field if field in limits else "",
                "integer": integer,
                "value": _show(limits.get(field, ""), t, field),
                "fixed": [(k, v) for k, v in row["limits"] if k != field],
            }
        )
    return {"blocked": blocked, "rows": rows}


def detail(
    session: Session, principal: Principal, project_id: str, cfg: ProjectsSettings, t: Translator
) -> dict[str, Any]:
    """Everything the project page shows. Raises ``ProjectNotFound`` for projects the caller may not see."""
    project = visible(session, principal, project_id)
    out = project_view(session, project, cfg)
    labels = queries.dataset_labels(session, [*out.requested, *out.grants], t.lang)
    bars = [
        BudgetBar(
            b.dataset, labels.get(b.dataset, b.dataset), Decimal(b.epsilon_spent), Decimal(b.epsilon_total)
        )
        for b in out.budgets
    ]
    chart = budget_chart(
        bars,
        title=t("budget.chart_title"),
        desc=t(
            "budget.chart_desc",
            items=t("common.sep").join(
                t("budget.chart_item", name=b.label, spent=fmt_decimal(b.spent), total=fmt_decimal(b.total))
                for b in bars
            ),
        ),
        spent_label=t("budget.bar_label"),
    )
    overseer = principal.has(Role.bureau)
    return {
        "p": out,
        "labels": labels,
        "grant_rows": grant_rows(out.grants or out.requested, labels, t),
        "chart": chart,
        "usage": budget_report(session, project).usage,
        "requests": queries.project_requests(session, project.id)
        if principal.has(Role.bureau, Role.auditor)
        else [],
        "review": _review_form(session, principal, out, labels, t),
        "supervise": overseer and out.status in (ProjectStatus.active, ProjectStatus.suspended),
    }


def parse_review(fields: Mapping[str, str], requested: Mapping[str, Any], requested_days: int) -> ReviewIn:
    """The review form as a :class:`ReviewIn`: unticked channels are dropped, edited limits reduced.

    Only differences from the request are sent, so the service's checks (never larger than the
    request, within the dataset's policy) apply to exactly what the reviewer changed.
    """
    try:
        return _parse_review(fields, requested, requested_days)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise BadRequest(f"{where}: {first['msg']}", field=where) from None


def _parse_review(fields: Mapping[str, str], requested: Mapping[str, Any], requested_days: int) -> ReviewIn:
    decision = fields.get("decision", "")
    if decision not in ("approve", "reject", "changes"):
        raise BadRequest("choose approve, reject or request changes", field="decision")
    reason = fields.get("reason", "").strip()
    if decision != "approve":
        return ReviewIn(decision=decision, reason=reason)
    grants: dict[str, dict[str, dict[str, Any] | None] | None] = {}
    for ds, channels in requested.items():
        for ch, limits in (channels or {}).items():
            if f"keep.{ds}.{ch}" not in fields:
                grants.setdefault(ds, {})[ch] = None  # type: ignore[index]
                continue
            field = EDITABLE.get(ch, ("", False))[0]
            value = fields.get(f"{ds}.{ch}.{field}", "").strip()
            if field and value and value != _plain((limits or {}).get(field)):
                grants.setdefault(ds, {})[ch] = {field: value}  # type: ignore[index]
    days_text = fields.get("days", "").strip()
    days: int | None = None
    if days_text:
        if not (days_text.isascii() and days_text.isdigit() and len(days_text) <= 5):  # not "²", not 10⁵⁰⁰⁰
            raise BadRequest("the term must be a whole number of days", field="days")
        days = int(days_text) if int(days_text) != requested_days else None
    return ReviewIn(decision="approve", reason=reason, grants=grants or None, days=days)


def _plain(value: Any) -> str:
    return fmt_decimal(value) if isinstance(value, str) else str(value)


def form_fields(items: list[tuple[str, str]]) -> dict[str, str]:
    """A submitted form as a dict, refusing oversized ones."""
    if len(items) > MAX_FIELDS:
        raise BadRequest(f"a form has at most {MAX_FIELDS} fields")
    out: dict[str, str] = {}
    for k, v in items:
        if len(k) > 200 or len(v) > 8000:
            raise BadRequest("a form field is too long")
        out[k] = v
    return out
