"""``lab up``: the whole lab on one machine, with generated demo secrets and sample data.

State lives under the data directory: ``secrets.json`` (0600), ``demo-accounts.json``
(password hashes), ``run.json`` (process ids for ``lab down``). The launcher runs with umask 077 and,
at every start, makes the data directory its own again (0700/0600; see :mod:`lab.launcher.isolation`),
which also repairs a directory left world-readable by older versions.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from lab.launcher import isolation
from lab.launcher.demo_auth import hash_password
from lab.launcher.hub import HubProcess
from lab.launcher.witnesses import LocalWitnesses, start_witnesses
from lab.settings import Settings
from lab.storage.seaweed import SeaweedServer

DEMO_ACCOUNTS: dict[str, list[str]] = {
    "bureau1": ["bureau"],
    "bureau2": ["bureau"],
    "steward1": ["steward"],
    "alice": ["operator"],
    "bob": ["operator"],
    "auditor1": ["auditor"],
}


def load_secrets(data_dir: Path) -> dict[str, Any]:
    """The demo's secrets, generated once and kept in ``data_dir/secrets.json``."""
    path = data_dir / "secrets.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    data_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "s3_access_key": "lab-" + secrets.token_hex(4),
        "s3_secret_key": secrets.token_urlsafe(24),
        "secret_key": secrets.token_urlsafe(32),
        "hub_service_token": secrets.token_hex(32),
        "passwords": {u: secrets.token_urlsafe(9) for u in DEMO_ACCOUNTS},
    }
    path.write_text(json.dumps(data, indent=2))
    path.chmod(0o600)
    return data


def write_accounts(data_dir: Path, passwords: dict[str, str]) -> Path:
    path = data_dir / "demo-accounts.json"
    accounts = {u: {**hash_password(passwords[u]), "groups": g} for u, g in DEMO_ACCOUNTS.items()}
    path.write_text(json.dumps(accounts))
    path.chmod(0o600)
    return path


def lab_env(settings: Settings, sec: dict[str, Any], s3_endpoint: str) -> dict[str, str]:
    """Environment that makes every lab process agree on storage, database and keys."""
    return {
        "LAB_DATA_DIR": str(settings.data_dir.resolve()),
        "LAB_DATABASE_URL": settings.db_url,
        "LAB_SECRET_KEY": sec["secret_key"],
        "LAB_S3__ENDPOINT": s3_endpoint,
        "LAB_S3__ACCESS_KEY": sec["s3_access_key"],
        "LAB_S3__SECRET_KEY": sec["s3_secret_key"],
        "LAB_DEMO_ACCOUNTS": str((settings.data_dir / "demo-accounts.json").resolve()),
    }


def embedded_settings(settings: Settings, sec: dict[str, Any], hub: HubProcess | None = None) -> Settings:
    """Settings of this process once the embedded stack's secrets are known."""
    update: dict[str, Any] = {
        "secret_key": SecretStr(sec["secret_key"]),
        "s3": settings.s3.model_copy(
            update={"access_key": sec["s3_access_key"], "secret_key": SecretStr(sec["s3_secret_key"])}
        ),
    }
    if hub is not None:
        update["hub"] = settings.hub.model_copy(
            update={
                "api_url": hub.api_url,
                "api_token": SecretStr(sec["hub_service_token"]),
                "public_url": hub.public_url,
            }
        )
    return settings.model_copy(update=update)


def ensure_demo_users(hub_api: str, token: str) -> None:
    """Create the demo users and put them in their role groups through the Hub API."""
    h = {"Authorization": f"token {token}"}
    with httpx.Client(base_url=hub_api + "/", headers=h, timeout=10) as http:
        for user, groups in DEMO_ACCOUNTS.items():
            if http.get(f"users/{user}").status_code == 404:
                http.post(f"users/{user}").raise_for_status()
            for g in groups:
                if http.get(f"groups/{g}").status_code == 404:
                    http.post(f"groups/{g}").raise_for_status()
                http.post(f"groups/{g}/users", json={"users": [user]}).raise_for_status()


@dataclass
class Ports:
    public: int = 8000
    hub: int = 8081
    api: int = 8181
    s3: int = 8333


class Stack:
    """The embedded lab's processes."""

    def __init__(self, settings: Settings, ports: Ports | None = None) -> None:
        self.settings = settings
        self.ports = ports or Ports()
        self.data_dir = settings.data_dir.resolve()
        os.umask(0o077)  # every file the lab writes from here on is its own
        self.isolation = isolation.isolation_mode()
        isolation.secure_state(self.data_dir, isolated=self.isolation == "accounts")
        self.secrets = load_secrets(self.data_dir)
        self.seaweed: SeaweedServer | None = None
        self.hub: HubProcess | None = None
        self.demo_project: str | None = None
        self.witnesses: LocalWitnesses | None = None

    @property
    def s3_endpoint(self) -> str:
        return f"127.0.0.1:{self.ports.s3}"

    def start_storage(self) -> None:
        sec = self.secrets
        self.seaweed = SeaweedServer(
            self.data_dir / "seaweedfs", self.ports.s3, sec["s3_access_key"], sec["s3_secret_key"]
        ).start()

    def start_hub(self) -> None:
        write_accounts(self.data_dir, self.secrets["passwords"])
        settings = embedded_settings(self.settings, self.secrets)
        self.witnesses = start_witnesses(settings, self.data_dir, self.ports.api + 2)
        self.hub = HubProcess(
            self.data_dir,
            self.ports.public,
            self.ports.hub,
            self.ports.api,
            self.secrets["hub_service_token"],
            env={**lab_env(self.settings, self.secrets, self.s3_endpoint), **self.witnesses.env},
        ).start()
        ensure_demo_users(self.hub.api_url, self.secrets["hub_service_token"])
        self.demo_project = self.ensure_demo_project()
        run = {
            "pids": [p.pid for p in (self.seaweed and self.seaweed.process, self.hub.process) if p]
            + self.witnesses.pids,
            "hub_api": self.hub.api_url,
            "public_url": self.hub.public_url,
        }
        (self.data_dir / "run.json").write_text(json.dumps(run))

    def ensure_demo_project(self) -> str:
        """The active project of ``alice`` that lets her spawn a server and run the notebooks."""
        from pydantic import SecretStr

        from lab.identity.hub import HubClient
        from lab.launcher.demo_project import ensure_demo_project

        assert self.hub is not None
        hub = HubClient(
            self.settings.hub.model_copy(
                update={
                    "api_url": self.hub.api_url,
                    "api_token": SecretStr(self.secrets["hub_service_token"]),
                }
            )
        )
        try:
            tokens = {
                u: hub.create_token(u, "lab up: demo project", 600) for u in ("alice", "bureau1", "bureau2")
            }
        finally:
            hub.close()
        return ensure_demo_project(self.hub.lab_api_url, tokens)

    def stop(self) -> None:
        if self.hub:
            self.hub.stop()
        if self.witnesses:
            self.witnesses.stop()
        if self.seaweed:
            self.seaweed.stop()
        (self.data_dir / "run.json").unlink(missing_ok=True)
