"""The bureau web pages (server-rendered, zh-CN by default): ``/ui/...`` and the Hub OAuth callback.

Thin: each route resolves its :class:`~lab.web.pages.Page` (session, language, CSRF), calls a view
builder in :mod:`lab.web.views` and renders a template. Pages accept the session cookie; the API
routes keep token authentication. See docs/web.md.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from lab.api.routes.audit import writer_for
from lab.api.schemas import MAX_INT
from lab.audit.service import anomalies
from lab.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from lab.identity import Role
from lab.products import queries as product_queries
from lab.products import service as product_service
from lab.projects.workflow import ProjectWorkflow
from lab.web import auth
from lab.web.pages import (
    FormFieldsDep,
    FormPageDep,
    HtmlRoute,
    Page,
    PageDep,
    UserPageDep,
    clear_cookie,
    set_cookie,
)
from lab.web.render import STATIC, root_of
from lab.web.views import catalog, ledger, products, projects, risk

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, tags=["web"])
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\.(css|svg|png|woff2)$")
READERS = (Role.bureau, Role.auditor, Role.steward, Role.operator, Role.registrar)
#: ``?done=`` values after a redirect, shown as a notice (translated).
DONE = {"approve", "reject", "changes", "suspend", "resume", "end", "verify", "revoke"}


def _notice(p: Page, done: str) -> str:
    return p.t(f"done.{done}") if done in DONE else ""


# -- login -------------------------------------------------------------------------------------
@router.get("/ui")
def ui_root(p: PageDep) -> Response:
    return p.redirect("/ui/")


@router.get("/ui/")
def home(p: UserPageDep) -> Response:
    return p.redirect("/ui/projects" if p.user.has(Role.bureau, Role.auditor) else "/ui/catalog")


@router.get("/ui/login")
def login(p: PageDep, next: Annotated[str, Query(max_length=2000)] = "") -> Response:
    """Start the Hub OAuth flow."""
    settings = p.runtime.settings
    target = auth.safe_next(next, root_of(p.request))
    location, state_cookie = auth.begin_login(settings, target)
    response = RedirectResponse(location, status_code=302)
    set_cookie(p.request, response, auth.STATE_COOKIE, state_cookie, auth.STATE_SECONDS)
    return response


@router.get("/oauth_callback")
def oauth_callback(
    p: PageDep,
    code: Annotated[str, Query(max_length=512)] = "",
    state: Annotated[str, Query(max_length=512)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Finish the Hub OAuth flow: check state, exchange the code, open the session."""
    settings = p.runtime.settings
    if error:
        raise Forbidden(f"the Hub did not authorize the login: {error}")
    pending = auth.check_state(settings, state, p.request.cookies.get(auth.STATE_COOKIE))
    token, lifetime = auth.exchange_code(settings, code, str(pending["verifier"]))
    try:
        principal = p.runtime.hub.resolve(token)
    except Unauthenticated as exc:  # an error page, not a redirect back into the login loop
        raise Forbidden("the Hub does not accept the token it just issued") from exc
    session = auth.WebSession.new(token, principal.name, lifetime)
    target = auth.safe_next(str(pending.get("next", "")), root_of(p.request))
    response = RedirectResponse(target, status_code=303)
    set_cookie(p.request, response, auth.SESSION_COOKIE, session.cookie(settings), lifetime)
    clear_cookie(p.request, response, auth.STATE_COOKIE)
    return response


@router.post("/ui/logout")
def logout(p: FormPageDep) -> Response:
    response = p.redirect("/ui/logged-out")
    clear_cookie(p.request, response, auth.SESSION_COOKIE)
    return response


@router.get("/ui/logged-out")
def logged_out(p: PageDep) -> Response:
    return p.render("logged_out.html", hub_logout=auth.hub_logout_url(p.runtime.settings))


@router.get("/ui/static/{name}")
def static(name: str) -> Response:
    path = STATIC / name
    if not STATIC_NAME.match(name) or not path.is_file():
        raise NotFound(f"no static file {name}")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


# -- catalog and ledger ----------------------------------------------------------------------------
@router.get("/ui/catalog")
def catalog_page(p: UserPageDep) -> Response:
    p.require(*READERS)
    with p.runtime.transaction() as s:
        ctx = catalog.catalog_list(s, p.principal, p.runtime.settings.encryption_key)
    return p.render("catalog.html", **ctx)


@router.get("/ui/catalog/{dataset}")
def catalog_entry_page(dataset: str, p: UserPageDep) -> Response:
    p.require(*READERS)
    with p.runtime.transaction() as s:
        ctx = catalog.catalog_entry(s, dataset, p.t, p.principal, p.runtime.settings.encryption_key)
    return p.render("catalog_entry.html", **ctx)


@router.get("/ui/ledger")
def ledger_page(p: UserPageDep, done: Annotated[str, Query(max_length=16)] = "") -> Response:
    p.require(*READERS)
    overseer = p.user.has(Role.bureau, Role.auditor)  # others see the public checkpoint only
    with p.runtime.transaction() as s:
        ctx = ledger.ledger_status(p.runtime.settings, p.runtime.ledger(s), detail=overseer)
    return p.render("ledger.html", can_verify=overseer, notice=_notice(p, done), **ctx)


@router.post("/ui/ledger/verify")
def ledger_verify(p: FormPageDep) -> Response:
    p.require(Role.bureau, Role.auditor)
    with p.runtime.transaction() as s:
        ledger.run_verification(p.runtime.settings, p.runtime.ledger(s), p.user.name)
    return p.redirect("/ui/ledger?done=verify")


# -- risk (articles 29, 32): dataset accounts and request anomalies, bureau and auditor only ----
@router.get("/ui/risk")
def risk_page(p: UserPageDep) -> Response:
    p.require(Role.bureau, Role.auditor)
    with p.runtime.transaction() as s:
        ctx = risk.risk_overview(s)
    return p.render("risk.html", **ctx)


@router.get("/ui/risk/{dataset}")
def risk_dataset_page(dataset: Annotated[str, Path(max_length=64)], p: UserPageDep) -> Response:
    p.require(Role.bureau, Role.auditor)
    with p.runtime.transaction() as s:
        ctx = risk.risk_detail(s, dataset, p.t, p.lang)
    return p.render("risk_dataset.html", **ctx)


@router.get("/ui/records/{record_id}")
def release_page(record_id: Annotated[str, Path(max_length=40)], p: UserPageDep) -> Response:
    p.require(Role.bureau, Role.auditor)
    with p.runtime.transaction() as s:
        ctx = risk.release_detail(s, p.runtime.ledger(s), p.user, record_id)
    return p.render("release.html", **ctx)


@router.get("/ui/anomalies")
def anomalies_page(p: UserPageDep, hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24.0) -> Response:
    p.require(Role.bureau, Role.auditor)
    writer_for(p.request.app).flush()
    with p.runtime.transaction() as s:
        report = anomalies(s, hours=hours)
    return p.render("anomalies.html", hours=hours, **risk.anomalies_view(report))


# -- projects ------------------------------------------------------------------------------------
@router.get("/ui/projects")
def projects_page(p: UserPageDep, status: Annotated[str, Query(max_length=32)] = "") -> Response:
    p.require(*READERS)
    with p.runtime.transaction() as s:
        ctx = projects.queue(s, p.user, status, p.lang)
    return p.render("projects.html", **ctx)


@router.get("/ui/projects/{project_id}")
def project_page(
    project_id: str, p: UserPageDep, done: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    p.require(*READERS)
    with p.runtime.transaction() as s:
        ctx = projects.detail(s, p.user, project_id, p.runtime.settings.projects, p.t)
    return p.render("project.html", notice=_notice(p, done), **ctx)


@router.post("/ui/projects/{project_id}/review")
def project_review(project_id: str, p: FormPageDep, fields: FormFieldsDep) -> Response:
    """Approve (optionally reduced grant / shorter term), reject with a reason, or request changes."""
    p.require(Role.bureau)
    wf = ProjectWorkflow(p.runtime)
    current = wf.get(p.user, project_id)
    decision = projects.parse_review(fields, current.requested, current.requested_days)
    wf.review(p.user, project_id, decision)
    return p.redirect(f"/ui/projects/{project_id}?done={decision.decision}")


@router.post("/ui/projects/{project_id}/action")
def project_action(
    project_id: str,
    p: FormPageDep,
    action: Annotated[str, Form(max_length=16)],
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Bureau supervision: suspend, resume or end (ending disposes of the project's data)."""
    p.require(Role.bureau)
    wf = ProjectWorkflow(p.runtime)
    acts = {"suspend": wf.suspend, "resume": wf.resume, "end": wf.end}
    if action not in acts:
        raise BadRequest(f"unknown action {action!r}", field="action")
    acts[action](p.user, project_id, reason.strip())
    return p.redirect(f"/ui/projects/{project_id}?done={action}")


# -- products -------------------------------------------------------------------------------------
@router.get("/ui/products")
def products_page(p: UserPageDep, status: Annotated[str, Query(max_length=32)] = "") -> Response:
    p.require(Role.bureau, Role.auditor, Role.registrar, Role.operator)
    with p.runtime.transaction() as s:
        ctx = products.queue(s, p.user, status)
    return p.render("products.html", **ctx)


@router.get("/ui/products/{product_id}")
def product_page(
    product_id: str, p: UserPageDep, done: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    p.require(Role.bureau, Role.auditor, Role.registrar, Role.operator)
    with p.runtime.transaction() as s:
        ctx = products.detail(s, p.user, product_id, p.lang)
    return p.render("product.html", notice=_notice(p, done), **ctx)


@router.get("/ui/products/{product_id}/certificate.json")
def product_certificate(product_id: str, p: UserPageDep) -> Response:
    cfg = p.runtime.settings.ledger
    with p.runtime.transaction() as s:  # anchored to a witnessed checkpoint once one covers it
        cert = product_queries.certificate(
            s, p.user, product_id, anchor_with=(p.runtime.ledger(s), cfg.origin, cfg.quorum)
        )
    name = f"{cert.get('registration_number') or product_id}.json"
    return JSONResponse(cert, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/ui/products/{product_id}/review")
def product_review(
    product_id: str,
    p: FormPageDep,
    decision: Annotated[str, Form(max_length=16)],
    reason: Annotated[str, Form(max_length=4000)] = "",
    version: Annotated[int | None, Form(ge=1, le=MAX_INT)] = None,
) -> Response:
    """Approve (registration number and certificate) or reject (reason required) a version."""
    p.require(Role.bureau)
    with p.runtime.transaction() as s:
        product_service.review(s, p.runtime.ledger(s), p.user, product_id, decision, reason, version)
    return p.redirect(f"/ui/products/{product_id}?done={'approve' if decision == 'approve' else 'reject'}")


@router.post("/ui/products/{product_id}/revoke")
def product_revoke(
    product_id: str, p: FormPageDep, reason: Annotated[str, Form(max_length=4000)] = ""
) -> Response:
    p.require(Role.bureau)
    with p.runtime.transaction() as s:
        product_service.revoke(s, p.runtime.ledger(s), p.user, product_id, reason)
    return p.redirect(f"/ui/products/{product_id}?done=revoke")
