"""Ledger: signed tree head, entries, inclusion and consistency proofs, full verification."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from lab.api.deps import LedgerDep, PrincipalDep
from lab.api.problems import responses
from lab.api.schemas import MAX_INT, LedgerEntryOut, TreeHead, VerifyOut
from lab.errors import EntryNotFound, Forbidden, InvalidProof, Unauthenticated
from lab.identity import Role

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])
ERRORS = responses(Unauthenticated, Forbidden)
Index = Annotated[int, Path(ge=0, le=MAX_INT)]
Size = Annotated[int, Query(ge=1, le=MAX_INT)]


def _reader(principal: PrincipalDep) -> None:
    if not principal.roles and principal.kind != "service":
        raise Forbidden(f"{principal.name} has no lab role")


@router.get("/head", response_model=TreeHead, responses=ERRORS, summary="Current signed tree head")
def head(principal: PrincipalDep, ledger: LedgerDep) -> TreeHead:
    _reader(principal)
    return TreeHead(**ledger.head().as_dict())


@router.get("/keys", responses=ERRORS, summary="Tree-head signing public keys")
def keys(principal: PrincipalDep, ledger: LedgerDep) -> dict[str, str]:
    _reader(principal)
    ledger.head()  # make sure a key exists
    return ledger.public_keys()


@router.get("/entries", response_model=list[LedgerEntryOut], responses=ERRORS)
def entries(
    principal: PrincipalDep,
    ledger: LedgerDep,
    start: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LedgerEntryOut]:
    _reader(principal)
    return [LedgerEntryOut(**e.__dict__) for e in ledger.entries(start, limit)]


@router.get(
    "/entries/{index}",
    response_model=LedgerEntryOut,
    responses=responses(Unauthenticated, Forbidden, EntryNotFound),
)
def entry(index: Index, principal: PrincipalDep, ledger: LedgerDep) -> LedgerEntryOut:
    _reader(principal)
    return LedgerEntryOut(**ledger.entry(index).__dict__)


@router.get(
    "/proof/inclusion/{index}", responses=responses(Unauthenticated, Forbidden, InvalidProof, EntryNotFound)
)
def inclusion(
    index: Index, principal: PrincipalDep, ledger: LedgerDep, size: Size | None = None
) -> dict[str, Any]:
    _reader(principal)
    return ledger.inclusion(index, size)


@router.get("/proof/consistency", responses=responses(Unauthenticated, Forbidden, InvalidProof))
def consistency(
    principal: PrincipalDep, ledger: LedgerDep, old: Size, new: Size | None = None
) -> dict[str, Any]:
    _reader(principal)
    return ledger.consistency(old, new)


@router.post("/verify", response_model=VerifyOut, responses=ERRORS, summary="Recompute the whole log")
def verify(principal: PrincipalDep, ledger: LedgerDep) -> VerifyOut:
    principal.require(Role.bureau, Role.auditor)
    r = ledger.verify()
    return VerifyOut(
        ok=r.ok,
        size=r.size,
        root_hash=r.root_hash,
        checked_tree_heads=r.checked_tree_heads,
        first_bad_index=r.first_bad_index,
        reason=r.reason,
    )
