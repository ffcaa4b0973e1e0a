"""Dependency aliases for routes: the runtime, a transactional session, the principal, the path's
project; and the one bounded reader of raw request bodies (:func:`read_body`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from lab.errors import PayloadTooLarge, Unauthenticated
from lab.identity import Principal
from lab.identity.oidc import looks_like_jwt, verifier_for
from lab.ledger import Ledger
from lab.projects.access import visible_project
from lab.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One transaction per request: committed when the route function returns — before the response
    is sent, so no result leaves the lab unless its charge and ledger entry are committed — and rolled
    back if it raises."""
    with runtime.transaction() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_read_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A read-only session (:meth:`Runtime.reading`): light reads never wait for a long writer."""
    with runtime.reading() as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


def bearer_token(request: Request) -> str:
    """The caller's token from ``Authorization: token X`` / ``Bearer X``, or the lab session cookie."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return ""


def get_principal(request: Request, runtime: RuntimeDep) -> Principal:
    """Resolve the caller through the Hub; no valid token, no data."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if not token:
        raise Unauthenticated("a JupyterHub API token is required (Authorization: token <token>)")
    if runtime.settings.oidc.issuer and looks_like_jwt(token):  # machine client (Keycloak JWT)
        principal = verifier_for(runtime.settings.oidc).verify(token)
    else:
        principal = runtime.hub.resolve(token)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_project(project: str, principal: PrincipalDep, runtime: RuntimeDep) -> str:
    """The ``{project}`` of a channel route's path, if the caller may know of it.

    Whoever may not (:func:`~lab.projects.access.visible_project`) gets
    :class:`~lab.errors.ProjectNotFound` whether the project exists or not — before any body is read,
    as a DP route answers a non-member — so a project id in a path is no existence oracle. What the
    caller may do in the project (operate, read) is the channel service's decision.
    """
    with runtime.reading() as session:
        visible_project(session, principal, project)
    return project


ProjectDep = Annotated[str, Depends(get_project)]


def get_ledger(runtime: RuntimeDep, session: SessionDep) -> Ledger:
    return runtime.ledger(session)


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


async def read_body(request: Request, limit: int, detail: str) -> bytes:
    """The raw request body, refused with :class:`PayloadTooLarge` (``detail``, ``max_bytes``) as soon
    as more than ``limit`` bytes arrive, so an oversized body is never held whole. The routes that take
    raw bodies (PSI envelopes, HE contexts) read them here; the app-wide limit applies besides."""
    chunks, total = [], 0
    async for block in request.stream():
        total += len(block)
        if total > limit:
            raise PayloadTooLarge(detail, max_bytes=limit)
        chunks.append(block)
    return b"".join(chunks)
