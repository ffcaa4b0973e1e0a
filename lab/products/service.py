"""Registering, versioning, reviewing and revoking products — the one place these happen.

Submission runs in three phases so that no database lock is held while bytes move or tables
are scanned: (1) a short transaction authorizes the caller, resolves the lineage and collects
what the disclosure checks need; (2) outside any transaction the artifact is checked and
uploaded to the products bucket under a pending key; (3) a write transaction re-checks the
project and lineage, writes the version and appends its ``product.transition`` ledger entry; only
after its commit is the artifact promoted to its content-addressed key, and if phase 3 fails it is
deleted (:mod:`lab.products.staging`), so no failed submission leaves an object behind.

Review and revocation live in :mod:`lab.products.review` (re-exported here).

Usage (needs a runtime with its database and object store, so not run here)::

    out = submit(runtime, principal, ProductSubmission(...), artifact=spool(fileobj, tmp, limit, "out.csv"))
    review(session, ledger, bureau, out.id, "approve", reason="ok")
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.catalog.service import CatalogFetcher, CatalogReader, DatasetVersion
from lab.db.base import utcnow
from lab.errors import BadRequest, Forbidden, InvalidTransition, PayloadTooLarge
from lab.identity import Principal, Role
from lab.ledger import canonical_json
from lab.products import checks, staging
from lab.products.errors import InvalidArtifact, ProductNotFound
from lab.products.models import (
    REVIEWABLE,
    ProductLineageRow,
    ProductRow,
    ProductStatus,
    ProductVersionRow,
    VersionStatus,
)
from lab.products.queries import product_out
from lab.products.review import lock_product, next_registration_number, record_event, review, revoke
from lab.products.schemas import ProductOut, ProductSubmission
from lab.products.tables import coverage, load_tables, scan_limits
from lab.projects.access import check_serving, is_member, load_project, visible_project
from lab.runtime import Runtime


@dataclass(frozen=True)
class SpooledArtifact:
    """An uploaded file on local disk with the digest computed while it streamed in."""

    path: Path
    sha256: str
    size: int
    filename: str
    media_type: str | None


def spool(
    stream: BinaryIO, directory: Path, max_bytes: int, filename: str, media_type: str | None = None
) -> SpooledArtifact:
    """Copy ``stream`` to a file under ``directory``, hashing it; refuse more than ``max_bytes``."""
    h, total = hashlib.sha256(), 0
    printable = "".join(c for c in filename if c.isprintable()).replace("\\", "/")
    safe = Path(printable or "artifact").name[:255].strip(".") or "artifact"
    if media_type is not None:  # the part's own header: keep ``type/subtype`` if it is one
        media_type = media_type.split(";")[0].strip().lower()
        media_type = media_type if re.fullmatch(r"[a-z0-9.+-]{1,63}/[a-z0-9.+-]{1,63}", media_type) else None
    suffix = Path(safe).suffix.lower()  # parsers (openpyxl) go by the extension
    fd, name = tempfile.mkstemp(
        dir=directory, prefix="artifact-", suffix=suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""
    )
    try:
        with os.fdopen(fd, "wb") as f:
            for block in iter(lambda: stream.read(1 << 20), b""):
                total += len(block)
                if total > max_bytes:
                    raise PayloadTooLarge(f"artifacts are limited to {max_bytes} bytes")
                h.update(block)
                f.write(block)
    except BaseException:
        os.unlink(name)
        raise
    if total == 0:
        os.unlink(name)
        raise InvalidArtifact("the artifact is empty")
    return SpooledArtifact(Path(name), h.hexdigest(), total, safe, media_type)


def _may_submit(session: Session, principal: Principal, project_id: str) -> None:
    if principal.has(Role.registrar):
        return
    if principal.has(Role.operator) and is_member(session, project_id, principal.name):
        return
    raise Forbidden(f"{principal.name} may not register products of project {project_id}")


def _thresholds(session: Session, lineage: list[dict[str, Any]]) -> tuple[int, list[str], bool]:
    """The strictest min_cell_count over datasets reached through non-DP channels."""
    catalog = CatalogReader(session)
    threshold, sources, has_dp = 0, [], False
    for item in lineage:
        if item["channel"] == "dp":
            has_dp = True
            continue
        for ds in item["datasets"]:
            dp = catalog.get(ds["id"], ds.get("version")).policy.channels.dp
            t = dp.min_cell_count if dp else 0
            if t > 1:
                sources.append(f"{ds['id']} ({item['channel']})")
            threshold = max(threshold, t)
    return threshold, sorted(set(sources)), has_dp


def _endpoint_artifact(meta: ProductSubmission) -> tuple[str, int, dict[str, Any]]:
    assert meta.endpoint is not None
    desc = meta.endpoint.model_dump(mode="json", exclude_none=True)
    data = canonical_json(desc)
    if len(data) > 64 * 1024:
        raise InvalidArtifact("endpoint descriptions are limited to 64 KiB")
    return hashlib.sha256(data).hexdigest(), len(data), desc


def submit(
    runtime: Runtime,
    principal: Principal,
    meta: ProductSubmission,
    artifact: SpooledArtifact | None = None,
    product_id: str | None = None,
) -> ProductOut:
    """Register a new product (``product_id`` None) or a new version of one; runs the checks."""
    # phase 1: authorize, resolve lineage, collect check inputs
    with runtime.transaction() as s:
        project_id = meta.project
        if product_id is not None:
            prod = s.get(ProductRow, product_id)
            if prod is None:
                raise ProductNotFound(f"no product {product_id}")
            if project_id and project_id != prod.project_id:
                raise BadRequest(
                    f"product {product_id} belongs to project {prod.project_id}, not {project_id}"
                )
            if prod.status == ProductStatus.revoked:
                raise InvalidTransition(f"product {product_id} was revoked; it takes no new versions")
            project_id = prod.project_id
        if not project_id:
            raise BadRequest("name the project the product comes from (project)")
        if not principal.has(Role.registrar, Role.operator):  # a role refusal, before any project
            raise Forbidden(f"{principal.name} may not register products (operator or registrar role)")
        project = load_project(s, project_id) if principal.has(Role.registrar) else None
        project = project or visible_project(s, principal, project_id)
        _may_submit(s, principal, project_id)
        check_serving(project)
        lineage, _ = checks.lineage(s, runtime.ledger(s), project_id, meta.derived_from)
        threshold, sources, has_dp = _thresholds(s, lineage)
        kind = checks.tabular_kind(artifact.filename, artifact.media_type) if artifact else None
        non_open: list[DatasetVersion] = (
            [v for v in CatalogReader(s).list() if not v.policy.is_open] if kind else []
        )
    # phase 2: artifact checks and upload, no transaction open
    results: list[dict[str, Any]] = []
    if meta.type.value == "api":
        if artifact is not None:
            raise InvalidArtifact(
                "an API/service product is registered with an endpoint description, not a file"
            )
        sha, size, endpoint = _endpoint_artifact(meta)
        results.append(checks.artifact_digest(meta.sha256, sha, size))
        stored = None
    else:
        if artifact is None:
            raise InvalidArtifact("upload the product's artifact (multipart part 'artifact')")
        sha, size, endpoint = artifact.sha256, artifact.size, None
        results.append(checks.artifact_digest(meta.sha256, sha, size))
        if kind:
            tables = load_tables(artifact.path, kind)
            cut = scan_limits(tables)  # a table read only in part is flagged, not passed
            catalog = CatalogFetcher(runtime.store)
            targets = [
                t
                for v in non_open
                for t in checks.identifier_targets_of(v, catalog.fetch(v, runtime.cache_dir))
            ]
            results.append(checks.identifiers(tables, targets))
            results.append(
                checks.small_counts(
                    tables,
                    threshold,
                    sources,
                    has_dp=has_dp,
                    count_columns=meta.count_columns,
                    dp_columns=meta.dp_columns,
                )
            )
            if cut is not None:
                results.append(cut)
            results.append(coverage(tables, kind))
        else:
            results.append(
                checks.check(
                    "disclosure",
                    None,
                    "not scanned: not a table, JSON, text or ZIP of them (CSV/TSV, Parquet, XLSX, JSON, "
                    "TXT, ZIP); reviewed by hand",
                )
            )
        stored = staging.upload(runtime.store, artifact.path)  # promoted only once the version commits
        results[0] = checks.artifact_digest(meta.sha256, sha, size, stored.sha256)
    # phase 3: write (then promote the pending artifact; on any failure delete it)
    with staging.staged(runtime.store, stored), runtime.transaction() as s:
        ledger = runtime.ledger(s)
        project = load_project(s, project_id, lock=True)
        check_serving(project)
        lineage, lineage_check = checks.lineage(s, ledger, project_id, meta.derived_from)
        results.insert(0, lineage_check)
        passed = all(c["status"] != "fail" for c in results)
        now = utcnow()
        if product_id is None:
            prod = ProductRow(
                id="prd_" + uuid.uuid4().hex[:24],
                project_id=project_id,
                name_zh=meta.name.zh,
                name_en=meta.name.en,
                type=meta.type.value,
                status=ProductStatus.pending.value,
                current_version=0,
                created_by=principal.name,
                created_at=now,
                updated_at=now,
            )
            s.add(prod)
            s.flush()
        else:
            prod = lock_product(s, product_id)
            if prod.status == ProductStatus.revoked:
                raise InvalidTransition(f"product {product_id} was revoked; it takes no new versions")
        version = prod.current_version + 1
        for old in s.execute(
            select(ProductVersionRow).where(
                ProductVersionRow.product_id == prod.id,
                ProductVersionRow.status.in_([v.value for v in REVIEWABLE]),
            )
        ).scalars():
            old.status = VersionStatus.superseded.value
            record_event(
                s,
                prod.id,
                old.version,
                "superseded",
                principal.name,
                f"version {version} submitted",
                None,
                now,
            )
        art: dict[str, Any] = {"kind": "endpoint" if endpoint else "file", "sha256": sha, "size": size}
        if artifact is not None:
            art.update(filename=artifact.filename, media_type=artifact.media_type)
        entry = ledger.append(
            "product.transition",
            {
                "action": "submitted",
                "product": prod.id,
                "version": version,
                "project": project_id,
                "type": meta.type.value,
                "name": meta.name.model_dump(),
                "artifact": art,
                "lineage": [{"record": i["record"], "leaf_hash": i["leaf_hash"]} for i in lineage],
                "checks_sha256": hashlib.sha256(canonical_json(results)).hexdigest(),
                "checks_passed": passed,
            },
            actor=principal.name,
        )
        row = ProductVersionRow(
            product_id=prod.id,
            version=version,
            name_zh=meta.name.zh,
            name_en=meta.name.en,
            description=meta.description,
            scenario=meta.scenario,
            artifact_kind=art["kind"],
            artifact_sha256=sha,
            artifact_size=size,
            artifact_bucket=stored.bucket if stored else None,
            artifact_key=staging.final_key(stored.sha256) if stored else None,
            artifact_filename=artifact.filename if artifact else None,
            artifact_media_type=artifact.media_type if artifact else None,
            endpoint=endpoint,
            derived_from=[i["record"] for i in lineage],
            lineage=lineage,
            checks=results,
            checks_passed=passed,
            status=(VersionStatus.in_review if passed else VersionStatus.flagged).value,
            submitted_by=principal.name,
            submitted_at=now,
            submit_ledger_index=entry.index,
        )
        s.add(row)
        for i in lineage:
            s.add(ProductLineageRow(product_id=prod.id, version=version, record_id=i["record"]))
        prod.current_version, prod.updated_at = version, now
        prod.name_zh, prod.name_en = meta.name.zh, meta.name.en
        if prod.status == ProductStatus.rejected:
            prod.status = ProductStatus.pending.value
        record_event(s, prod.id, version, "submitted", principal.name, "", entry.index, now)
        s.flush()
        return product_out(s, prod)


__all__ = ["SpooledArtifact", "next_registration_number", "review", "revoke", "spool", "submit"]
