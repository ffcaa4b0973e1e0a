"""Catalog: list, entry, schema, versions, dummy rows (never real rows), steward import."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import APIRouter, File, Query, UploadFile

from lab.api.deps import LedgerDep, PrincipalDep, ReadSessionDep, RuntimeDep, SessionDep
from lab.api.problems import responses
from lab.api.schemas import MAX_INT, CatalogEntry, DatasetSchema, DummyRows
from lab.catalog.dummy import dummy_rows
from lab.catalog.policy import parse_policy
from lab.catalog.service import CatalogImporter, CatalogReader, DatasetVersion
from lab.catalog.visibility import shown_entry
from lab.errors import (
    DatasetNotFound,
    Forbidden,
    InvalidDataset,
    InvalidPolicy,
    PayloadTooLarge,
    Unauthenticated,
)
from lab.identity import ROLES, Principal, Role
from lab.runtime import Runtime

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"])
READ_ERRORS = responses(Unauthenticated, Forbidden, DatasetNotFound)
Version = Annotated[int, Query(ge=1, le=MAX_INT)]


def _reader(principal: PrincipalDep) -> None:
    if not principal.roles and principal.kind != "service":
        raise Forbidden(f"{principal.name} has no lab role ({', '.join(sorted(ROLES))})")


def _shown(v: DatasetVersion, principal: Principal, runtime: Runtime) -> CatalogEntry:
    """The entry as ``principal`` may see it (non-open sizes noisy except to the bureau)."""
    return CatalogEntry(**shown_entry(v.entry(), v.policy, principal, runtime.settings.encryption_key))


@router.get("", response_model=list[CatalogEntry], responses=READ_ERRORS, summary="List catalog entries")
def list_entries(principal: PrincipalDep, runtime: RuntimeDep, session: ReadSessionDep) -> list[CatalogEntry]:
    _reader(principal)
    return [_shown(v, principal, runtime) for v in CatalogReader(session).list()]


@router.get("/{dataset}", response_model=CatalogEntry, responses=READ_ERRORS, summary="One catalog entry")
def get_entry(
    dataset: str,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    session: ReadSessionDep,
    version: Version | None = None,
) -> CatalogEntry:
    _reader(principal)
    return _shown(CatalogReader(session).get(dataset, version), principal, runtime)


@router.get("/{dataset}/versions", response_model=list[CatalogEntry], responses=READ_ERRORS)
def list_versions(
    dataset: str, principal: PrincipalDep, runtime: RuntimeDep, session: SessionDep, ledger: LedgerDep
) -> list[CatalogEntry]:
    _reader(principal)
    return [_shown(v, principal, runtime) for v in CatalogReader(session).versions(dataset)]


@router.get(
    "/{dataset}/schema",
    response_model=DatasetSchema,
    responses=READ_ERRORS,
    summary="Column schema and limits",
)
def get_schema(
    dataset: str,
    principal: PrincipalDep,
    session: SessionDep,
    ledger: LedgerDep,
    version: Version | None = None,
) -> DatasetSchema:
    _reader(principal)
    v = CatalogReader(session).get(dataset, version)
    p = v.policy.model_dump(mode="json")
    return DatasetSchema(
        id=v.dataset,
        version=v.version,
        entity_key=v.policy.entity_key,
        columns=p["columns"],
        channels=p["channels"],
    )


@router.get(
    "/{dataset}/dummy", response_model=DummyRows, responses=READ_ERRORS, summary="Schema-only dummy rows"
)
def get_dummy(
    dataset: str,
    principal: PrincipalDep,
    session: SessionDep,
    ledger: LedgerDep,
    n: Annotated[int, Query(ge=1, le=1000)] = 20,
    seed: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> DummyRows:
    _reader(principal)
    v = CatalogReader(session).get(dataset)
    return DummyRows(id=v.dataset, version=v.version, rows=dummy_rows(v.policy, n, seed))


@router.post(
    "/import",
    response_model=CatalogEntry,
    status_code=201,
    responses=responses(Unauthenticated, Forbidden, InvalidPolicy, InvalidDataset, PayloadTooLarge),
    summary="Import a dataset version (stewards)",
)
def import_dataset(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    session: SessionDep,
    ledger: LedgerDep,
    data: Annotated[UploadFile, File(description="CSV or Parquet file")],
    policy: Annotated[UploadFile, File(description="policy YAML")],
) -> CatalogEntry:
    principal.require(Role.steward)
    try:
        pol = parse_policy(yaml.safe_load(policy.file.read(1 << 20)), policy.filename or "policy.yaml")
    except yaml.YAMLError as exc:
        raise InvalidPolicy(f"{policy.filename}: not valid YAML: {exc}") from None
    suffix = Path(data.filename or "data.csv").suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InvalidDataset(f"unsupported file type {suffix!r}; upload .csv or .parquet")
    with tempfile.TemporaryDirectory(prefix="lab-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        limit, total = runtime.settings.max_request_bytes, 0
        with path.open("wb") as f:
            for block in iter(lambda: data.file.read(1 << 20), b""):
                total += len(block)
                if total > limit:
                    raise PayloadTooLarge(f"upload exceeds {limit} bytes")
                f.write(block)
        version = CatalogImporter(session, runtime.store, ledger).import_file(path, pol, principal.name)
    return CatalogEntry(**version.entry(), row_count_exact=True)  # the steward holds the file
