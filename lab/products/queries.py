"""Reading products: lists, the review queue, detail with lineage, certificates, public lookup.

Who may read: the members of the product's project, the bureau, registrars and auditors (anyone
else gets 403, without the product's project); artifacts are downloaded by the project's members
and the bureau only.
The public lookup (:func:`lookup`, :func:`registry_status`) needs no identity and returns only
non-sensitive metadata, the status and ledger proofs.

The bureau web pages call :func:`review_queue` and :func:`detail` (with a database session, so not run here)::

    queue = review_queue(session, principal)            # oldest first
    page = detail(session, principal, queue[0].product)  # versions, checks, lineage, events
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.errors import Forbidden, InvalidProof
from lab.identity import Principal, Role
from lab.ledger import Ledger
from lab.products.errors import ProductNotFound
from lab.products.models import REVIEWABLE, ProductEventRow, ProductRow, ProductVersionRow
from lab.products.schemas import (
    Artifact,
    Event,
    LineageItem,
    Name,
    ProductDetail,
    ProductOut,
    PublicEntry,
    QueueItem,
    VersionOut,
)
from lab.projects.access import is_member, member_projects
from lab.projects.models import ProjectRow
from lab.shared.certificates import STATUS_FORMAT, leaf_hash
from lab.storage import StoredObject

READ_ALL = (Role.bureau, Role.registrar, Role.auditor)

#: distinct bureau reviewers who must approve a version that failed an automatic check
FLAGGED_APPROVALS = 2


def required_approvals(row: ProductVersionRow) -> int:
    """Distinct approvals a version needs: two when it failed an automatic check (it was flagged)."""
    return 1 if row.checks_passed else FLAGGED_APPROVALS


def endorsements(session: Session, product_id: str, version: int) -> list[ProductEventRow]:
    """The approvals a flagged version has collected so far (short of the last one), oldest first."""
    q = select(ProductEventRow).where(
        ProductEventRow.product_id == product_id,
        ProductEventRow.version == version,
        ProductEventRow.action == "endorsed",
    )
    return list(session.execute(q.order_by(ProductEventRow.id)).scalars())


def version_out(session: Session, row: ProductVersionRow) -> VersionOut:
    return VersionOut(
        version=row.version,
        status=row.status,
        name=Name(zh=row.name_zh, en=row.name_en),
        description=row.description,
        scenario=row.scenario,
        artifact=Artifact(
            kind=row.artifact_kind,
            sha256=row.artifact_sha256,
            size=row.artifact_size,
            filename=row.artifact_filename,
            media_type=row.artifact_media_type,
            endpoint=row.endpoint,
        ),
        derived_from=list(row.derived_from),
        checks=row.checks,
        checks_passed=row.checks_passed,
        submitted_by=row.submitted_by,
        submitted_at=row.submitted_at,
        submit_ledger_index=row.submit_ledger_index,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        review_reason=row.review_reason,
        review_ledger_index=row.review_ledger_index,
        has_certificate=row.certificate is not None,
        approvals=[e.actor for e in endorsements(session, row.product_id, row.version)],
        approvals_required=required_approvals(row),
    )


def _versions(session: Session, product_id: str) -> list[ProductVersionRow]:
    q = select(ProductVersionRow).where(ProductVersionRow.product_id == product_id)
    return list(session.execute(q.order_by(ProductVersionRow.version)).scalars())


def _row_version(session: Session, product_id: str, version: int) -> ProductVersionRow:
    row = session.execute(
        select(ProductVersionRow).where(
            ProductVersionRow.product_id == product_id, ProductVersionRow.version == version
        )
    ).scalar_one_or_none()
    if row is None:
        raise ProductNotFound(f"product {product_id} has no version {version}")
    return row


def product_out(session: Session, prod: ProductRow) -> ProductOut:
    """The API view of a product with its latest version."""
    return ProductOut(
        **_base(prod), latest=version_out(session, _row_version(session, prod.id, prod.current_version))
    )


def _base(prod: ProductRow) -> dict[str, Any]:
    return {
        "id": prod.id,
        "project": prod.project_id,
        "registration_number": prod.registration_number,
        "name": Name(zh=prod.name_zh, en=prod.name_en),
        "type": prod.type,
        "status": prod.status,
        "current_version": prod.current_version,
        "approved_version": prod.approved_version,
        "created_by": prod.created_by,
        "created_at": prod.created_at,
        "registered_at": prod.registered_at,
        "revoked_at": prod.revoked_at,
        "revoked_by": prod.revoked_by,
        "revoke_reason": prod.revoke_reason,
    }


def _readable(
    session: Session, principal: Principal, product_id: str, overseers: tuple[Role, ...] = READ_ALL
) -> ProductRow:
    """The product if ``principal`` is a member of its project or holds one of ``overseers``.

    Anyone else is refused without learning the product's project.
    """
    prod = session.get(ProductRow, product_id)
    if prod is None:
        raise ProductNotFound(f"no product {product_id}")
    if principal.has(*overseers) or is_member(session, prod.project_id, principal.name):
        return prod
    raise Forbidden(f"{principal.name} may not read product {product_id} (not a member of its project)")


def get_product(session: Session, principal: Principal, product_id: str) -> ProductOut:
    return product_out(session, _readable(session, principal, product_id))


def list_products(
    session: Session,
    principal: Principal,
    *,
    project: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ProductOut]:
    """Products the caller may read, newest first, optionally by project and status."""
    q = select(ProductRow)
    if not principal.has(*READ_ALL):
        q = q.where(ProductRow.project_id.in_(member_projects(session, principal.name)))
    if project:
        q = q.where(ProductRow.project_id == project)
    if status:
        q = q.where(ProductRow.status == status)
    q = q.order_by(ProductRow.created_at.desc(), ProductRow.id).limit(min(limit, 1000)).offset(offset)
    return [product_out(session, p) for p in session.execute(q).scalars()]


def review_queue(session: Session, principal: Principal) -> list[QueueItem]:
    """Versions awaiting the bureau's decision (checks passed or flagged), oldest first."""
    principal.require(Role.bureau)
    rows = session.execute(
        select(ProductVersionRow, ProductRow)
        .join(ProductRow, ProductRow.id == ProductVersionRow.product_id)
        .where(ProductVersionRow.status.in_([s.value for s in REVIEWABLE]))
        .order_by(ProductVersionRow.submitted_at, ProductVersionRow.id)
    ).all()
    return [
        QueueItem(
            product=p.id,
            version=v.version,
            project=p.project_id,
            name=Name(zh=v.name_zh, en=v.name_en),
            type=p.type,
            status=v.status,
            failed_checks=[c["name"] for c in v.checks if c.get("status") == "fail"],
            submitted_by=v.submitted_by,
            submitted_at=v.submitted_at,
            registration_number=p.registration_number,
        )
        for v, p in rows
    ]


def detail(session: Session, principal: Principal, product_id: str) -> ProductDetail:
    """Everything the review page shows: versions with checks, lineage of the latest, events."""
    prod = _readable(session, principal, product_id)
    versions = _versions(session, prod.id)
    latest = next(v for v in versions if v.version == prod.current_version)
    events = session.execute(
        select(ProductEventRow).where(ProductEventRow.product_id == prod.id).order_by(ProductEventRow.id)
    ).scalars()
    project = session.get(ProjectRow, prod.project_id)
    return ProductDetail(
        **_base(prod),
        latest=version_out(session, latest),
        versions=[version_out(session, v) for v in versions],
        lineage=[LineageItem(**i) for i in latest.lineage],
        events=[
            Event(
                version=e.version,
                action=e.action,
                actor=e.actor,
                reason=e.reason,
                at=e.at,
                ledger_index=e.ledger_index,
            )
            for e in events
        ],
        organization=project.organization if project else "",
    )


def certificate(
    session: Session,
    principal: Principal,
    product_id: str,
    version: int | None = None,
    anchor_with: tuple[Ledger, str, int] | None = None,
) -> dict[str, Any]:
    """The certificate of the approved (or given) version.

    With ``anchor_with`` (ledger, origin, quorum) it is anchored to a witnessed checkpoint once
    one covers it (stored from then on; see :mod:`lab.products.anchoring`).
    """
    prod = _readable(session, principal, product_id)
    chosen = version if version is not None else prod.approved_version
    if chosen is None:
        raise ProductNotFound(f"product {prod.id} has no approved version, so no certificate")
    row = _row_version(session, prod.id, chosen)
    if row.certificate is None:
        raise ProductNotFound(f"version {chosen} of {prod.id} was not approved; it has no certificate")
    if anchor_with is not None:
        from lab.products.anchoring import anchor

        ledger, origin, quorum = anchor_with
        anchored = anchor(session, ledger, dict(row.certificate), origin, quorum)
        if anchored != row.certificate:
            row.certificate = anchored
        return anchored
    return dict(row.certificate)


def artifact_object(
    session: Session, principal: Principal, product_id: str, version: int | None = None
) -> tuple[StoredObject, str]:
    """Where a version's file artifact is stored and its file name.

    Only the members of the product's project and the bureau may download it: a submitted artifact
    may still hold what the disclosure checks flag, so registrars and auditors get the digest only.
    """
    prod = _readable(session, principal, product_id, (Role.bureau,))
    row = _row_version(session, prod.id, version if version is not None else prod.current_version)
    if row.artifact_bucket is None or row.artifact_key is None:
        raise ProductNotFound(f"version {row.version} of {prod.id} has no file artifact")
    obj = StoredObject(row.artifact_bucket, row.artifact_key, row.artifact_sha256, row.artifact_size)
    return obj, row.artifact_filename or "artifact"


def _by_number(session: Session, number: str) -> ProductRow:
    prod = session.execute(
        select(ProductRow).where(ProductRow.registration_number == number)
    ).scalar_one_or_none()
    if prod is None:
        raise ProductNotFound(f"no registered product {number}")
    return prod


def lookup(session: Session, number: str) -> PublicEntry:
    """Public: non-sensitive metadata and status of a registration number."""
    prod = _by_number(session, number)
    row = _row_version(session, prod.id, prod.approved_version) if prod.approved_version else None
    project = session.get(ProjectRow, prod.project_id)
    return PublicEntry(
        registration_number=number,
        name=Name(zh=row.name_zh, en=row.name_en) if row else Name(zh=prod.name_zh, en=prod.name_en),
        type=prod.type,
        status=prod.status,
        organization=project.organization if project else "",
        version=prod.approved_version,
        artifact_sha256=row.artifact_sha256 if row else None,
        registered_at=prod.registered_at,
        revoked_at=prod.revoked_at,
        revoke_reason=prod.revoke_reason,
        approval_ledger_index=row.review_ledger_index if row else None,
        revoke_ledger_index=prod.revoke_ledger_index,
    )


def registry_status(session: Session, ledger: Ledger, number: str, since: int) -> dict[str, Any]:
    """Public: a registry status document proving the state of ``number`` against the current log.

    ``since`` is the tree size of the certificate; the document carries a consistency proof from
    it, for the approval and each lineage record the leaf hash of its *currently stored* entry
    (recomputed from the content, so a changed row shows) with its inclusion proof, and the
    revocation (if any) with its inclusion proof. Never the entries themselves: they name the
    project, the lineage records and their parameters, which the public must not see (the
    certificate's holder has them). See :mod:`lab.shared.certificates`.
    """
    prod = _by_number(session, number)
    row = _row_version(session, prod.id, prod.approved_version or prod.current_version)
    cert = row.certificate or {}
    head = ledger.head()
    if not 0 < since <= head.size:
        raise InvalidProof(f"since must be a tree size between 1 and {head.size}")
    indexes = {int(cert["ledger"]["index"])} if cert else set()
    indexes.update(int(i["ledger_index"]) for i in row.lineage)
    revoked = prod.revoke_ledger_index
    proofs = ledger.inclusions(sorted(indexes | ({revoked} if revoked is not None else set())), head.size)
    entries = {
        str(i): {"leaf_hash": leaf_hash(proofs[i]["entry"]), "audit_path": proofs[i]["audit_path"]}
        for i in sorted(indexes)
    }
    revocation = None
    if revoked is not None:
        p = proofs[revoked]
        revocation = {"index": p["index"], "entry": p["entry"], "audit_path": p["audit_path"]}
    cons = ledger.consistency(since, head.size)
    return {
        "format": STATUS_FORMAT,
        "registration_number": number,
        "status": prod.status,
        "tree_head": head.as_dict(),
        "consistency": {k: cons[k] for k in ("old_size", "new_size", "old_root", "new_root", "proof")},
        "entries": entries,
        "revocation": revocation,
    }


def project_of(session: Session, product_id: str) -> str | None:
    """The project a product was registered from (None if there is no such product)."""
    return session.scalar(select(ProductRow.project_id).where(ProductRow.id == product_id))
