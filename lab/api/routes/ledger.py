"""Ledger: signed tree head, entries, inclusion and consistency proofs, full verification.

Every role reads the log and its proofs, but an entry about a project (its transitions, grants and
budgets, its derived records, its products) is shown in full only to that project's members and to
the bureau and auditors. Anyone else gets it *withheld*: kind, version, time and ``withheld: true``
in place of the entry, with the same leaf hash and proofs, so the log still verifies (the standalone
verifier checks a withheld entry's leaf by its hash) without telling an operator other projects'
budgets, record ids or queries.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.api.deps import LedgerDep, PrincipalDep, SessionDep
from lab.api.problems import responses
from lab.api.schemas import MAX_INT, LedgerEntryOut, TreeHead, VerifyOut
from lab.catalog.visibility import redact_ledger_body
from lab.errors import EntryNotFound, Forbidden, InvalidProof, Unauthenticated
from lab.identity import Principal, Role
from lab.ledger import LedgerEntry
from lab.products.models import ProductRow
from lab.projects.models import ProjectMemberRow

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])
ERRORS = responses(Unauthenticated, Forbidden)
Index = Annotated[int, Path(ge=0, le=MAX_INT)]
Size = Annotated[int, Query(ge=1, le=MAX_INT)]


def _reader(principal: PrincipalDep) -> None:
    if not principal.roles and principal.kind != "service":
        raise Forbidden(f"{principal.name} has no lab role")


class Visibility:
    """Which entries ``principal`` may read in full (see the module docstring)."""

    def __init__(self, session: Session, principal: Principal) -> None:
        self.session = session
        self.everything = principal.has(Role.bureau, Role.auditor) or principal.kind == "service"
        self.exact_sizes = principal.has(Role.bureau, Role.auditor)  # auditors verify every leaf
        member = select(ProjectMemberRow.project_id).where(
            ProjectMemberRow.username == principal.name, ProjectMemberRow.removed_at.is_(None)
        )
        self.mine = set() if self.everything else set(session.execute(member).scalars())

    def _project(self, entry: dict[str, Any]) -> str | None:
        body = entry.get("body")
        if not isinstance(body, dict):
            return None
        if isinstance(body.get("project"), str):
            return str(body["project"])
        if entry.get("kind") == "product.transition" and isinstance(body.get("product"), str):
            return self.session.scalar(select(ProductRow.project_id).where(ProductRow.id == body["product"]))
        return None

    def show(self, entry: dict[str, Any]) -> dict[str, Any]:
        project = None if self.everything else self._project(entry)
        if project is None or project in self.mine:
            # a non-open dataset's exact size is for the bureau (and the auditors who verify leaves)
            return entry if self.exact_sizes else redact_ledger_body(entry)
        return {"kind": entry.get("kind"), "v": entry.get("v"), "time": entry.get("time"), "withheld": True}

    def entry(self, e: LedgerEntry) -> LedgerEntryOut:
        return LedgerEntryOut(**{**e.__dict__, "entry": self.show(e.entry)})


def visibility(principal: PrincipalDep, session: SessionDep) -> Visibility:
    return Visibility(session, principal)


VisibilityDep = Annotated[Visibility, Depends(visibility)]


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
    seen: VisibilityDep,
    start: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LedgerEntryOut]:
    _reader(principal)
    return [seen.entry(e) for e in ledger.entries(start, limit)]


@router.get(
    "/entries/{index}",
    response_model=LedgerEntryOut,
    responses=responses(Unauthenticated, Forbidden, EntryNotFound),
)
def entry(index: Index, principal: PrincipalDep, ledger: LedgerDep, seen: VisibilityDep) -> LedgerEntryOut:
    _reader(principal)
    return seen.entry(ledger.entry(index))


@router.get(
    "/proof/inclusion/{index}", responses=responses(Unauthenticated, Forbidden, InvalidProof, EntryNotFound)
)
def inclusion(
    index: Index, principal: PrincipalDep, ledger: LedgerDep, seen: VisibilityDep, size: Size | None = None
) -> dict[str, Any]:
    _reader(principal)
    proof = ledger.inclusion(index, size)
    return {**proof, "entry": seen.show(proof["entry"])}


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
