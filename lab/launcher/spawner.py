"""The embedded lab's notebook spawner: each user's server as their own unprivileged system account.

:class:`IsolatedLocalSpawner` is JupyterHub's ``LocalProcessSpawner`` with the lab's account mapping
(:func:`lab.launcher.isolation.system_account`) and homes under the data directory; its pre-spawn step
(:func:`prepare_isolated_spawn`) creates the account and the home at the first spawn, and copies the
example notebooks *as the account* (never as root into a directory the user controls).
"""

from __future__ import annotations

import pwd
import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from traitlets import Unicode

from lab.launcher.isolation import (
    ensure_account,
    grant_traverse,
    notebook_paths,
    preexec_as,
    prepare_home,
    run_as,
    sandbox_argv,
    system_account,
)


class IsolatedLocalSpawner(LocalProcessSpawner):  # type: ignore[misc]
    """Notebook servers as ``lab-<user>`` accounts (umask 077, no supplementary groups, home 0700)."""

    home_dir_template = Unicode(
        "/tmp/{username}",  # noqa: S108 - always configured by hubconfig
        config=True,
        help="the user's home; {username} is the Hub user name",
    )

    @property
    def home_dir(self) -> str:
        return str(self.home_dir_template.format(username=self.user.name))

    @property
    def account(self) -> pwd.struct_passwd:
        return pwd.getpwnam(system_account(self.user.name))

    def make_preexec_fn(self, name: str) -> Any:
        return preexec_as(self.account, Path(self.home_dir))

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env["USER"] = self.account.pw_name
        env["HOME"] = self.home_dir
        env["SHELL"] = "/bin/sh"
        return env

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        return paths  # internal SSL is off in the embedded lab


def prepare_isolated_spawn(spawner: Any) -> None:
    """Create the account and its home; copy the example notebooks into it as the account itself.

    The way to the interpreter and the homes is checked again at each spawn: a ``chmod`` of a directory
    on that path since the Hub started resets its ACL mask (and so the notebook group's search right).
    """
    account = ensure_account(spawner.user.name)
    home = Path(spawner.home_dir)
    grant_traverse(notebook_paths(home.parent), account.pw_gid)
    prepare_home(home, account)
    run_as(account, home, [sys.executable, "-m", "lab.launcher.homes", str(home)])


class SandboxedLocalSpawner(SimpleLocalProcessSpawner):  # type: ignore[misc]
    """Without root: each server inside bubblewrap with no view of the lab's files (same uid)."""

    data_dir = Unicode("", config=True, help="the lab's data directory, hidden from notebook servers")
    singleuser = Unicode("jupyterhub-singleuser", config=True, help="the single-user server command")

    async def start(self) -> Any:
        home = Path(self.home_dir)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.cmd = [*sandbox_argv(Path(self.data_dir), home), self.singleuser]
        return await super().start()
