"""Read-only lookups the pages need and no capability service offers (documented in docs/web.md).

* :func:`project_requests` — a project's request log from the audit table (``lab.audit.models``).
* :func:`dataset_labels` — display titles of datasets, without failing on unknown ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.audit.models import AuditRequestRow
from lab.catalog.models import DatasetRow, DatasetVersionRow


def project_requests(session: Session, project_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The latest audited API requests naming ``project_id`` (who, route, outcome, latency)."""
    rows = session.execute(
        select(AuditRequestRow)
        .where(AuditRequestRow.project_id == project_id)
        .order_by(AuditRequestRow.at.desc(), AuditRequestRow.id.desc())
        .limit(limit)
    ).scalars()
    return [
        {
            "at": r.at,
            "principal": r.principal,
            "method": r.method,
            "route": r.route,
            "status": r.status,
            "outcome": r.outcome,
            "latency_ms": r.latency_ms,
        }
        for r in rows
    ]


def dataset_labels(session: Session, datasets: Iterable[str], lang: str) -> dict[str, str]:
    """Dataset id -> title in ``lang`` (from the current catalog version); unknown ids map to themselves."""
    ids = sorted(set(datasets))
    labels = {d: d for d in ids}
    if not ids:
        return labels
    rows = session.execute(
        select(DatasetVersionRow.dataset_id, DatasetVersionRow.policy)
        .join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id)
        .where(DatasetVersionRow.version == DatasetRow.current_version, DatasetRow.id.in_(ids))
    )
    for ds, policy in rows:
        title = (policy or {}).get("title") or {}
        labels[ds] = str(title.get(lang) or title.get("zh") or ds)
    return labels
