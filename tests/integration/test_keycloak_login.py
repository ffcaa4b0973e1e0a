"""The production login path: the real Hub with the production authenticator configuration
(``LAB_HUB_VARIANT=production``) against a real OIDC provider with Keycloak's realm layout
(tests/oidc/provider.mjs, ``oidc-provider`` from npm).

Realm roles and groups become Hub role groups; project groups the lab manages through the Hub API
survive logins; a user without any lab role is refused.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from lab.launcher.hub import HubProcess
from lab.storage.seaweed import free_port_block
from tests.oidc.provider import OidcProvider, start_provider

pytestmark = [pytest.mark.integration, pytest.mark.hub]

CLIENT_SECRET = "hub-" + secrets.token_hex(8)


def realm_config(callback: str) -> dict[str, Any]:
    """Realm ``lab`` as infra/keycloak/realm.json defines it, reduced to what the login needs."""
    users = [
        {"username": "alice", "password": "alice-pw", "realm_roles": ["operator", "offline_access"]},
        {"username": "bureau1", "password": "bureau1-pw", "realm_roles": [], "groups": ["/bureau"]},
        {"username": "mallory", "password": "mallory-pw", "realm_roles": ["offline_access"], "groups": []},
    ]
    return {
        "realms": {
            "lab": {
                "audience": "lab-api",
                "clients": [
                    {
                        "client_id": "jupyterhub",
                        "client_secret": CLIENT_SECRET,
                        "grant_types": ["authorization_code", "refresh_token"],
                        "redirect_uris": [callback],
                    }
                ],
                "users": users,
            }
        }
    }


@pytest.fixture(scope="module")
def keycloak_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, OidcProvider]]:
    base = free_port_block(4, 48000, 55000)
    public = f"http://127.0.0.1:{base}"
    work = tmp_path_factory.mktemp("keycloak")
    # the lab API is not under test here; something must answer on its port or the Hub waits for it
    stand_in = ThreadingHTTPServer(("127.0.0.1", base + 3), _Ok)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    with start_provider(realm_config(f"{public}/hub/oauth_callback"), work / "oidc") as op:
        hub = HubProcess(
            work / "hub",
            base,
            base + 2,
            base + 3,
            secrets.token_hex(32),
            env={
                "LAB_HUB_VARIANT": "production",
                "LAB_HUB_SPAWNER": "local",
                "LAB_KEYCLOAK_REALM_URL": op.issuer("lab"),
                "LAB_KEYCLOAK_CLIENT_ID": "jupyterhub",
                "LAB_KEYCLOAK_CLIENT_SECRET": CLIENT_SECRET,
            },
            manage_api=False,
        ).start()
        wait_for_proxy(hub)
        try:
            yield hub, op
        finally:
            hub.stop()
            stand_in.shutdown()
            stand_in.server_close()


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def wait_for_proxy(hub: HubProcess, timeout: float = 30) -> None:
    """The Hub answers on its own port before the proxy routes /hub/ to it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{hub.public_url}/hub/api", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("the proxy does not route to the Hub")


def keycloak_login(hub: HubProcess, user: str, password: str) -> httpx.Response:
    """Browser-like login: Hub -> realm login form -> credentials -> Hub callback (redirects followed)."""
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        form = browser.get(f"{hub.public_url}/hub/oauth_login", params={"next": "/hub/home"})
        assert form.status_code == 200 and 'id="kc-login"' in form.text, form.text[:500]
        assert str(form.url).startswith("http://127.0.0.1") and "/realms/lab/interaction/" in str(form.url)
        return browser.post(str(form.url), data={"username": user, "password": password})


def admin(hub: HubProcess) -> httpx.Client:
    return httpx.Client(
        base_url=hub.api_url + "/", headers={"Authorization": f"token {hub.service_token}"}, timeout=15
    )


def test_operator_logs_in_and_gets_role_groups_while_project_groups_survive(
    keycloak_hub: tuple[HubProcess, OidcProvider],
) -> None:
    hub, _ = keycloak_hub
    with admin(hub) as api:
        # the lab put alice in a project group earlier, and a stale role group Keycloak no longer grants
        api.post("users/alice").raise_for_status()
        api.post("groups/project-p1").raise_for_status()
        assert api.post("groups/project-p1/users", json={"users": ["alice"]}).status_code == 200
        api.post("groups/steward/users", json={"users": ["alice"]}).raise_for_status()
    r = keycloak_login(hub, "alice", "alice-pw")
    assert r.status_code == 200 and str(r.url).endswith("/hub/home"), (r.status_code, r.url)
    with admin(hub) as api:
        groups = set(api.get("users/alice").json()["groups"])
        assert groups == {"operator", "project-p1"}  # offline_access is no lab role; steward revoked
        # the group API stays open to the lab (manage_groups is off)
        assert api.request("DELETE", "groups/project-p1/users", json={"users": ["alice"]}).status_code == 200


def test_keycloak_groups_map_to_lab_roles(keycloak_hub: tuple[HubProcess, OidcProvider]) -> None:
    hub, _ = keycloak_hub
    r = keycloak_login(hub, "bureau1", "bureau1-pw")
    assert r.status_code == 200, r.text[:300]
    with admin(hub) as api:
        assert api.get("users/bureau1").json()["groups"] == ["bureau"]


def test_user_without_a_lab_role_is_refused(keycloak_hub: tuple[HubProcess, OidcProvider]) -> None:
    hub, _ = keycloak_hub
    r = keycloak_login(hub, "mallory", "mallory-pw")
    assert r.status_code == 403
    assert "/hub/oauth_callback" in str(r.url)
    with admin(hub) as api:
        assert api.get("users/mallory").status_code == 404


def test_wrong_password_never_reaches_the_hub(keycloak_hub: tuple[HubProcess, OidcProvider]) -> None:
    hub, _ = keycloak_hub
    r = keycloak_login(hub, "alice", "not-her-password")
    assert r.status_code == 200 and "Invalid username or password" in r.text
    assert "/realms/lab/" in str(r.url)
