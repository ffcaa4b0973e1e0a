"""The embedded perimeter's building blocks: account names, private state, the not-isolated warning.

(The whole perimeter, with real accounts and a real ``lab up``, is attacked in tests/e2e/test_perimeter.py.)
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from traitlets.config import PyFileConfigLoader

from lab.launcher import isolation
from lab.storage.seaweed_security import write_security

INFRA = Path(__file__).resolve().parents[2] / "infra"


@pytest.mark.parametrize(
    ("hub_name", "account"),
    [("alice", "lab-alice"), ("bob_2", "lab-bob_2"), ("x" * 27, "lab-" + "x" * 27)],
)
def test_plain_hub_names_map_to_lab_accounts(hub_name: str, account: str) -> None:
    assert isolation.system_account(hub_name) == account


@pytest.mark.parametrize("hub_name", ["Alice", "carol.smith", "a@b.org", "x" * 28, "-rf", "root;id", "李雷"])
def test_other_names_map_to_a_hash_that_is_a_valid_unix_name(hub_name: str) -> None:
    account = isolation.system_account(hub_name)
    assert account.startswith("labx-") and len(account) == 21
    assert all(c in "abcdef0123456789" for c in account[5:])
    assert isolation.system_account(hub_name + "!") != account


def test_secure_state_takes_back_a_world_readable_directory(tmp_path: Path) -> None:
    data = tmp_path / "var"
    (data / "hub").mkdir(parents=True)
    (data / "homes" / "alice" / "notebooks").mkdir(parents=True)
    files = [data / "secrets.json", data / "lab.sqlite", data / "hub" / "jupyterhub.sqlite"]
    for f in files:
        f.write_text("x")
        f.chmod(0o644)
    (data / "homes" / "alice" / "notes.txt").write_text("mine")
    (data / "secrets-link").symlink_to(data / "secrets.json")
    for d in (data, data / "hub", data / "homes", data / "homes" / "alice"):
        d.chmod(0o755)
    isolation.secure_state(data, isolated=True)
    mode = lambda p: stat.S_IMODE(p.lstat().st_mode)  # noqa: E731
    assert mode(data) == 0o711 and mode(data / "homes") == 0o711
    assert mode(data / "hub") == 0o700
    assert all(mode(f) == 0o600 for f in files)
    assert mode(data / "homes" / "alice") == 0o700  # its owner is fixed at spawn
    assert (data / "homes" / "alice" / "notes.txt").read_text() == "mine"
    isolation.secure_state(data, isolated=False)
    assert mode(data) == 0o700 and mode(data / "homes") == 0o700


def test_closed_ancestors_are_found(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    inner = closed / "open" / "bin"
    inner.mkdir(parents=True)
    closed.chmod(0o700)
    (closed / "open").chmod(0o755)
    assert closed in isolation._closed_ancestors([inner])
    assert closed / "open" not in isolation._closed_ancestors([inner])


def test_seaweed_security_has_every_key_and_mutual_tls(tmp_path: Path) -> None:
    path = write_security(tmp_path / "sw")
    text = path.read_text()
    for section in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read"):
        assert f'[{section}]\nkey = "' in text and f'[{section}]\nkey = ""' not in text
    for component in ("master", "volume", "filer", "s3", "client"):
        assert f"[grpc.{component}]" in text
    assert "[access]\nui = false" in text
    for p in [path, *(tmp_path / "sw" / "tls").iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "sw").stat().st_mode) == 0o700
    assert write_security(tmp_path / "sw").read_text() != text  # fresh keys at each start


def test_without_isolation_every_hub_page_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LAB_HUB_VARIANT", "embedded")
    monkeypatch.setenv("LAB_NOTEBOOK_ISOLATION", "none")
    cfg = PyFileConfigLoader("jupyterhub_config.py", path=str(INFRA / "jupyterhub")).load_config()
    assert cfg.JupyterHub.spawner_class.endswith("SimpleLocalProcessSpawner")
    assert "NOT ISOLATED" in cfg.JupyterHub.template_vars["announcement"]
    monkeypatch.setenv("LAB_NOTEBOOK_ISOLATION", "sandbox")
    cfg = PyFileConfigLoader("jupyterhub_config.py", path=str(INFRA / "jupyterhub")).load_config()
    assert cfg.JupyterHub.spawner_class == "lab.launcher.spawner.SandboxedLocalSpawner"
    assert cfg.SandboxedLocalSpawner.data_dir == str(tmp_path.resolve())
    assert "template_vars" not in cfg.JupyterHub
    monkeypatch.setenv("LAB_NOTEBOOK_ISOLATION", "accounts")
    cfg = PyFileConfigLoader("jupyterhub_config.py", path=str(INFRA / "jupyterhub")).load_config()
    assert cfg.JupyterHub.spawner_class == "lab.launcher.spawner.IsolatedLocalSpawner"
    assert cfg.IsolatedLocalSpawner.home_dir_template == str(tmp_path.resolve() / "homes" / "{username}")
    assert "template_vars" not in cfg.JupyterHub


def test_isolation_is_accounts_exactly_when_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_NOTEBOOK_ISOLATION", raising=False)
    fallback = "sandbox" if shutil.which("bwrap") else "none"
    assert isolation.isolation_mode() == ("accounts" if os.geteuid() == 0 else fallback)
