"""RFC 9457 problem+json rendering for every error the API can produce."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lab.errors import LabError, problem_type

log = logging.getLogger("lab.api")
PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
#: Problem bodies never echo unbounded input: every string member is cut to ``MAX_ECHO`` characters,
#: every list to ``MAX_ITEMS`` items and nesting to ``MAX_DEPTH`` levels (so a body stays a few KiB).
MAX_ECHO = 300
MAX_ITEMS = 20
MAX_DEPTH = 4


def capped(value: Any, depth: int = 0) -> Any:
    """``value`` with long strings, long lists and deep nesting cut (for problem bodies).

    >>> len(capped("x" * 100_000)), len(capped(list(range(100))))
    (307, 20)
    """
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO else value[:MAX_ECHO] + "… (cut)"
    if isinstance(value, (bool, int, float)) or value is None:
        return value if not isinstance(value, int) or abs(value) < 10**18 else capped(str(value), depth)
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:MAX_ITEMS]
        return {capped(str(k), depth + 1): capped(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [capped(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    return capped(str(value), depth)


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error response of the API carries it."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str | None = None
    instance: str | None = None


def _base(request: Request) -> str:
    """The API's path prefix as this request reached it (``/services/lab-api`` behind the Hub)."""
    return str(request.scope.get("root_path", ""))


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(capped(body), status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem responses, and document them."""
    _document_problems(app)

    @app.exception_handler(LabError)
    async def _lab_error(request: Request, exc: LabError) -> JSONResponse:
        request.state.outcome = exc.code
        if exc.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
        else:
            log.warning("%s %s refused (%s): %s", request.method, request.url.path, exc.code, exc.detail)
        headers = {"WWW-Authenticate": 'token realm="lab"'} if exc.status == 401 else None
        if exc.status == 429 and "retry_after" in exc.extra:
            headers = {"Retry-After": str(int(exc.extra["retry_after"]))}
        return problem_response(exc.status, exc.problem(request.url.path, _base(request)), headers)

    @app.exception_handler(ArithmeticError)
    async def _arithmetic(request: Request, exc: ArithmeticError) -> JSONResponse:
        """A number of the request overflowed or vanished in arithmetic (decimal context, float
        conversion): the caller's input, a bounded 400 that never echoes it, never a 500."""
        request.state.outcome = "number-out-of-range"
        log.warning("%s %s: arithmetic error %s", request.method, request.url.path, type(exc).__name__)
        return problem_response(
            400,
            {
                "type": problem_type("number-out-of-range", _base(request)),
                "title": "Number out of range",
                "status": 400,
                "detail": f"a number in the request is out of range ({type(exc).__name__})",
                "code": "number-out-of-range",
                "instance": request.url.path,
            },
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.state.outcome = "validation"
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "reason": "invalid request"}
        return problem_response(
            422,
            {
                "type": problem_type("validation", _base(request)),
                "title": "Request does not validate",
                "status": 422,
                "detail": f"{first['field']}: {first['reason']}",
                "code": "validation",
                "instance": request.url.path,
                "errors": errors[:20],
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        request.state.outcome = f"http-{exc.status_code}"
        return problem_response(
            exc.status_code,
            {
                "type": "about:blank",
                "title": str(exc.detail) if exc.status_code != 404 else "Not Found",
                "status": exc.status_code,
                "detail": str(exc.detail),
                "instance": request.url.path,
            },
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        """A value the database refuses (a NUL character, a number out of range, a string too long
        for its column): the caller's input, rolled back with its transaction, never a 500."""
        request.state.outcome = "unstorable-value"
        log.warning("%s %s refused by the database: %s", request.method, request.url.path, exc.orig)
        return problem_response(
            400,
            {
                "type": problem_type("unstorable-value", _base(request)),
                "title": "Value cannot be stored",
                "status": 400,
                "detail": "a value in the request cannot be stored (NUL character, out of range or too long)",
                "code": "unstorable-value",
                "instance": request.url.path,
            },
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request.state.outcome = "internal"
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500,
            {
                "type": problem_type("internal", _base(request)),
                "title": "Internal error",
                "status": 500,
                "detail": "an unexpected error occurred; it has been logged",
                "instance": request.url.path,
            },
        )


def responses(*errors: type[LabError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the errors a route can raise."""
    out: dict[int | str, dict[str, Any]] = {}
    for e in errors:
        out.setdefault(e.status, {"description": e.title, "content": {PROBLEM: {}}})
    return out


def _document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what the handlers send: every 4xx/5xx is a :class:`Problem`.

    FastAPI documents request validation errors (422) as ``application/json`` with its own schema;
    the handler above answers ``application/problem+json``, so the generated document is rewritten.
    Every operation may answer 400 (a NUL in its path or query, an unparsable body) and every one
    with a body 413 (both from ``PrefixAndLimits``).
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema()
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                # any route: a NUL in the path or query (400); with a body: unparsable (400), too large (413)
                op["responses"].setdefault("400", {"description": "Bad request"})
                if "requestBody" in op:
                    op["responses"].setdefault("413", {"description": "Payload too large"})
                for status, resp in op.get("responses", {}).items():
                    if status[:1] in ("4", "5"):
                        resp["content"] = {PROBLEM: {"schema": PROBLEM_REF}}
                        if status == "422":
                            resp["description"] = "Request does not validate"
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
