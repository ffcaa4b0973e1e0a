"""Shared fixtures: real services, started once per session where possible.

* ``seaweed`` — a SeaweedFS server (S3 with credentials enforced) on free ports.
* ``db_url`` — parametrized over SQLite (a file per test) and PostgreSQL (a fresh database per
  test). PostgreSQL is ``LAB_TEST_PG`` or, by default, the documented server
  (``postgresql://postgres@127.0.0.1:5432/test``), probed once; when none answers the PostgreSQL half
  is skipped on a developer's machine and **fails** in CI (``CI`` set), never skipped there.
* ``settings`` / ``runtime`` — lab settings and a migrated runtime over those services.
* ``hub`` — a real JupyterHub with configurable-http-proxy (the lab API in-process, not managed),
  with ``hub.token_for(user, groups)`` to mint real tokens.
* ``api`` — a ``TestClient`` of the lab API whose callers are resolved by that Hub.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.db.migrate import upgrade
from lab.identity.principal import ROLES
from lab.launcher.hub import HubProcess
from lab.runtime import Runtime
from lab.settings import HubSettings, S3Settings, Settings
from lab.storage.seaweed import SeaweedServer, free_port_block, start_seaweed

ROOT = Path(__file__).resolve().parents[1]
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
PG_ADMIN_URL = os.environ.get("LAB_TEST_PG") or PG_DEFAULT


@functools.cache
def _pg_unreachable() -> str:
    """Why no PostgreSQL answers at ``PG_ADMIN_URL`` ("" when one does); probed once per session."""
    import sqlalchemy as sa

    url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return str(exc.orig or exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return ""


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = start_seaweed(
        tmp_path_factory.mktemp("seaweed"), "test-" + secrets.token_hex(3), secrets.token_urlsafe(16)
    )
    yield server
    server.stop()


def _pg_database() -> Iterator[str]:
    import sqlalchemy as sa

    admin_url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"lab_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(autouse=True)
def _key_pins(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test pins verifier keys (``lab.shared.pins``) in its own file, never in ~/.config."""
    monkeypatch.setenv("LAB_PINS", str(tmp_path_factory.mktemp("pins") / "pins.json"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lab.sqlite'}"
        return
    reason = _pg_unreachable()
    if reason:
        message = f"no PostgreSQL at {PG_ADMIN_URL} ({reason}); start one there or set LAB_TEST_PG"
        if os.environ.get("CI"):
            pytest.fail(message + " — CI never skips the PostgreSQL tests", pytrace=False)
        pytest.skip(message)
    yield from _pg_database()


def make_settings(
    db: str, data_dir: Path, seaweed: SeaweedServer | None = None, hub: HubSettings | None = None
) -> Settings:
    bucket = uuid.uuid4().hex[:8]
    s3 = S3Settings(  # type: ignore[call-arg]
        endpoint=seaweed.endpoint if seaweed else "127.0.0.1:1",
        access_key=seaweed.access_key if seaweed else "none",
        secret_key=seaweed.secret_key if seaweed else "none",
        bucket_raw=f"raw-{bucket}",
        bucket_products=f"products-{bucket}",
        bucket_work=f"work-{bucket}",
    )
    return Settings(  # type: ignore[call-arg]
        data_dir=data_dir,
        database_url=db,
        secret_key=secrets.token_urlsafe(32),
        s3=s3,
        hub=hub or HubSettings(),
        api_prefix="/services/lab-api",  # type: ignore[call-arg]
    )


@pytest.fixture
def settings(db_url: str, seaweed: SeaweedServer, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", seaweed)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime over a freshly migrated database and fresh buckets."""
    upgrade(settings.db_url)
    rt = Runtime(settings)
    rt.store.ensure_buckets()
    yield rt
    rt.close()


class HubHandle:
    """A running Hub plus helpers to create users, groups and tokens through its API."""

    def __init__(self, process: HubProcess) -> None:
        self.process = process
        self.http = httpx.Client(
            base_url=process.api_url + "/",
            headers={"Authorization": f"token {process.service_token}"},
            timeout=15,
        )

    @property
    def settings(self) -> HubSettings:
        return HubSettings(
            api_url=self.process.api_url,
            api_token=self.process.service_token,  # type: ignore[arg-type]
            public_url=self.process.public_url,
            token_cache_seconds=0,
        )

    def user(self, name: str, groups: list[str] = ()) -> None:  # type: ignore[assignment]
        """Create ``name`` if needed and make ``groups`` exactly its role groups.

        The Hub is shared by the whole session, so a role another test gave the same name is taken
        away (project groups are the lab's to manage and are left alone): no test depends on which
        tests ran before it.
        """
        r = self.http.get(f"users/{name}")
        if r.status_code == 404:
            self.http.post(f"users/{name}").raise_for_status()
            current: list[str] = []
        else:
            r.raise_for_status()
            current = list(r.json()["groups"])
        for g in groups:
            if g in current:
                continue
            if self.http.get(f"groups/{g}").status_code == 404:
                self.http.post(f"groups/{g}").raise_for_status()
            self.http.post(f"groups/{g}/users", json={"users": [name]}).raise_for_status()
        for g in current:
            if g in ROLES and g not in groups:
                self.http.request("DELETE", f"groups/{g}/users", json={"users": [name]}).raise_for_status()

    def token_for(self, name: str, groups: list[str] = ()) -> str:  # type: ignore[assignment]
        """A fresh API token of user ``name`` (created with ``groups`` if needed)."""
        self.user(name, groups)
        r = self.http.post(f"users/{name}/tokens", json={"note": "test"})
        r.raise_for_status()
        return str(r.json()["token"])

    def groups_of(self, name: str) -> list[str]:
        r = self.http.get(f"users/{name}")
        r.raise_for_status()
        return list(r.json()["groups"])


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubHandle]:
    base = free_port_block(4, 31000, 39000)
    # not under pytest's private directory, whose mode (and so ACL mask) every pytest session resets:
    # notebook accounts must reach their homes in the Hub's data directory
    work = Path(tempfile.mkdtemp(prefix="lab-hub-"))
    work.chmod(0o711)
    process = HubProcess(work, base, base + 2, base + 3, secrets.token_hex(32), manage_api=False).start()
    handle = HubHandle(process)
    yield handle
    handle.http.close()
    process.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def api(runtime: Runtime, hub: HubHandle) -> Iterator[Any]:
    """TestClient of the lab API; callers are resolved by the real Hub."""
    from fastapi.testclient import TestClient

    from lab.api.main import create_app

    runtime.settings.hub = hub.settings
    runtime._hub = None
    with TestClient(create_app(runtime=runtime)) as client:
        yield client


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the random order's seed last (``-q`` hides the header), so a failure reproduces."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and config.pluginmanager.has_plugin("randomly"):
        terminalreporter.write_line(f"tests ran in random order: reproduce it with --randomly-seed={seed}")
