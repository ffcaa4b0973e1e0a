"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from lab import __version__
from lab.api.deps import PrincipalDep, RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and database readiness")
def healthz(runtime: RuntimeDep) -> dict[str, str]:
    with runtime.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}


@router.get("/api/v1/me", summary="The caller as the lab sees it")
def me(principal: PrincipalDep) -> dict[str, object]:
    return {
        "name": principal.name,
        "kind": principal.kind,
        "roles": sorted(principal.roles),
        "groups": sorted(principal.groups),
    }
