"""Server-side material the HE channel combines with ciphertexts: models and DP statistics tables.

**Naming.** Grants (``{"he": {"models": [...], "tables": [...]}}``) and dataset policies
(``channels.he.models`` / ``tables``) name material by its **name** — stable across
re-publication and readable in an application. A grant may also list a row's id. A call may
refer to material by id or name; a name resolves to the project's own row of that name if there
is one, else to the newest bureau-published row.

**Who may use what.** Project-owned material (DP-trained inside the project, paid from its
budget) needs the grant to name it. Bureau-published material (``project_id`` NULL, available to
every project) needs the grant *and* the dataset policy's ``channels.he`` list to name it — the
steward's consent for that dataset.

**Released, not secret.** What a project can score with or look up in, it can extract (chosen
one-hot lookups return every cell; d + 1 logits give a linear model's weights). So every model and
table used here is DP-released (ε charged at release) or published by the bureau as given to
operators (:mod:`lab.artifacts.release`); a bureau row with neither is refused. Listings show
names, kinds, features with their bounds and dimensions to every reader, and the weights and values
to whom :func:`lab.artifacts.release.reveals` allows (the projects that may use them). Record
quotas bound the cost of use, not secrecy.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from he_compute import ops
from lab.artifacts import release as rel
from lab.artifacts.models import ModelRow, StatTableRow
from lab.catalog.policy import ColumnRole, Policy
from lab.catalog.service import CatalogReader
from lab.db.base import utcnow
from lab.errors import BadRequest, NotFound, NotInGrant
from lab.identity import Principal, Role
from lab.ledger import Ledger
from lab.projects.models import GrantRow
from lab.projects.typed_grants import HeGrant

Kind = Literal["model", "table"]
SCORABLE = ("linear", "logistic")


def _rows(session: Session, kind: Kind, project_id: str | None, ref: str | None = None) -> list[Any]:
    table: Any = ModelRow if kind == "model" else StatTableRow
    q = select(table)
    q = q.where(or_(table.project_id == project_id, table.project_id.is_(None))) if project_id else q
    if ref is not None:
        q = q.where(or_(table.id == ref, table.name == ref))
    return list(session.execute(q.order_by(table.created_at.desc())).scalars())


def resolve(session: Session, kind: Kind, project_id: str, ref: str) -> Any:
    """The model or table ``ref`` (id or name) as seen from ``project_id``."""
    rows = _rows(session, kind, project_id, ref)
    by_id = [r for r in rows if r.id == ref]
    own = [r for r in rows if r.project_id == project_id]
    chosen = (by_id or own or rows or [None])[0]
    if chosen is None:
        raise NotFound(f"no {kind} {ref!r} available to project {project_id}")
    return chosen


def listed_key(session: Session, kind: Kind, project_id: str, row: Any) -> str:
    """The identifier the project's grant lists for ``row``: its name, else its id (else its name,
    so that :func:`~lab.projects.access.authorize` refuses it with the usual problem)."""
    grant = session.execute(
        select(GrantRow).where(GrantRow.project_id == project_id, GrantRow.dataset_id == row.dataset_id)
    ).scalar_one_or_none()
    listed = HeGrant.of((grant.limits or {}).get("he") if grant else None).names(kind)
    return str(row.id) if row.name not in listed and row.id in listed else str(row.name)


def check_policy(policy: Policy, kind: Kind, row: Any) -> None:
    """Material must be released (DP or published); bureau material must also be opened by the
    dataset's policy (``channels.he``)."""
    rel.require_released(kind, row)
    if row.project_id is not None:
        return
    he = policy.channels.he
    allowed = (he.models if kind == "model" else he.tables) if he else ()
    if row.name not in allowed:
        raise NotInGrant(f"the policy of {row.dataset_id} does not open HE {kind} {row.name!r}")


def model_public(row: ModelRow, *, reveal: bool = False) -> dict[str, Any]:
    """A model's metadata, with its weights if ``reveal`` (see :func:`lab.artifacts.release.reveals`)."""
    params = row.params or {}
    bounds = params.get("bounds") or {}
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "scope": "project" if row.project_id else "bureau",
        "project": row.project_id,
        "dataset": row.dataset_id,
        "dataset_version": row.dataset_version,
        "features": list(row.features),
        "bounds": {f: bounds.get(f) for f in row.features},
        "target": row.target,
        "classes": (row.params or {}).get("classes"),
        "scorable": row.kind in SCORABLE,
        "release": rel.release_of(row),
        "epsilon": row.epsilon,
        **({"coef": params.get("coef"), "intercept": params.get("intercept")} if reveal else {}),
        "created_at": row.created_at.isoformat(),
    }


def table_public(row: StatTableRow, *, reveal: bool = False) -> dict[str, Any]:
    """A table's dimensions, with its values if ``reveal`` (see :func:`lab.artifacts.release.reveals`)."""
    return {
        "id": row.id,
        "name": row.name,
        "scope": "project" if row.project_id else "bureau",
        "project": row.project_id,
        "dataset": row.dataset_id,
        "dataset_version": row.dataset_version,
        "dims": row.dims,
        "statistic": row.statistic,
        "release": rel.release_of(row),
        "epsilon": row.epsilon,
        **({"values": list(row.values)} if reveal else {}),
        "created_at": row.created_at.isoformat(),
    }


def listing(
    session: Session, principal: Principal, kind: Kind, project_id: str | None
) -> list[dict[str, Any]]:
    """Material visible to a project (its own and bureau-published), or everything (``None``);
    values as :func:`lab.artifacts.release.reveals` decides."""
    out = model_public if kind == "model" else table_public
    return [
        out(r, reveal=rel.reveals(session, principal, project_id, kind, r))
        for r in _rows(session, kind, project_id)
    ]


def table_arrays(row: StatTableRow) -> tuple[list[int], list[float], list[int]]:
    """Shape, values (missing cells as 0) and the flat indices of missing (suppressed) cells."""
    shape = [len(d["domain"]) for d in row.dims]
    values, missing = [], []
    for i, v in enumerate(row.values):
        ok = isinstance(v, int | float) and math.isfinite(v)
        values.append(float(v) if ok else 0.0)
        if not ok:
            missing.append(i)
    return shape, values, missing


# ---- bureau publication ----------------------------------------------------------------------


def _numeric(policy: Policy, column: str) -> tuple[float, float]:
    for c in policy.columns:
        if c.name == column:
            if c.role is not ColumnRole.numeric or c.bounds is None:
                raise BadRequest(f"{column!r} is not a numeric column of {policy.dataset}")
            return float(c.bounds[0]), float(c.bounds[1])
    raise BadRequest(f"{policy.dataset} has no column {column!r}")


def _publish_entry(
    ledger: Ledger, principal: Principal, kind: Kind, row: Any, content: Any, source: Any = None
) -> None:
    body = {
        "artifact": kind,
        "id": row.id,
        "name": row.name,
        "dataset": {"id": row.dataset_id, "version": row.dataset_version},
        "content_sha256": hashlib.sha256(
            json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest(),
        "scope": "all-projects",
        "release": row.release,
        "epsilon": row.epsilon,
    }
    if source is not None:
        body["source"] = {"id": source.id, "project": source.project_id, "record_id": source.record_id}
    ledger.append("artifact.published", body, actor=principal.name)


def promote(
    session: Session, ledger: Ledger, principal: Principal, kind: Kind, name: str, source: str
) -> Any:
    """Publish a project's DP release (model or table ``source``) for every project: ``release="dp"``.

    The source must be a DP-trained model or DP-released table (a derived record charged its ε);
    its content is copied, so nothing but a DP release is published this way.
    """
    principal.require(Role.bureau)
    table: Any = ModelRow if kind == "model" else StatTableRow
    src = session.get(table, source)
    if src is None or src.project_id is None or src.record_id is None:
        raise BadRequest(f'release "dp" needs the id of a project\'s DP {kind} (trained or released with ε)')
    if kind == "model" and src.kind not in SCORABLE:
        raise BadRequest(f"only {' and '.join(SCORABLE)} models can be published for HE scoring")
    columns = ("kind", "features", "target", "params") if kind == "model" else ("dims", "statistic", "values")
    row = table(
        id=("m_" if kind == "model" else "t_") + uuid.uuid4().hex,
        project_id=None,
        name=name,
        dataset_id=src.dataset_id,
        dataset_version=src.dataset_version,
        epsilon=src.epsilon,
        created_by=principal.name,
        created_at=utcnow(),
        record_id=src.record_id,
        release="dp",
        **{c: getattr(src, c) for c in columns},
    )
    session.add(row)
    session.flush()
    _publish_entry(ledger, principal, kind, row, {c: getattr(src, c) for c in columns}, src)
    return row


def publish_model(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    *,
    name: str,
    kind: str,
    dataset: str,
    features: list[str],
    target: str,
    params: dict[str, Any],
) -> ModelRow:
    """Publish a model for every project's HE scoring (bureau only); bounds default to the policy's.

    ``release="published"``: its weights are given to the operators of every project that may use
    it (ε 0: no DP claim). A DP model is published with :func:`promote` instead.
    """
    principal.require(Role.bureau)
    if kind not in SCORABLE:
        raise BadRequest(f"only {' and '.join(SCORABLE)} models can be published for HE scoring")
    version = CatalogReader(session).get(dataset)
    if not features or len(set(features)) != len(features):
        raise BadRequest("features must be distinct column names")
    bounds = dict(params.get("bounds") or {})
    for f in features:
        bounds.setdefault(f, list(_numeric(version.policy, f)))
    try:
        clean = {**params, "bounds": {f: [float(b) for b in bounds[f]] for f in features}}
        ops.score_plan(kind, clean, features, degree=None, output="probability", levels=7)
    except (ops.PlanError, TypeError, ValueError) as exc:
        raise BadRequest(f"the model cannot be scored: {exc}") from None
    row = ModelRow(
        id="m_" + uuid.uuid4().hex,
        project_id=None,
        name=name,
        kind=kind,
        dataset_id=version.dataset,
        dataset_version=version.version,
        features=list(features),
        target=target,
        params=clean,
        epsilon="0",
        created_by=principal.name,
        created_at=utcnow(),
        record_id=None,
        release="published",
    )
    session.add(row)
    session.flush()
    _publish_entry(ledger, principal, "model", row, {"kind": kind, "features": features, "params": clean})
    return row


def publish_table(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    *,
    name: str,
    dataset: str,
    dims: list[dict[str, Any]],
    statistic: str,
    values: list[float | None],
) -> StatTableRow:
    """Publish a statistics table for every project's HE lookups (bureau only).

    ``release="published"``: its values are given to the operators of every project that may use
    it (ε 0: no DP claim). A DP table is published with :func:`promote` instead.
    """
    principal.require(Role.bureau)
    version = CatalogReader(session).get(dataset)
    columns = {c.name: c for c in version.policy.columns}
    for d in dims:
        col = columns.get(d.get("column", ""))
        if col is None or col.domain is None:
            raise BadRequest(f"dimension {d.get('column')!r} is not a categorical column of {dataset}")
        domain = list(d.get("domain") or [])
        if not domain or len(set(domain)) != len(domain) or not set(domain) <= set(col.domain):
            raise BadRequest(f"the domain of {d['column']!r} must be distinct values of the policy's domain")
    shape = [len(d["domain"]) for d in dims]
    if len(values) != math.prod(shape):
        raise BadRequest(f"a table of shape {shape} needs {math.prod(shape)} values (row-major)")
    if any(v is not None and not (isinstance(v, int | float) and math.isfinite(v)) for v in values):
        raise BadRequest("table values must be finite numbers (or null for suppressed cells)")
    row = StatTableRow(
        id="t_" + uuid.uuid4().hex,
        project_id=None,
        name=name,
        dataset_id=version.dataset,
        dataset_version=version.version,
        dims=[{"column": d["column"], "domain": list(d["domain"])} for d in dims],
        statistic=statistic,
        values=list(values),
        epsilon="0",
        created_by=principal.name,
        created_at=utcnow(),
        record_id=None,
        release="published",
    )
    session.add(row)
    session.flush()
    _publish_entry(ledger, principal, "table", row, {"dims": row.dims, "values": [str(v) for v in values]})
    return row
