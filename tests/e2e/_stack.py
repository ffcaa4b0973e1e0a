"""The whole embedded lab as a session fixture: SeaweedFS, a database, JupyterHub with
configurable-http-proxy, the lab API as a *managed* Hub service, the idle culler, sample data and
demo accounts — the same processes ``lab up`` starts.

* ``lab_stack`` — a :class:`LabStack`; ``lab_stack.project(grants, members)`` makes an active project
  (database rows + the Hub group ``project-<id>``), ``lab_stack.token(user)`` mints a Hub token,
  ``lab_stack.passwords[user]`` are the demo accounts' passwords (PBKDF2 file, as ``lab up`` writes).

Used by tests/e2e/test_jupyter_e2e.py and tests/integration/test_notebooks.py.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.db.migrate import upgrade
from lab.identity.hub import HubClient
from lab.launcher.demo_auth import hash_password
from lab.launcher.hub import HubProcess
from lab.launcher.stack import DEMO_ACCOUNTS, ensure_demo_users
from lab.runtime import Runtime
from lab.settings import HubSettings, Settings
from lab.storage.seaweed import SeaweedServer, free_port_block
from tests.conftest import make_settings
from tests.factories import active_project, import_sample

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCALE = 5000
#: Accounts of the Jupyter e2e test only (other suites share the stack and change the demo users' projects).
E2E_ACCOUNTS: dict[str, list[str]] = {"olivia": ["operator"], "oscar": ["operator"]}
DATASETS = [
    "population",
    "enterprise_registry",
    "tax_credit",
    "social_insurance",
    "health_visits",
    "environment_monitoring",
]


def stack_env(settings: Settings, demo_accounts: Path) -> dict[str, str]:
    """The lab API's environment (the Hub passes it to its managed service, never to notebooks)."""
    s3 = settings.s3
    return {
        "LAB_DATABASE_URL": settings.db_url,
        "LAB_SECRET_KEY": settings.secret_key.get_secret_value(),
        "LAB_S3__ENDPOINT": s3.endpoint,
        "LAB_S3__ACCESS_KEY": s3.access_key,
        "LAB_S3__SECRET_KEY": s3.secret_key.get_secret_value(),
        "LAB_S3__BUCKET_RAW": s3.bucket_raw,
        "LAB_S3__BUCKET_PRODUCTS": s3.bucket_products,
        "LAB_S3__BUCKET_WORK": s3.bucket_work,
        "LAB_DEMO_ACCOUNTS": str(demo_accounts),
        "LAB_HUB__TOKEN_CACHE_SECONDS": "0",
        "LAB_HUB_IDLE_TIMEOUT": "3600",
    }


@dataclass
class LabStack:
    """A running embedded lab and helpers to set up users and projects in it."""

    hub: HubProcess
    runtime: Runtime
    passwords: dict[str, str]
    data_dir: Path
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def public_url(self) -> str:
        return self.hub.public_url

    @property
    def lab_api_url(self) -> str:
        return self.hub.lab_api_url

    def hub_client(self) -> HubClient:
        return HubClient(
            HubSettings(
                api_url=self.hub.api_url,
                api_token=self.hub.service_token,  # type: ignore[arg-type]
                public_url=self.hub.public_url,
                token_cache_seconds=0,
            )
        )

    def admin(self) -> httpx.Client:
        """An HTTP client on the Hub API with the lab service's token."""
        return httpx.Client(
            base_url=self.hub.api_url + "/",
            headers={"Authorization": f"token {self.hub.service_token}"},
            timeout=30,
        )

    def token(self, user: str) -> str:
        """A new Hub API token of ``user`` (created in the Hub with their account's roles if needed)."""
        client = self.hub_client()
        try:
            if client.get_user(user) is None:
                client.ensure_user(user)
                for group in E2E_ACCOUNTS.get(user, []):
                    client.set_group_members(group, [*client.group_members(group), user])
            return client.create_token(user, note="e2e test")
        finally:
            client.close()

    def project(self, grants: dict[str, dict[str, Any]], members: list[str]) -> str:
        """An active project with ``grants`` whose members are in its Hub group."""
        pid = active_project(self.runtime, grants, members)
        client = self.hub_client()
        try:
            client.set_group_members(f"project-{pid}", members)
        finally:
            client.close()
        return pid


def start_stack(seaweed: SeaweedServer, base: Path) -> LabStack:
    """Start the lab on free ports over ``seaweed``; sample data imported at :data:`SCALE`.

    The data directory is a fresh directory under the system's temporary directory (not pytest's
    private one) so that isolated notebook accounts can reach their homes in it.
    """
    top = Path(tempfile.mkdtemp(prefix="lab-stack-"))
    top.chmod(0o711)
    data_dir = top / "lab"
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = make_settings(f"sqlite:///{data_dir / 'lab.sqlite'}", data_dir, seaweed)
    upgrade(settings.db_url)
    runtime = Runtime(settings)
    runtime.store.ensure_buckets()
    import_sample(runtime, DATASETS, SCALE, base)
    roles = {**DEMO_ACCOUNTS, **E2E_ACCOUNTS}
    passwords = {u: secrets.token_urlsafe(9) for u in roles}
    accounts = data_dir / "demo-accounts.json"  # the launcher's format (lab.launcher.stack.write_accounts)
    accounts.write_text(
        json.dumps({u: {**hash_password(passwords[u]), "groups": g} for u, g in roles.items()})
    )
    accounts.chmod(0o600)
    port = free_port_block(4, 40000, 48000)
    hub = HubProcess(
        data_dir,
        port,
        port + 2,
        port + 3,
        secrets.token_hex(32),
        env=stack_env(settings, accounts),
        manage_api=True,
    ).start(timeout=120)
    ensure_demo_users(hub.api_url, hub.service_token)
    runtime.settings.hub = HubSettings(
        api_url=hub.api_url,
        api_token=hub.service_token,  # type: ignore[arg-type]
        public_url=hub.public_url,
        token_cache_seconds=0,
    )
    runtime._hub = None
    known = {
        "s3_secret_key": settings.s3.secret_key.get_secret_value(),
        "s3_access_key": settings.s3.access_key,
        "secret_key": settings.secret_key.get_secret_value(),
        "hub_service_token": hub.service_token,
        "database_url": settings.db_url,
    }
    return LabStack(hub, runtime, passwords, data_dir, known)


@pytest.fixture(scope="session")
def lab_stack(seaweed: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabStack]:
    """The embedded lab (managed lab API), shared by the e2e and notebook tests."""
    stack = start_stack(seaweed, tmp_path_factory.mktemp("labstack"))
    yield stack
    stack.hub.stop()
    stack.runtime.close()
    shutil.rmtree(stack.data_dir.parent, ignore_errors=True)
