"""Password records of the embedded lab's demo accounts: PBKDF2-SHA256 hashes.

The accounts file (JSON, written by the launcher, mode 0600) maps user names to
``{"salt": hex, "hash": hex, "groups": [...]}``; :class:`lab.launcher.auth.LabNativeAuthenticator`
checks logins against it. Production uses Keycloak instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os

ITERATIONS = 200_000


def hash_password(password: str, salt: bytes | None = None) -> dict[str, str]:
    """PBKDF2-SHA256 record for a password."""
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    return {"salt": salt.hex(), "hash": digest.hex()}


def check_password(record: dict[str, str], password: str) -> bool:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(record["salt"]), ITERATIONS)
    return hmac.compare_digest(digest.hex(), record["hash"])
