"""Disposal of a project's PSI working data (article 19).

Run by the projects' disposal as ``psi.sessions`` (:func:`lab.projects.disposal.channel_disposers`):
deletes the project's PSI sessions and any request parts still stored for them
(``projects/<id>/psi/`` in the work bucket). Cohorts are shared artifacts (``lab.artifacts``) and
the projects' disposal deletes them; cached setups belong to a dataset version and key epoch, not
to a project, and stay.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.projects.disposal import DisposalContext
from lab.storage import ObjectStore
from psi_service.models import PsiSessionRow


def dispose_project(session: Session, store: ObjectStore, project_id: str) -> list[str]:
    """Delete ``project_id``'s PSI sessions and stored parts; returns what was deleted.

    The caller commits (in the disposal transaction that writes the disposal record).
    """
    work = store.cfg.bucket_work
    deleted = [f"{work}/{k}" for k in store.delete_prefix(work, f"projects/{project_id}/psi/")]
    rows = list(
        session.execute(select(PsiSessionRow).where(PsiSessionRow.project_id == project_id)).scalars()
    )
    for row in rows:
        session.delete(row)
        deleted.append(f"psi_session:{row.id}")
    session.flush()
    return deleted


def dispose_psi(ctx: DisposalContext) -> dict[str, Any]:
    """Delete the project's PSI sessions and parts; returns counts for the disposal record."""
    deleted = dispose_project(ctx.session, ctx.store, ctx.project_id)
    sessions = sum(1 for d in deleted if d.startswith("psi_session:"))
    return {"sessions": sessions, "objects": len(deleted) - sessions}
