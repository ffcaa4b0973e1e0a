"""The page layer: who is looking (session cookie), in which language, and errors as HTML.

* :class:`HtmlRoute` is the route class of the web router: a :class:`~lab.errors.LabError` raised by
  a page or its dependencies becomes an HTML error page (a missing or expired session becomes a
  redirect to the login route) instead of problem+json; ``?lang=`` is remembered in a cookie.
* :func:`page` / :func:`user_page` / :func:`form_page` are the dependencies: anonymous, logged in,
  and logged in with a checked CSRF token (every POST).

Only page routes accept the session cookie; the API keeps token authentication (``lab.api.deps``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import RedirectResponse, Response

from lab.api.deps import RuntimeDep
from lab.errors import LabError, Unauthenticated
from lab.identity import Principal, Role
from lab.runtime import Runtime
from lab.web import auth
from lab.web.i18n import DEFAULT_LANG, LANGS, Translator
from lab.web.render import full_path, render, root_of

#: status -> (title key, message key) of the error page.
ERROR_KEYS = {
    400: ("error.400", "error.400.text"),
    401: ("error.401", "error.401.text"),
    403: ("error.403", "error.403.text"),
    404: ("error.404", "error.404.text"),
    409: ("error.409", "error.409.text"),
    413: ("error.413", "error.413.text"),
    429: ("error.429", "error.429.text"),
    503: ("error.503", "error.503.text"),
}


def request_lang(request: Request) -> str:
    """``?lang=`` if valid, else the language cookie, else Chinese."""
    for value in (request.query_params.get("lang"), request.cookies.get(auth.LANG_COOKIE)):
        if value in LANGS:
            return value
    return DEFAULT_LANG


def is_https(request: Request) -> bool:
    return request.headers.get("x-forwarded-proto", request.url.scheme) == "https"


def cookie_path(request: Request) -> str:
    """Cookies are scoped to this service's prefix, never sent to the Hub or notebook servers."""
    return root_of(request) or "/"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=cookie_path(request),
        httponly=True,
        secure=is_https(request),
        samesite="lax",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=cookie_path(request), httponly=True, secure=is_https(request))


@dataclass
class Page:
    """One page request: runtime, language, and (when logged in) session and principal."""

    request: Request
    runtime: Runtime
    lang: str
    session: auth.WebSession | None = None
    principal: Principal | None = None

    @property
    def t(self) -> Translator:
        return Translator(self.lang)

    @property
    def csrf(self) -> str:
        return auth.csrf_token(self.runtime.settings, self.session) if self.session else ""

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "user_page dependency guarantees a principal"
        return self.principal

    def require(self, *roles: Role) -> Principal:
        """The principal, if it holds one of ``roles`` (else :class:`~lab.errors.Forbidden`)."""
        return self.user.require(*roles)

    def url(self, path: str) -> str:
        return f"{root_of(self.request)}{path}"

    def render(self, template: str, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("notice", "")
        context.setdefault("not_isolated", self.runtime.settings.notebook_isolation == "none")
        return render(
            self.request,
            template,
            lang=self.lang,
            principal=self.principal,
            csrf=self.csrf,
            status_code=status_code,
            **context,
        )

    def redirect(self, path: str) -> RedirectResponse:
        """Post/redirect/get: 303 to a page of this service."""
        return RedirectResponse(self.url(path), status_code=303)


def page(request: Request, runtime: RuntimeDep) -> Page:
    """An anonymous page (login, logout)."""
    p = Page(request, runtime, request_lang(request))
    request.state.page = p
    return p


def user_page(request: Request, runtime: RuntimeDep) -> Page:
    """A page that needs a logged-in user: the session cookie's token is resolved through the Hub."""
    p = page(request, runtime)
    session = auth.read_session(runtime.settings, request.cookies.get(auth.SESSION_COOKIE))
    if session is None:
        raise auth.LoginRequired("log in through JupyterHub to see the bureau pages")
    try:
        principal = runtime.hub.resolve(session.token)
    except Unauthenticated as exc:
        raise auth.LoginRequired("the Hub no longer accepts this session; log in again") from exc
    p.session, p.principal = session, principal
    request.state.principal = principal
    return p


def form_page(
    request: Request,
    runtime: RuntimeDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Page:
    """A logged-in form submission whose CSRF token matches the session (else 403)."""
    p = user_page(request, runtime)
    auth.check_csrf(runtime.settings, p.session, csrf_token)
    return p


async def form_fields(request: Request) -> dict[str, str]:
    """Every text field of the submitted form (bounded in number and size)."""
    from lab.web.views.projects import form_fields as bounded

    form = await request.form()
    return bounded([(k, v) for k, v in form.multi_items() if isinstance(v, str)])


PageDep = Annotated[Page, Depends(page)]
FormFieldsDep = Annotated[dict[str, str], Depends(form_fields)]
UserPageDep = Annotated[Page, Depends(user_page)]
FormPageDep = Annotated[Page, Depends(form_page)]


def login_redirect(request: Request) -> Response:
    """Send the browser to the login route, coming back here afterwards (GET) or to the queue."""
    root = root_of(request)
    target = full_path(request) if request.method == "GET" else f"{root}/ui/"
    response = RedirectResponse(f"{root}/ui/login?{urlencode({'next': target})}", status_code=303)
    if auth.SESSION_COOKIE in request.cookies:
        clear_cookie(request, response, auth.SESSION_COOKIE)
    return response


def error_page(request: Request, status: int, detail: str) -> Response:
    p: Page | None = getattr(request.state, "page", None)
    if p is None:
        p = Page(request, request.app.state.runtime, request_lang(request))
    title_key, message_key = ERROR_KEYS.get(status, ("error.500", "error.500.text"))
    return p.render(
        "error.html",
        status_code=status,
        title_key=title_key,
        message_key=message_key,
        detail=detail if status < 500 else "",
        back="",
    )


class HtmlRoute(APIRoute):
    """Route class of the pages: lab errors become HTML (or a login redirect), not problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def html_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except Unauthenticated:
                request.state.outcome = "login-required"
                response = login_redirect(request)
            except LabError as exc:
                request.state.outcome = exc.code
                response = error_page(request, exc.status, exc.detail)
            except RequestValidationError as exc:
                request.state.outcome = "validation"
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(x) for x in first.get("loc", ()))
                response = error_page(request, 400, f"{where}: {first.get('msg', 'invalid form')}")
            lang = request.query_params.get("lang")
            if lang in LANGS and request.cookies.get(auth.LANG_COOKIE) != lang:
                response.set_cookie(
                    auth.LANG_COOKIE, lang, max_age=365 * 86400, path=cookie_path(request), samesite="lax"
                )
            return response

        return html_handler
