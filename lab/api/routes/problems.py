"""Problem type pages: ``{prefix}/problems`` and ``{prefix}/problems/{code}``, public, zh-CN and English.

Every problem document's ``type`` points here (:func:`lab.errors.problem_type`); the page says what
the problem means and how to fix it (:mod:`lab.api.problem_catalog`). Browsers get HTML (``?lang=``
as on the other pages); a client that asks for ``application/json`` gets the same text as JSON.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path
from starlette.responses import JSONResponse, Response

from lab.api.problem_catalog import CATALOG, describe
from lab.errors import NotFound
from lab.web.pages import HtmlRoute, PageDep

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, tags=["problems"])
Code = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9-]+$")]


@router.get("/problems")
def index(p: PageDep) -> Response:
    items = [(code, e.status, describe(code, p.lang).title) for code, e in sorted(CATALOG.items())]
    return p.render("problems.html", items=items)


@router.get("/problems/{code}")
def problem_page(code: Code, p: PageDep, accept: Annotated[str, Header(max_length=1000)] = "") -> Response:
    if code not in CATALOG:
        raise NotFound(f"no problem type {code}")
    text, status = describe(code, p.lang), CATALOG[code].status
    if "application/json" in accept and "text/html" not in accept:
        body = {"code": code, "status": status, "lang": p.lang, **text.__dict__}
        return JSONResponse(body)
    return p.render("problem.html", code=code, status=status, text=text)
