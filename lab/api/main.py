"""Wires the FastAPI application: routers, problem handlers, prefix and size middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from lab import __version__
from lab.api import problems
from lab.api.routes import ROUTERS
from lab.api.routes.audit import AuditMiddleware
from lab.db.migrate import require_head
from lab.runtime import Runtime
from lab.settings import Settings, get_settings


class PrefixAndLimits:
    """Strip the Hub proxy prefix (``/services/lab-api``) and refuse oversized bodies early."""

    def __init__(self, app: ASGIApp, prefix: str, max_bytes: int) -> None:
        self.app, self.prefix, self.max_bytes = app, prefix.rstrip("/"), max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
                scope = dict(scope, path=path[len(self.prefix) :] or "/", root_path=self.prefix)
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                from lab.api.problems import problem_response

                status = 413 if length.isdigit() else 400
                resp = problem_response(
                    status,
                    {
                        "type": "about:blank",
                        "title": "Payload too large" if status == 413 else "Bad Content-Length",
                        "status": status,
                        "detail": f"request bodies are limited to {self.max_bytes} bytes",
                    },
                )
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the API. Refuses to start on a database that is not migrated to head."""
    settings = settings or (runtime.settings if runtime else get_settings())
    settings.check_production()
    rt = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if runtime is None:
            rt.close()

    require_head(rt.engine)
    app = FastAPI(
        title="Public Data Innovation Lab API",
        version=__version__,
        description="Privacy-preserving access to public data: catalog, ledger, projects and channels.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    problems.install(app)
    for router in ROUTERS():
        app.include_router(router)
    app.add_middleware(AuditMiddleware)  # inside PrefixAndLimits: sees the routed scope
    app.add_middleware(PrefixAndLimits, prefix=settings.api_prefix, max_bytes=settings.max_request_bytes)
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory lab.api.main:app_factory``."""
    return create_app()
