"""Ledger: signed tree head, entries, inclusion and consistency proofs, full verification.

Every role reads the log and its proofs; which entries a caller reads in full, and which are
withheld, is decided by :class:`lab.records.visibility.LedgerVisibility`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Response

from lab.api.deps import LedgerDep, PrincipalDep, RuntimeDep, SessionDep
from lab.api.problems import responses
from lab.api.schemas import MAX_INT, LedgerEntryOut, TreeHead, VerifyOut
from lab.db.base import utcnow
from lab.errors import EntryNotFound, Forbidden, InvalidProof, Unauthenticated
from lab.identity import Role
from lab.ledger import LedgerEntry, checkpoints
from lab.ledger.cosign import Cosigner, grace_seconds, quorum_met, quorum_pending, witness_status
from lab.products.queries import project_of
from lab.records.visibility import LedgerVisibility

NOTE_TYPE = "text/plain; charset=utf-8"


@asynccontextmanager
async def _cosigner(app: FastAPI) -> AsyncIterator[None]:
    """Gather witness cosignatures in the background while the API runs (if witnesses are set)."""
    rt = app.state.runtime
    cosigner = None
    if rt.settings.ledger.witnesses:
        cosigner = Cosigner(rt.sessions, rt.settings.encryption_key, rt.settings.ledger).start()
        cosigner.poke()
    app.state.cosigner = cosigner
    try:
        yield
    finally:
        if cosigner is not None:
            cosigner.stop()


router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"], lifespan=_cosigner)
ERRORS = responses(Unauthenticated, Forbidden)
Index = Annotated[int, Path(ge=0, le=MAX_INT)]
Size = Annotated[int, Query(ge=1, le=MAX_INT)]


def _reader(principal: PrincipalDep) -> None:
    if not principal.roles and principal.kind != "service":
        raise Forbidden(f"{principal.name} has no lab role")


def visibility(principal: PrincipalDep, session: SessionDep) -> LedgerVisibility:
    return LedgerVisibility(session, principal, lambda product: project_of(session, product))


def _out(e: LedgerEntry, seen: LedgerVisibility) -> LedgerEntryOut:
    return LedgerEntryOut(**{**e.__dict__, "entry": seen.show(e.entry)})


VisibilityDep = Annotated[LedgerVisibility, Depends(visibility)]


@router.get("/head", response_model=TreeHead, responses=ERRORS, summary="Current signed tree head")
def head(principal: PrincipalDep, ledger: LedgerDep) -> TreeHead:
    _reader(principal)
    return TreeHead(**ledger.head().as_dict())


@router.get(
    "/checkpoint",
    response_class=Response,
    summary="Current C2SP checkpoint (public, no login)",
    responses={200: {"content": {NOTE_TYPE: {}}}},
)
def checkpoint(ledger: LedgerDep, runtime: RuntimeDep) -> Response:
    """The signed note ``<origin>\\n<size>\\n<base64 root>\\n`` with the log's signature and the
    witnesses' cosignatures gathered so far for this size (see docs/ledger.md)."""
    cp = checkpoints.current(ledger, runtime.settings.ledger.origin)
    return Response(cp.note, media_type=NOTE_TYPE)


@router.get(
    "/checkpoint/witnessed",
    response_class=Response,
    summary="Latest checkpoint cosigned by a quorum of witnesses (public)",
    responses={200: {"content": {NOTE_TYPE: {}}}, **responses(EntryNotFound)},
)
def witnessed_checkpoint(session: SessionDep, runtime: RuntimeDep) -> Response:
    cp = checkpoints.witnessed(session, runtime.settings.ledger.quorum)
    if cp is None:
        raise EntryNotFound("no checkpoint has been cosigned by a quorum of witnesses yet")
    return Response(cp.note, media_type=NOTE_TYPE)


@router.get("/vkey", response_class=Response, summary="The log's verifier key (public)")
def vkey(ledger: LedgerDep, runtime: RuntimeDep) -> Response:
    return Response(
        checkpoints.log_verifier(ledger, runtime.settings.ledger.origin).vkey + "\n", media_type=NOTE_TYPE
    )


@router.get("/witnesses", summary="Witnesses: last size cosigned, lag, quorum (public)")
def witnesses(session: SessionDep, ledger: LedgerDep, runtime: RuntimeDep) -> dict[str, Any]:
    cfg = runtime.settings.ledger
    size = ledger.size()
    st = witness_status(session, cfg, size)
    return {
        "origin": cfg.origin,
        "size": size,
        "quorum": cfg.quorum,
        "quorum_met": quorum_met(st, cfg.quorum, size),
        # not met only because the newest entries wait for the next round (no warning yet)
        "quorum_pending": quorum_pending(st, cfg.quorum, size, grace_seconds(cfg), utcnow()),
        "witnesses": [{**s.__dict__} for s in st],
    }


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
    return [_out(e, seen) for e in ledger.entries(start, limit)]


@router.get(
    "/entries/{index}",
    response_model=LedgerEntryOut,
    responses=responses(Unauthenticated, Forbidden, EntryNotFound),
)
def entry(index: Index, principal: PrincipalDep, ledger: LedgerDep, seen: VisibilityDep) -> LedgerEntryOut:
    _reader(principal)
    return _out(ledger.entry(index), seen)


@router.get(
    "/proof/inclusion/{index}", responses=responses(Unauthenticated, Forbidden, InvalidProof, EntryNotFound)
)
def inclusion(
    index: Index,
    principal: PrincipalDep,
    ledger: LedgerDep,
    seen: VisibilityDep,
    runtime: RuntimeDep,
    size: Size | None = None,
    witnessed: Annotated[bool, Query(description="against the latest witnessed checkpoint")] = False,
) -> dict[str, Any]:
    _reader(principal)
    cfg = runtime.settings.ledger
    proof = checkpoints.inclusion_with_checkpoint(ledger, index, cfg.origin, cfg.quorum, size, witnessed)
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
