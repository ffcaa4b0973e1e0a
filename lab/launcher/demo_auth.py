"""Demo authenticator for the embedded lab: fixed accounts with PBKDF2-hashed passwords.

The accounts file (JSON, written by the launcher, mode 0600) maps user names to
``{"salt": hex, "hash": hex, "groups": [...]}``. Production uses Keycloak instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Unicode

ITERATIONS = 200_000


def hash_password(password: str, salt: bytes | None = None) -> dict[str, str]:
    """PBKDF2-SHA256 record for a password."""
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    return {"salt": salt.hex(), "hash": digest.hex()}


def check_password(record: dict[str, str], password: str) -> bool:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(record["salt"]), ITERATIONS)
    return hmac.compare_digest(digest.hex(), record["hash"])


class DemoAuthenticator(Authenticator):  # type: ignore[misc]
    """Checks user name and password against the launcher's accounts file."""

    accounts_file = Unicode("", config=True, help="JSON file of demo accounts written by `lab up`")

    def _accounts(self) -> dict[str, Any]:
        path = Path(self.accounts_file)
        if not path.exists():
            return {}
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        name = (data.get("username") or "").strip()
        record = self._accounts().get(name)
        if record is None or not check_password(record, data.get("password") or ""):
            return None
        return {"name": name, "groups": record.get("groups", [])}
