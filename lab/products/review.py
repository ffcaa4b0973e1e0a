"""Reviewing and revoking products (bureau), and registration numbers.

Run in the caller's transaction (one API request). Approval takes the next
``CMDL-<year>-<6 digits>`` (year in China Standard Time) from a per-year counter row locked
``FOR UPDATE`` (unique by constraint as well), appends the approval entry — whose body is the
certificate's statement — signs a tree head and stores the certificate with the version.

A version *flagged* by the automatic checks (personal identifiers of a non-open dataset, small
counts, a table read only in part…) needs ``FLAGGED_APPROVALS`` (2, :mod:`lab.products.queries`)
distinct reviewers — the two-person rule of projects. Each approval but the last is an ``endorsed``
transition in the ledger (actor, reason); the last is the approval, whose statement names the
earlier ones (``endorsed_by``).

Usage (in the caller's transaction, so not run here)::

    review(session, ledger, bureau, product_id, "approve", reason="meets the scenario")
    revoke(session, ledger, bureau, product_id, reason="source dataset withdrawn")
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lab.db.base import utcnow
from lab.errors import BadRequest, Conflict, Forbidden, InvalidTransition
from lab.identity import Principal, Role
from lab.ledger import Ledger, canonical_json
from lab.products.errors import ProductNotFound
from lab.products.models import (
    REVIEWABLE,
    ProductEventRow,
    ProductRow,
    ProductStatus,
    ProductVersionRow,
    RegistrationCounterRow,
    VersionStatus,
)
from lab.products.queries import endorsements, product_out, required_approvals
from lab.products.schemas import ProductOut
from lab.shared.certificates import build_certificate

CST = dt.timezone(dt.timedelta(hours=8), "CST")
NUMBER_PREFIX = "CMDL"


def lock_product(session: Session, product_id: str) -> ProductRow:
    prod = session.execute(
        select(ProductRow).where(ProductRow.id == product_id).with_for_update()
    ).scalar_one_or_none()
    if prod is None:
        raise ProductNotFound(f"no product {product_id}")
    return prod


def record_event(
    s: Session,
    product: str,
    version: int | None,
    action: str,
    actor: str,
    reason: str,
    index: int | None,
    at: dt.datetime,
) -> None:
    s.add(
        ProductEventRow(
            product_id=product,
            version=version,
            action=action,
            actor=actor,
            reason=reason,
            at=at,
            ledger_index=index,
        )
    )


def next_registration_number(session: Session, now: dt.datetime | None = None) -> str:
    """Take the next ``CMDL-<year>-<6 digits>`` in the caller's transaction (sequential per year)."""
    year = (now or utcnow()).astimezone(CST).year
    q = select(RegistrationCounterRow).where(RegistrationCounterRow.year == year).with_for_update()
    counter = session.execute(q).scalar_one_or_none()
    if counter is None:
        try:
            with session.begin_nested():
                session.add(RegistrationCounterRow(year=year, last=0))
        except IntegrityError:  # another transaction created this year's row first
            pass
        counter = session.execute(q).scalar_one()
    counter.last += 1
    if counter.last > 999_999:
        raise InvalidTransition(f"registration numbers for {year} are exhausted")
    session.flush()
    return f"{NUMBER_PREFIX}-{year}-{counter.last:06d}"


def _version(session: Session, prod: ProductRow, version: int | None) -> ProductVersionRow:
    q = select(ProductVersionRow).where(ProductVersionRow.product_id == prod.id)
    q = q.where(ProductVersionRow.version == (version if version is not None else prod.current_version))
    row = session.execute(q).scalar_one_or_none()
    if row is None:
        raise ProductNotFound(f"product {prod.id} has no version {version}")
    return row


def review(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    product_id: str,
    decision: str,
    reason: str = "",
    version: int | None = None,
) -> ProductOut:
    """The bureau approves or rejects a version (default: the latest). Rejection needs a reason."""
    principal.require(Role.bureau)
    reason = (reason or "").strip()
    prod = lock_product(session, product_id)
    row = _version(session, prod, version)
    if prod.status == ProductStatus.revoked:
        raise InvalidTransition(f"product {prod.id} was revoked")
    if row.status not in {v.value for v in REVIEWABLE}:
        raise InvalidTransition(f"version {row.version} of {prod.id} is {row.status}, not awaiting review")
    if row.submitted_by == principal.name:
        raise Forbidden("a reviewer cannot review their own submission")
    now = utcnow()
    if decision == "reject":
        if not reason:
            raise BadRequest("a rejection needs a reason")
        entry = ledger.append(
            "product.transition",
            {"action": "rejected", "product": prod.id, "version": row.version, "reason": reason},
            actor=principal.name,
        )
        row.status = VersionStatus.rejected.value
        if prod.registration_number is None:
            prod.status = ProductStatus.rejected.value
    elif decision == "approve":
        if row.status == VersionStatus.flagged and not reason:
            raise BadRequest("this version failed automatic checks; approving it needs a reason")
        earlier = endorsements(session, prod.id, row.version)
        if any(e.actor == principal.name for e in earlier):
            raise Conflict(
                f"{principal.name} has already approved version {row.version} of {prod.id}; "
                "a flagged version needs a different second reviewer"
            )
        if len(earlier) + 1 < required_approvals(row):
            return _endorse(session, ledger, principal, prod, row, reason, len(earlier) + 1, now)
        entry = _approve(session, ledger, principal, prod, row, reason, now, earlier)
    else:
        raise BadRequest("decision is approve or reject")
    row.reviewed_by, row.reviewed_at, row.review_reason = principal.name, now, reason
    row.review_ledger_index = entry.index
    prod.updated_at = now
    record_event(
        session,
        prod.id,
        row.version,
        decision + "d" if decision == "approve" else "rejected",
        principal.name,
        reason,
        entry.index,
        now,
    )
    session.flush()
    return product_out(session, prod)


def _endorse(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    prod: ProductRow,
    row: ProductVersionRow,
    reason: str,
    count: int,
    now: dt.datetime,
) -> ProductOut:
    """One approval of a flagged version that still needs another reviewer: recorded, nothing issued."""
    body = {
        "action": "endorsed",
        "product": prod.id,
        "version": row.version,
        "approvals": count,
        "required": required_approvals(row),
        "checks_sha256": hashlib.sha256(canonical_json(row.checks)).hexdigest(),
        "reason": reason,
    }
    entry = ledger.append("product.transition", body, actor=principal.name)
    prod.updated_at = now
    record_event(session, prod.id, row.version, "endorsed", principal.name, reason, entry.index, now)
    session.flush()
    return product_out(session, prod)


def _approve(
    session: Session,
    ledger: Ledger,
    principal: Principal,
    prod: ProductRow,
    row: ProductVersionRow,
    reason: str,
    now: dt.datetime,
    earlier: list[ProductEventRow],
) -> Any:
    number = prod.registration_number or next_registration_number(session, now)
    artifact: dict[str, Any] = {
        "kind": row.artifact_kind,
        "sha256": row.artifact_sha256,
        "size": row.artifact_size,
    }
    if row.artifact_kind == "file":
        artifact.update(filename=row.artifact_filename, media_type=row.artifact_media_type)
    else:
        artifact["endpoint"] = row.endpoint
    statement = {
        "action": "approved",
        "registration_number": number,
        "product": prod.id,
        "version": row.version,
        "project": prod.project_id,
        "name": {"zh": row.name_zh, "en": row.name_en},
        "type": prod.type,
        "description": row.description,
        "scenario": row.scenario,
        "artifact": artifact,
        "lineage": [
            {k: i[k] for k in ("record", "channel", "result_sha256", "ledger_index", "leaf_hash", "datasets")}
            for i in row.lineage
        ],
        "checks_sha256": hashlib.sha256(canonical_json(row.checks)).hexdigest(),
        "checks_passed": row.checks_passed,
        "submitted_by": row.submitted_by,
        "submit_ledger_index": row.submit_ledger_index,
        "reason": reason,
    }
    if earlier:  # the other reviewers of a flagged version, each with their own ledger entry
        statement["endorsed_by"] = [{"actor": e.actor, "ledger_index": e.ledger_index} for e in earlier]
    entry = ledger.append("product.transition", statement, actor=principal.name)
    proofs = ledger.inclusions(sorted({entry.index, *(int(i["ledger_index"]) for i in row.lineage)}))
    approval = proofs[entry.index]
    lineage_proofs = []
    for i in row.lineage:
        p = proofs[int(i["ledger_index"])]
        lineage_proofs.append(
            {
                "record": i["record"],
                "index": p["index"],
                "entry": p["entry"],
                "leaf_hash": p["leaf_hash"],
                "audit_path": p["audit_path"],
            }
        )
    row.certificate = build_certificate(approval, lineage_proofs)
    row.status = VersionStatus.approved.value
    prod.registration_number = number
    prod.status = ProductStatus.registered.value
    prod.approved_version = row.version
    prod.registered_at = prod.registered_at or now
    return entry


def revoke(
    session: Session, ledger: Ledger, principal: Principal, product_id: str, reason: str
) -> ProductOut:
    """The bureau revokes a registered product (final); its certificate then verifies as revoked."""
    principal.require(Role.bureau)
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest("a revocation needs a reason")
    prod = lock_product(session, product_id)
    if prod.status != ProductStatus.registered:
        raise InvalidTransition(
            f"product {prod.id} is {prod.status}; only registered products can be revoked"
        )
    now = utcnow()
    entry = ledger.append(
        "product.transition",
        {
            "action": "revoked",
            "product": prod.id,
            "registration_number": prod.registration_number,
            "version": prod.approved_version,
            "reason": reason,
        },
        actor=principal.name,
    )
    for row in session.execute(
        select(ProductVersionRow).where(
            ProductVersionRow.product_id == prod.id,
            ProductVersionRow.status.in_([v.value for v in REVIEWABLE]),
        )
    ).scalars():
        row.status = VersionStatus.superseded.value
    prod.status = ProductStatus.revoked.value
    prod.revoked_at, prod.revoked_by, prod.revoke_reason = now, principal.name, reason
    prod.revoke_ledger_index, prod.updated_at = entry.index, now
    record_event(session, prod.id, prod.approved_version, "revoked", principal.name, reason, entry.index, now)
    session.flush()
    return product_out(session, prod)
