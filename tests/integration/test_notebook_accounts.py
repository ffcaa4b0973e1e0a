"""Notebook accounts (root only): created once, never borrowed, homes taken back without following links."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lab.errors import Unavailable
from lab.launcher.isolation import NOTEBOOK_GROUP, ensure_account, prepare_home, system_account

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="creating system accounts needs root (CI runs as root)"),
]


@pytest.fixture
def names() -> Iterator[list[str]]:
    made = [f"t{uuid.uuid4().hex[:8]}" for _ in range(4)]
    yield made
    for name in made:
        subprocess.run(["userdel", system_account(name)], capture_output=True, check=False)


def test_accounts_are_created_once_even_by_concurrent_spawns(names: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        accounts = list(pool.map(ensure_account, names * 2))
    assert {a.pw_name for a in accounts} == {system_account(n) for n in names}
    for a in accounts:
        assert a.pw_uid != 0 and a.pw_shell == "/usr/sbin/nologin"
        assert os.getgrouplist(a.pw_name, a.pw_gid) == [a.pw_gid]  # lab-notebooks only
    assert ensure_account(names[0]).pw_uid == accounts[0].pw_uid


def test_an_existing_account_the_lab_did_not_create_is_refused(names: list[str]) -> None:
    subprocess.run(["useradd", "--system", system_account(names[0])], check=True, capture_output=True)
    with pytest.raises(Unavailable, match="not a lab notebook account"):
        ensure_account(names[0])


def test_an_old_home_is_taken_back_without_following_its_links(names: list[str], tmp_path: Path) -> None:
    """A home written by root under the old layout, with a link planted to a file of the lab."""
    lab_file = tmp_path / "secrets.json"
    lab_file.write_text("{}")
    lab_file.chmod(0o600)
    home = tmp_path / "homes" / names[1]
    (home / "notebooks").mkdir(parents=True)
    (home / "notebooks" / "a.ipynb").write_text("{}")
    (home / "link").symlink_to(lab_file)
    account = ensure_account(names[1])
    prepare_home(home, account)
    assert home.stat().st_uid == account.pw_uid and stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "notebooks" / "a.ipynb").stat().st_uid == account.pw_uid
    assert lab_file.stat().st_uid == 0, "the link was followed"
    assert stat.S_IMODE((tmp_path / "homes").stat().st_mode) == 0o711
    assert account.pw_gid == grp.getgrnam(NOTEBOOK_GROUP).gr_gid
