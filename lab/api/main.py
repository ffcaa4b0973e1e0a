"""Wires the FastAPI application: routers, problem handlers, prefix and size middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lab import __version__
from lab.api import problems
from lab.api.routes import (
    audit,
    catalog,
    dp,
    he,
    health,
    ledger,
    products,
    projects,
    psi,
    records,
    web,
)
from lab.api.routes import problems as problem_pages
from lab.api.routes.audit import AuditMiddleware
from lab.db.migrate import require_head
from lab.runtime import Runtime
from lab.settings import Settings, get_settings

#: Every router of the API, in inclusion order (a typo is an ImportError, not a missing capability).
ROUTERS = (
    health.router,
    catalog.router,
    ledger.router,
    projects.router,
    audit.router,
    records.router,
    dp.router,
    psi.router,
    he.router,
    he.lab_router,
    products.router,
    web.router,
    problem_pages.router,
)


class PrefixAndLimits:
    """Strip the Hub proxy prefix (``/services/lab-api``) and refuse what no route may receive.

    * a declared ``Content-Length`` above ``max_bytes`` (413) or not a number (400), before routing;
    * a body without one (chunked) that grows past ``max_bytes``: 413 as it is read;
    * a NUL character in the path, the query string or a JSON body (``\\u0000``): 400. No id, filter
      or text of the lab holds one, and PostgreSQL cannot store or even compare one.

    Refusals are problem documents; the ones raised while the body is read go through the app's
    handlers as ``HTTPException`` (FastAPI passes those through its body parsing untouched).
    """

    def __init__(self, app: ASGIApp, prefix: str, max_bytes: int) -> None:
        self.app, self.prefix, self.max_bytes = app, prefix.rstrip("/"), max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            scope = dict(scope, path=path[len(self.prefix) :] or "/", root_path=self.prefix)
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        refusal = None
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            status = 413 if length.isdigit() else 400
            title = "Payload too large" if status == 413 else "Bad Content-Length"
            refusal = (status, title, f"request bodies are limited to {self.max_bytes} bytes")
        elif "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"").lower():
            refusal = (400, "Bad request", "the path or query string contains a NUL character")
        if refusal is not None:
            from lab.api.problems import problem_response

            status, title, detail = refusal
            body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
            await problem_response(status, body)(scope, receive, send)
            return
        is_json = headers.get(b"content-type", b"").split(b";")[0].strip().lower().endswith(b"json")
        await self.app(scope, self._checked(receive, is_json), send)

    def _checked(self, receive: Receive, is_json: bool) -> Receive:
        """``receive``, counting the body against the limit and looking for JSON's NUL escape."""
        total, tail = 0, b""

        async def checked() -> Message:
            nonlocal total, tail
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > self.max_bytes:
                    raise HTTPException(413, f"request bodies are limited to {self.max_bytes} bytes")
                if is_json:
                    window = (tail + chunk).lower()
                    if b"\\u0000" in window:
                        raise HTTPException(400, "the JSON body contains a NUL character (\\u0000)")
                    tail = window[-5:]
            return message

        return checked


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the API. Refuses to start on a database that is not migrated to head."""
    settings = settings or (runtime.settings if runtime else get_settings())
    settings.check_production()
    rt = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        adm = getattr(app.state, "admission", None)
        if adm is not None:
            adm.close()  # the DP worker processes end with the app
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
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(AuditMiddleware)  # inside PrefixAndLimits: sees the routed scope
    app.add_middleware(PrefixAndLimits, prefix=settings.api_prefix, max_bytes=settings.max_request_bytes)
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory lab.api.main:app_factory``."""
    return create_app()
