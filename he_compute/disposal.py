"""Disposal of a project's HE data (article 19): its registered public contexts.

Run by the projects' disposal as ``he.contexts`` (:func:`lab.projects.disposal.channel_disposers`).
The context objects live under ``projects/<id>/he/`` in the work bucket, which disposal deletes;
this disposer also stamps the rows ``deleted_at`` and drops the in-memory copies.
"""

from __future__ import annotations

from he_compute.contexts import dispose_project
from lab.projects.disposal import DisposalContext


def dispose_he(ctx: DisposalContext) -> dict[str, object]:
    """Delete the project's HE contexts; returns counts for the disposal record."""
    return dict(dispose_project(ctx.session, ctx.store, ctx.project_id))
