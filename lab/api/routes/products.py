"""Products: register (multipart), version, list, detail, review, revoke, certificate; public registry.

``POST /api/v1/products`` takes ``metadata`` (JSON, :class:`ProductSubmission`) and ``artifact``
(the file; omitted for API/service products, which carry ``metadata.endpoint``). The artifact
is streamed to a local spool file with a size limit and its SHA-256, then checked and uploaded
by :func:`lab.products.service.submit`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import Response

from lab.api.deps import LedgerDep, PrincipalDep, RuntimeDep, SessionDep
from lab.api.problems import responses
from lab.api.schemas import MAX_INT
from lab.errors import (
    BadRequest,
    Forbidden,
    InvalidProof,
    InvalidTransition,
    PayloadTooLarge,
    ProjectInactive,
    ProjectNotFound,
    Unauthenticated,
)
from lab.products import queries, service, staging
from lab.products.errors import InvalidArtifact, InvalidLineage, ProductNotFound
from lab.products.schemas import (
    ProductDetail,
    ProductOut,
    ProductSubmission,
    PublicEntry,
    QueueItem,
    ReviewIn,
    RevokeIn,
)
from lab.runtime import Runtime

log = logging.getLogger(__name__)


def _sweep_staging(runtime: Runtime) -> None:
    try:
        report = staging.sweep(runtime)
    except Exception:  # storage down at start: the next start sweeps
        log.warning("sweep of pending product artifacts failed", exc_info=True)
        return
    if report.promoted or report.deleted:
        log.warning(
            "product artifacts left by a crash: promoted %s, deleted %s", report.promoted, report.deleted
        )


@asynccontextmanager
async def _on_start(app: FastAPI) -> AsyncIterator[None]:
    """Finish or undo artifact uploads a crash left behind (:mod:`lab.products.staging`)."""
    task = asyncio.create_task(run_in_threadpool(_sweep_staging, app.state.runtime))
    try:
        yield
    finally:
        await task


router = APIRouter(prefix="/api/v1", tags=["products"], lifespan=_on_start)
Version = Annotated[int, Query(ge=1, le=MAX_INT)]
READ = responses(Unauthenticated, Forbidden, ProductNotFound)
SUBMIT = responses(
    Unauthenticated,
    Forbidden,
    BadRequest,
    InvalidLineage,
    InvalidArtifact,
    ProjectInactive,
    ProjectNotFound,
    PayloadTooLarge,
    ProductNotFound,
)


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` for any stored file name: an ASCII fallback and the UTF-8 name
    (RFC 6266 / 5987), so a Chinese, quoted or control-character name never breaks the header."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "artifact"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _parse(metadata: str) -> ProductSubmission:
    if "\x00" in metadata or "\\u0000" in metadata.lower():
        raise BadRequest("metadata contains a NUL character")
    try:
        return ProductSubmission.model_validate(json.loads(metadata))
    except json.JSONDecodeError as exc:
        raise BadRequest(f"metadata is not valid JSON: {exc.msg}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "metadata"
        raise BadRequest(f"metadata.{field}: {first['msg'].removeprefix('Value error, ')}") from None


def _submit(
    runtime: Runtime, principal: Any, metadata: str, artifact: UploadFile | None, product_id: str | None
) -> ProductOut:
    meta = _parse(metadata)
    if artifact is None:
        return service.submit(runtime, principal, meta, None, product_id)
    with tempfile.TemporaryDirectory(prefix="lab-product-") as tmp:
        spooled = service.spool(
            artifact.file,
            Path(tmp),
            runtime.settings.max_request_bytes,
            artifact.filename or "artifact",
            artifact.content_type,
        )
        return service.submit(runtime, principal, meta, spooled, product_id)


@router.post(
    "/products", response_model=ProductOut, status_code=201, responses=SUBMIT, summary="Register a product"
)
def register(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    metadata: Annotated[str, Form(max_length=200_000, description="ProductSubmission JSON")],
    artifact: Annotated[
        UploadFile | None, File(description="the product file (not for API products)")
    ] = None,
) -> ProductOut:
    return _submit(runtime, principal, metadata, artifact, None)


@router.post(
    "/products/{product_id}/versions",
    response_model=ProductOut,
    status_code=201,
    responses=SUBMIT,
    summary="Submit a new version",
)
def new_version(
    product_id: str,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    metadata: Annotated[str, Form(max_length=200_000)],
    artifact: Annotated[UploadFile | None, File()] = None,
) -> ProductOut:
    return _submit(runtime, principal, metadata, artifact, product_id)


@router.get("/products", response_model=list[ProductOut], responses=READ, summary="List products")
def list_products(
    principal: PrincipalDep,
    session: SessionDep,
    project: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> list[ProductOut]:
    return queries.list_products(
        session, principal, project=project, status=status, limit=limit, offset=offset
    )


@router.get(
    "/products/queue", response_model=list[QueueItem], responses=READ, summary="Review queue (bureau)"
)
def queue(principal: PrincipalDep, session: SessionDep) -> list[QueueItem]:
    return queries.review_queue(session, principal)


@router.get("/products/{product_id}", response_model=ProductDetail, responses=READ, summary="Product detail")
def get_product(product_id: str, principal: PrincipalDep, session: SessionDep) -> ProductDetail:
    return queries.detail(session, principal, product_id)


@router.get(
    "/products/{product_id}/artifact",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}, **READ},
    summary="Download a version's artifact (the project's members and the bureau)",
)
def get_artifact(
    product_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    version: Version | None = None,
) -> Response:
    obj, name = queries.artifact_object(session, principal, product_id, version)
    data = runtime.store.get_bytes(obj)  # verified against the recorded SHA-256
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": attachment(name), "X-Content-SHA256": obj.sha256},
    )


@router.post(
    "/products/{product_id}/review",
    response_model=ProductOut,
    responses=responses(Unauthenticated, Forbidden, ProductNotFound, BadRequest, InvalidTransition),
    summary="Approve or reject (bureau)",
)
def review(
    product_id: str, body: ReviewIn, principal: PrincipalDep, session: SessionDep, ledger: LedgerDep
) -> ProductOut:
    return service.review(session, ledger, principal, product_id, body.decision, body.reason, body.version)


@router.post(
    "/products/{product_id}/revoke",
    response_model=ProductOut,
    responses=responses(Unauthenticated, Forbidden, ProductNotFound, BadRequest, InvalidTransition),
    summary="Revoke (bureau)",
)
def revoke(
    product_id: str, body: RevokeIn, principal: PrincipalDep, session: SessionDep, ledger: LedgerDep
) -> ProductOut:
    return service.revoke(session, ledger, principal, product_id, body.reason)


@router.get(
    "/products/{product_id}/certificate", responses=READ, summary="Certificate of the approved version"
)
def get_certificate(
    product_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    ledger: LedgerDep,
    runtime: RuntimeDep,
    version: Version | None = None,
) -> dict[str, Any]:
    cfg = runtime.settings.ledger
    return queries.certificate(session, principal, product_id, version, (ledger, cfg.origin, cfg.quorum))


@router.get(
    "/registry/{registration_number}",
    response_model=PublicEntry,
    responses=responses(ProductNotFound),
    summary="Public lookup (no authentication)",
)
def lookup(registration_number: str, session: SessionDep) -> PublicEntry:
    return queries.lookup(session, registration_number)


@router.get(
    "/registry/{registration_number}/status",
    responses=responses(ProductNotFound, InvalidProof),
    summary="Public status document with ledger proofs (no authentication)",
)
def status(
    registration_number: str,
    session: SessionDep,
    ledger: LedgerDep,
    since: Annotated[int, Query(ge=1, le=MAX_INT)],
) -> dict[str, Any]:
    return queries.registry_status(session, ledger, registration_number, since)
