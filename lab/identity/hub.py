"""JupyterHub REST API: resolve callers' tokens, manage groups and tokens.

Tokens are resolved with ``GET /user`` using the caller's own token; results are cached
for a short time under the token's SHA-256 (never the token itself).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx

from lab.errors import Forbidden, Unauthenticated, Unavailable
from lab.identity.principal import Principal
from lab.settings import HubSettings


class HubClient:
    """Talks to the Hub API as the lab service (admin calls) or on behalf of a token (whoami)."""

    def __init__(self, cfg: HubSettings, timeout: float = 10.0) -> None:
        self.cfg = cfg
        self._http = httpx.Client(base_url=cfg.api_url.rstrip("/") + "/", timeout=timeout)
        self._cache: dict[str, tuple[float, Principal]] = {}

    def close(self) -> None:
        self._http.close()

    def _admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.cfg.api_token.get_secret_value()}"}

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise Unavailable(f"JupyterHub API unreachable: {exc.__class__.__name__}") from exc

    def resolve(self, token: str) -> Principal:
        """The principal a Hub token belongs to; :class:`Unauthenticated` if invalid."""
        if not token or len(token) > 512:
            raise Unauthenticated("a JupyterHub API token is required")
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self.cfg.token_cache_seconds:
            return hit[1]
        r = self._request("GET", "user", headers={"Authorization": f"token {token}"})
        if r.status_code in (401, 403):
            raise Unauthenticated("the JupyterHub token is invalid or expired")
        if r.status_code != 200:
            raise Unavailable(f"JupyterHub answered {r.status_code} when resolving a token")
        model = r.json()
        kind = "service" if model.get("kind") == "service" else "user"
        scopes = model.get("scopes")
        if kind == "user" and scopes is not None and not self._may_access(scopes):
            raise Forbidden(
                f"this token of {model['name']} may not access the lab API "
                f"(it lacks access:services!service={self.cfg.service_name})"
            )
        principal = Principal.from_groups(model["name"], model.get("groups") or [], kind=kind)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, principal)
        return principal

    def _may_access(self, scopes: list[str]) -> bool:
        """Whether a token's (expanded) scopes allow it to reach the lab API service."""
        wanted = {"access:services", f"access:services!service={self.cfg.service_name}"}
        return any(s in wanted for s in scopes)

    def forget(self) -> None:
        """Drop cached resolutions (after group changes)."""
        self._cache.clear()

    # -- admin operations (the lab service's own token) ---------------------------------
    def ensure_user(self, name: str) -> None:
        r = self._request("GET", f"users/{name}", headers=self._admin_headers())
        if r.status_code == 404:
            r = self._request("POST", f"users/{name}", headers=self._admin_headers())
        if r.status_code not in (200, 201):
            raise Unavailable(f"could not ensure Hub user {name}: {r.status_code} {r.text[:200]}")

    def ensure_group(self, group: str) -> None:
        r = self._request("GET", f"groups/{group}", headers=self._admin_headers())
        if r.status_code == 404:
            r = self._request("POST", f"groups/{group}", headers=self._admin_headers())
        if r.status_code not in (200, 201):
            raise Unavailable(f"could not ensure Hub group {group}: {r.status_code} {r.text[:200]}")

    def group_members(self, group: str) -> list[str]:
        r = self._request("GET", f"groups/{group}", headers=self._admin_headers())
        if r.status_code == 404:
            return []
        if r.status_code != 200:
            raise Unavailable(f"could not read Hub group {group}: {r.status_code}")
        return list(r.json().get("users", []))

    def set_group_members(self, group: str, users: list[str]) -> None:
        """Make ``users`` exactly the members of ``group``."""
        self.ensure_group(group)
        current = set(self.group_members(group))
        wanted = set(users)
        for u in wanted:
            self.ensure_user(u)
        if wanted - current:
            r = self._request(
                "POST",
                f"groups/{group}/users",
                headers=self._admin_headers(),
                json={"users": sorted(wanted - current)},
            )
            if r.status_code not in (200, 201):
                raise Unavailable(f"could not add members to {group}: {r.status_code}")
        if current - wanted:
            r = self._request(
                "DELETE",
                f"groups/{group}/users",
                headers=self._admin_headers(),
                json={"users": sorted(current - wanted)},
            )
            if r.status_code not in (200, 204):
                raise Unavailable(f"could not remove members from {group}: {r.status_code}")
        self.forget()

    def create_token(self, user: str, note: str = "lab token", expires_in: int | None = None) -> str:
        """A new API token for ``user`` (the lab service needs the ``tokens`` scope)."""
        body: dict[str, Any] = {"note": note}
        if expires_in:
            body["expires_in"] = expires_in
        r = self._request("POST", f"users/{user}/tokens", headers=self._admin_headers(), json=body)
        if r.status_code not in (200, 201):
            raise Unavailable(f"could not create a token for {user}: {r.status_code} {r.text[:200]}")
        return str(r.json()["token"])

    def get_user(self, name: str) -> dict[str, Any] | None:
        """The Hub's model of user ``name`` (groups, servers, ...); None if there is no such user."""
        r = self._request("GET", f"users/{name}", headers=self._admin_headers())
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise Unavailable(f"could not read Hub user {name}: {r.status_code}")
        model: dict[str, Any] = r.json()
        return model

    def stop_server(self, name: str) -> None:
        """Stop user ``name``'s default server (``DELETE /users/{name}/server``); no-op if none runs."""
        r = self._request("DELETE", f"users/{name}/server", headers=self._admin_headers())
        if r.status_code not in (202, 204, 400, 404):  # 400/404: no such user or nothing to stop
            raise Unavailable(f"could not stop the server of {name}: {r.status_code} {r.text[:200]}")
