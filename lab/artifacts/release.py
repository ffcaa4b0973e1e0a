"""Released material: which models and tables a channel may use, and what an operator sees of them.

Whatever a project can score with or look up in, it can extract: a lookup with chosen one-hot
vectors returns every cell of a table, and ``output="logit"`` on d + 1 chosen records gives a linear
model's weights. So models and statistics tables count as **released** to every project that may
use them, and each must be one of

* ``"dp"`` — a DP release whose ε was charged when it was made: every project-owned row (the DP
  channel trained or released it from the project's budget and returned its values then), and
  bureau rows promoted from such a release;
* ``"published"`` — the bureau published the values for operators, stating so at publication.

A bureau row without a release (published before releases were recorded) is usable by no channel
and shown to no operator. Record quotas bound the cost of using material, not its secrecy.

:func:`reveals` is the one place that decides what an operator sees of material — every listing
(DP and HE) calls it: the bureau and auditors see everything; an operator of a project sees the
values of the material that project may use (its own, and released bureau material its grant names
and the dataset's policy opens — exactly what they could extract) and only metadata of the rest.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.errors import Forbidden, LabError
from lab.identity import Principal, Role
from lab.projects.models import GrantRow
from lab.projects.typed_grants import HeGrant

Kind = Literal["model", "table"]
Release = Literal["dp", "published"]
RELEASES: tuple[Release, ...] = ("dp", "published")


class MaterialNotReleased(Forbidden):
    code, title = "material-not-released", "Material is neither DP-released nor published"


def release_of(row: Any) -> Release | None:
    """``"dp"`` for project-owned rows; a bureau row's recorded release; ``None`` if it has none."""
    if row.project_id is not None:
        return "dp"
    release = getattr(row, "release", None)
    return release if release in RELEASES else None


def require_released(kind: Kind, row: Any) -> Release:
    """The row's release, or :class:`MaterialNotReleased` (nothing may use unreleased material)."""
    release = release_of(row)
    if release is None:
        raise MaterialNotReleased(
            f"the bureau {kind} {row.name!r} was published without a release: the bureau must "
            'republish it as "dp" (from a DP release) or "published" (values given to operators)'
        )
    return release


def granted(session: Session, project_id: str, kind: Kind, row: Any) -> bool:
    """Does the project's grant on the row's dataset name it (by name or id) for the HE channel?"""
    grant = session.execute(
        select(GrantRow).where(GrantRow.project_id == project_id, GrantRow.dataset_id == row.dataset_id)
    ).scalar_one_or_none()
    listed = HeGrant.of((grant.limits or {}).get("he") if grant else None).names(kind)
    return row.name in listed or row.id in listed


def opened(session: Session, kind: Kind, row: Any) -> bool:
    """Does the dataset's current policy open the (bureau) row to the HE channel?"""
    from lab.catalog.service import CatalogReader

    try:
        he = CatalogReader(session).get(row.dataset_id).policy.channels.he
    except LabError:
        return False
    return he is not None and row.name in (he.models if kind == "model" else he.tables)


def usable(session: Session, project_id: str, kind: Kind, row: Any) -> bool:
    """May the project use (and so extract) the row? Its own rows; released, granted, opened bureau rows."""
    if row.project_id is not None:
        return bool(row.project_id == project_id)
    return (
        release_of(row) is not None and granted(session, project_id, kind, row) and opened(session, kind, row)
    )


def reveals(session: Session, principal: Principal, project_id: str | None, kind: Kind, row: Any) -> bool:
    """Whether ``principal``, reading as ``project_id``, sees the values (weights, cells) of ``row``."""
    if principal.has(Role.bureau, Role.auditor):
        return True
    return project_id is not None and usable(session, project_id, kind, row)
