"""Start the local OIDC provider (``provider.mjs``, Keycloak URL layout) from Python tests.

>>> # with start_provider(DEFAULT_CONFIG, tmp_path) as op:
>>> #     token = op.client_token("lab", "registry", "registry-secret")
>>> #     op.rotate("lab")                       # new signing key, old ones unpublished
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

SCRIPT = Path(__file__).with_name("provider.mjs")
ROOT = Path(__file__).resolve().parents[2]
KC = "/protocol/openid-connect"

#: Realm ``lab`` with a registrar machine client, a client without roles, a short-lived client,
#: a JupyterHub login client and two users; realm ``other`` shares the keys (to test issuer checks).
DEFAULT_CONFIG: dict[str, Any] = {
    "shared_keys": True,
    "realms": {
        "lab": {
            "audience": "lab-api",
            "clients": [
                {
                    "client_id": "registry",
                    "client_secret": "registry-secret",
                    "realm_roles": ["registrar", "offline_access"],
                    "client_roles": {"lab-api": ["registrar"]},
                },
                {
                    "client_id": "client-roles-only",
                    "client_secret": "cro-secret",
                    "client_roles": {"lab-api": ["registrar"]},
                },
                {
                    "client_id": "no-roles",
                    "client_secret": "no-roles-secret",
                    "realm_roles": ["uma_authorization"],
                },
                {
                    "client_id": "bureau-wannabe",
                    "client_secret": "bw-secret",
                    "realm_roles": ["bureau", "steward"],
                },
                {
                    "client_id": "short-lived",
                    "client_secret": "short-secret",
                    "realm_roles": ["registrar"],
                    "access_token_ttl": 1,
                },
                {
                    "client_id": "jupyterhub",
                    "client_secret": "jupyterhub-secret",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": ["http://127.0.0.1:8000/hub/oauth_callback"],
                },
            ],
            "users": [
                {
                    "username": "alice",
                    "password": "alice-pw",
                    "realm_roles": ["operator"],
                    "groups": ["operator"],
                },
                {
                    "username": "bureau1",
                    "password": "bureau1-pw",
                    "realm_roles": ["bureau"],
                    "groups": ["bureau"],
                },
            ],
        },
        "other": {
            "audience": "lab-api",
            "clients": [
                {"client_id": "registry", "client_secret": "registry-secret", "realm_roles": ["registrar"]}
            ],
        },
    },
}


class OidcProvider:
    """A running provider: issuers per realm, tokens, key rotation."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, issuers: dict[str, str], log: Path) -> None:
        self.proc, self.port, self.issuers, self.log = proc, port, issuers, log
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(timeout=10)

    def issuer(self, realm: str = "lab") -> str:
        return self.issuers[realm]

    def token_response(self, realm: str, client_id: str, secret: str, **params: str) -> httpx.Response:
        """Raw response of the token endpoint for a client-credentials request."""
        return self.http.post(
            f"{self.issuer(realm)}{KC}/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials", **params},
        )

    def client_token(self, realm: str, client_id: str, secret: str, **params: str) -> str:
        """An access token (JWT) for a machine client; ``resource="urn:<aud>"`` picks the audience."""
        r = self.token_response(realm, client_id, secret, **params)
        r.raise_for_status()
        return str(r.json()["access_token"])

    def kids(self, realm: str = "lab") -> list[str]:
        r = self.http.get(f"{self.base}/admin/realms/{realm}/keys")
        r.raise_for_status()
        return list(r.json()["kids"])

    def rotate(self, realm: str = "lab", keep_old: bool = False) -> str:
        """Publish a new signing key (first in the JWKS); drop the old ones unless ``keep_old``."""
        r = self.http.post(f"{self.base}/admin/realms/{realm}/rotate", params={"keep_old": int(keep_old)})
        r.raise_for_status()
        return str(r.json()["kid"])

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextmanager
def start_provider(config: dict[str, Any], workdir: Path, timeout: float = 30.0) -> Iterator[OidcProvider]:
    """Run ``provider.mjs`` with ``config`` on a free port until the block ends."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed; the OIDC test provider needs Node.js and `npm ci`")
    if not (ROOT / "node_modules" / "oidc-provider").exists():
        raise RuntimeError("oidc-provider is not installed: run `npm ci` in the repository root")
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path, log = workdir / "oidc-config.json", workdir / "oidc.log"
    cfg_path.write_text(json.dumps({"port": 0, **config}))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [node, str(SCRIPT), str(cfg_path)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    deadline = time.monotonic() + timeout
    ready = None
    while time.monotonic() < deadline and ready is None:
        if proc.poll() is not None:
            raise RuntimeError(f"OIDC provider exited: {log.read_text()[-2000:]}")
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("OIDC-READY "):
                ready = json.loads(line.removeprefix("OIDC-READY "))
        time.sleep(0.05)
    if ready is None:
        proc.kill()
        raise RuntimeError(f"OIDC provider did not start in {timeout}s: {log.read_text()[-2000:]}")
    provider = OidcProvider(proc, int(ready["port"]), dict(ready["issuers"]), log)
    try:
        yield provider
    finally:
        provider.stop()
