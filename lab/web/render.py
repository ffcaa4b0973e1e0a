"""Jinja2 rendering of the bureau pages: one environment, the common page context, safe headers.

Templates live in ``lab/web/templates`` (autoescaped, strict undefined). Every page gets ``t``
(the translator of the request's language), ``url`` (a path under the service prefix), the
principal, the CSRF token of the session and the language switch link.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from lab.db.types import as_utc
from lab.decimals import plain
from lab.identity import Principal
from lab.web.i18n import LANGS, Translator

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

#: No scripts at all; styles and images from this origin only; forms post back here only.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def fmt_time(value: dt.datetime | str | None) -> str:
    """``YYYY-MM-DD HH:MM`` UTC, or an empty string."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        when = value
    return as_utc(when).strftime("%Y-%m-%d %H:%M UTC")


def fmt_decimal(value: Any) -> str:
    """An exact decimal without trailing zeros (``"1.50"`` -> ``"1.5"``, ``"0E-7"`` -> ``"0"``)."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return plain(d)


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = fmt_time
    env.filters["dec"] = fmt_decimal
    return env


ENV = _env()


def root_of(request: Request) -> str:
    """The path prefix the proxy serves this service under ('' when called directly)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def route_path(request: Request) -> str:
    """The request's path below the service prefix (whether or not the prefix is still in ``path``)."""
    root, path = root_of(request), str(request.scope["path"])
    return path[len(root) :] or "/" if root and path.startswith(root + "/") else path


def full_path(request: Request) -> str:
    """The request's public path and query, e.g. for a post-login redirect."""
    query = request.url.query
    return f"{root_of(request)}{route_path(request)}" + (f"?{query}" if query else "")


def switch_lang_url(request: Request, lang: str) -> str:
    """The current page in the other language (other query parameters kept)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", lang))
    return f"{root_of(request)}{route_path(request)}?{urlencode(params)}"


def render(
    request: Request,
    template: str,
    *,
    lang: str,
    principal: Principal | None = None,
    csrf: str = "",
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the common page context."""
    root = root_of(request)
    other = "en" if lang == "zh" else "zh"
    page = ENV.get_template(template).render(
        t=Translator(lang),
        lang=lang,
        langs=LANGS,
        html_lang=LANGS[lang],
        root=root,
        url=lambda path: f"{root}{path}",
        path=route_path(request),
        principal=principal,
        roles=sorted(principal.roles) if principal else [],
        csrf=csrf,
        other_lang=other,
        other_lang_url=switch_lang_url(request, other),
        **context,
    )
    return HTMLResponse(page, status_code=status_code, headers=SECURITY_HEADERS)
