"""Browser login through the Hub's OAuth, the sealed session cookie, and CSRF tokens.

The lab API is a JupyterHub service (OAuth client ``service-<name>``). Login follows
:class:`jupyterhub.services.auth.HubOAuth`:

1. ``/ui/login`` makes a random ``state`` and a PKCE verifier, keeps both (and where to go next)
   in a short-lived sealed cookie, and redirects to the Hub's ``/hub/api/oauth2/authorize``;
2. the Hub logs the user in (no confirmation page: the service has ``oauth_no_confirm``) and
   redirects to ``<prefix>/oauth_callback?code=...&state=...``;
3. the callback checks ``state`` against the cookie, exchanges the code at the Hub's
   ``oauth2/token`` (client secret: the service's API token; PKCE verifier), resolves the user
   with the access token, and sets the session cookie.

Cookies are sealed with AES-256-GCM under keys derived from ``settings.secret_key`` (one key per
purpose): authenticated, so they cannot be forged or altered, and confidential, so the Hub access
token inside never shows. Every request with a session re-resolves its token through the Hub
(cached briefly), so removing a user's role or token at the Hub takes effect at once.

CSRF: a synchronizer token, ``HMAC(csrf key, session id)``, is embedded in every form and checked
on every POST; it is bound to the session, so a token from another session is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lab.errors import Forbidden, Unauthenticated, Unavailable
from lab.settings import Settings

SESSION_COOKIE = "lab-session"
STATE_COOKIE = "lab-oauth-state"
LANG_COOKIE = "lab-lang"
SESSION_SECONDS = 8 * 3600
STATE_SECONDS = 600
MAX_COOKIE = 4096


class LoginRequired(Unauthenticated):
    """No valid browser session: pages answer with a redirect to the login route."""

    code, title = "login-required", "Login required"


class CsrfRefused(Forbidden):
    code, title = "csrf", "Form token missing or invalid"


def _key(settings: Settings, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the lab's secret key."""
    secret = settings.secret_key.get_secret_value().encode()
    return hmac.new(secret, b"lab-web\x00" + purpose.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(settings: Settings, purpose: str, payload: dict[str, Any]) -> str:
    """Encrypt and authenticate ``payload`` into a cookie-safe string."""
    nonce = os.urandom(12)
    data = json.dumps(payload, separators=(",", ":")).encode()
    return _b64(nonce + AESGCM(_key(settings, purpose)).encrypt(nonce, data, purpose.encode()))


def unseal(settings: Settings, purpose: str, value: str | None) -> dict[str, Any] | None:
    """The payload :func:`seal` produced, or ``None`` if absent, altered or sealed for another purpose."""
    if not value or len(value) > MAX_COOKIE:
        return None
    try:
        raw = _unb64(value)
        data = AESGCM(_key(settings, purpose)).decrypt(raw[:12], raw[12:], purpose.encode())
        payload = json.loads(data)
    except (InvalidTag, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


# -- the session ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebSession:
    """A logged-in browser: the Hub access token, its user, a session id (for CSRF), an expiry."""

    token: str
    user: str
    sid: str
    exp: int

    @classmethod
    def new(cls, token: str, user: str, lifetime: int = SESSION_SECONDS) -> WebSession:
        return cls(token, user, secrets.token_urlsafe(16), int(time.time()) + lifetime)

    def cookie(self, settings: Settings) -> str:
        return seal(settings, "session", asdict(self))


def read_session(settings: Settings, cookie: str | None) -> WebSession | None:
    """The session in ``cookie`` if it is genuine and unexpired."""
    data = unseal(settings, "session", cookie)
    if data is None:
        return None
    try:
        session = WebSession(str(data["token"]), str(data["user"]), str(data["sid"]), int(data["exp"]))
    except (KeyError, TypeError, ValueError):
        return None
    return session if session.exp > time.time() else None


def csrf_token(settings: Settings, session: WebSession) -> str:
    """The form token of ``session``."""
    return _b64(hmac.new(_key(settings, "csrf"), session.sid.encode(), hashlib.sha256).digest())


def check_csrf(settings: Settings, session: WebSession | None, submitted: str | None) -> None:
    """Raise :class:`CsrfRefused` unless ``submitted`` is ``session``'s form token."""
    if session is None or not submitted:
        raise CsrfRefused("this form has no valid token; reload the page and try again")
    if not hmac.compare_digest(csrf_token(settings, session), submitted):
        raise CsrfRefused("this form's token does not belong to your session; reload the page")


# -- OAuth with the Hub -------------------------------------------------------------------------
def client_id(settings: Settings) -> str:
    """The service's OAuth client id, as the Hub registers it."""
    return f"service-{settings.hub.service_name}"


def redirect_uri(settings: Settings) -> str:
    """The callback the Hub registers for a proxied service: ``<prefix>/oauth_callback``.

    Kept relative, like ``HubOAuth`` does: the Hub accepts it and the browser stays on the origin
    it started from, so the state cookie is always sent back.
    """
    return settings.api_prefix.rstrip("/") + "/oauth_callback"


def authorize_url(settings: Settings) -> str:
    """The Hub's authorize endpoint, as a path on the proxy's origin (the one this service is served from).

    The path honours a Hub base URL in ``hub.public_url``; staying on the browser's origin (rather than
    the configured host name) keeps the state cookie valid whichever host name the user typed.
    """
    base = urlsplit(settings.hub.public_url).path.rstrip("/")
    return f"{base}/hub/api/oauth2/authorize"


def hub_logout_url(settings: Settings) -> str:
    """The Hub's logout page on the same origin."""
    return authorize_url(settings).removesuffix("/api/oauth2/authorize") + "/logout"


def safe_next(next_url: str | None, root: str) -> str:
    """``next_url`` if it is a path under this service, else the queue page (no open redirects)."""
    default = f"{root}/ui/"
    if not next_url:
        return default
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not next_url.startswith("/") or next_url.startswith("//"):
        return default
    if "\\" in next_url or not (next_url == root or next_url.startswith(f"{root}/")):
        return default
    return next_url


def begin_login(settings: Settings, next_url: str) -> tuple[str, str]:
    """The Hub authorize URL to redirect to, and the sealed state cookie to set."""
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    cookie = seal(
        settings,
        "oauth-state",
        {"state": state, "verifier": verifier, "next": next_url, "exp": int(time.time()) + STATE_SECONDS},
    )
    query = urlencode(
        {
            "client_id": client_id(settings),
            "redirect_uri": redirect_uri(settings),
            "response_type": "code",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{authorize_url(settings)}?{query}", cookie


def check_state(settings: Settings, state: str | None, cookie: str | None) -> dict[str, Any]:
    """The pending login for ``state``; :class:`Forbidden` if it does not match the state cookie."""
    pending = unseal(settings, "oauth-state", cookie)
    if pending is None or int(pending.get("exp", 0)) < time.time():
        raise Forbidden("the login attempt expired or was started in another browser; log in again")
    if not state or not hmac.compare_digest(str(pending.get("state", "")), state):
        raise Forbidden("OAuth state does not match this browser's login attempt; log in again")
    return pending


def exchange_code(settings: Settings, code: str, verifier: str) -> tuple[str, int]:
    """Trade the authorization code for a Hub access token; returns it and its lifetime (s).

    A refusal is a :class:`Forbidden` (an error page), never :class:`Unauthenticated`: that would
    send the browser to the login again and loop if the Hub keeps refusing (e.g. a wrong secret).
    """
    if not code or len(code) > 512:
        raise Forbidden("the Hub returned no authorization code")
    body = {
        "client_id": client_id(settings),
        "client_secret": settings.hub.api_token.get_secret_value(),
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(settings),
        "code_verifier": verifier,
    }
    url = settings.hub.api_url.rstrip("/") + "/oauth2/token"
    try:
        r = httpx.post(url, data=body, timeout=10)
    except httpx.HTTPError as exc:
        raise Unavailable(f"JupyterHub unreachable for the token exchange: {exc.__class__.__name__}") from exc
    if r.status_code in (400, 401, 403):
        raise Forbidden("the Hub refused the authorization code (expired, reused or a wrong client secret)")
    if r.status_code != 200:
        raise Unavailable(f"JupyterHub answered {r.status_code} to the token exchange")
    reply = r.json()
    token = reply.get("access_token")
    if not isinstance(token, str) or not token:
        raise Unavailable("JupyterHub's token reply carries no access token")
    lifetime = int(reply.get("expires_in") or SESSION_SECONDS)
    return token, max(60, min(lifetime, SESSION_SECONDS))
