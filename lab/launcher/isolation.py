"""The embedded lab's perimeter on one machine: notebook accounts and private state.

When the Hub runs as root (``lab up`` on a server, CI), every notebook server runs as its own
unprivileged system account (:func:`system_account`: ``lab-<hub name>``, or ``labx-<hash>`` for names
that are not valid Unix names), in the group :data:`NOTEBOOK_GROUP`, created at the user's first spawn
(demo users and approved sign-ups alike). The lab's own processes keep the launcher's identity; its data
directory is 0711 (traverse only, for the homes below it) and everything in it 0700/0600 and owned by the
launcher (:func:`secure_state`, which also repairs a directory written by older versions). Homes
(``<data dir>/homes/<hub name>``) are 0700 and owned by their account.

Notebook accounts need to run the project's interpreter and read its sources; where a directory on
that path is closed to "others" (e.g. ``/root`` holding ``pyenv``), :func:`grant_traverse` gives the
notebook group search-only permission (``x``, never ``r``) on it with a POSIX ACL (``setfacl``).

Without root there is no second identity to give notebooks. If Debian's ``bubblewrap`` is installed
(``make install`` does), each server runs in a sandbox (:func:`sandbox_argv`: own PID/IPC namespaces, no
capabilities, the lab's data directory and the launcher's home replaced by empty tmpfs, only the user's
own home bound back): ``sandbox``. Without it, :func:`isolation_mode` says ``none`` and the launcher and
the Hub pages say so loudly (:data:`NOT_ISOLATED`).
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.errors import Unavailable

NOTEBOOK_GROUP = "lab-notebooks"
ACCOUNT_PREFIX = "lab-"
ACCOUNT_MARK = "lab notebook account"
ACCOUNTS_LOCK_FILE = "/run/lab-notebook-accounts.lock"
_ACCOUNTS_THREAD_LOCK = threading.Lock()
ROOT = Path(__file__).resolve().parents[2]
NOT_ISOLATED = (
    "NOTEBOOKS ARE NOT ISOLATED: the lab was started without root and without bubblewrap, so notebook "
    "servers run as the lab's own user and can read its data directory and keys. Use this only for a "
    "single-person trial; run `lab up` as root (it creates one unprivileged account per notebook user) "
    "or install bubblewrap for anyone else."
)
_UNIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,26}")


def isolation_mode() -> str:
    """``accounts`` (a system account per notebook user) as root, else ``sandbox`` (bwrap) or ``none``."""
    forced = os.environ.get("LAB_NOTEBOOK_ISOLATION", "")
    if forced in {"accounts", "sandbox", "none"}:
        return forced
    if os.geteuid() == 0:
        return "accounts"
    return "sandbox" if shutil.which("bwrap") else "none"


def sandbox_argv(data_dir: Path, home: Path) -> list[str]:
    """The ``bwrap`` prefix that runs a notebook server with no view of the lab's files.

    The whole filesystem read-only; ``/tmp``, the launcher's home and the data directory replaced by
    empty tmpfs; the interpreter, the virtualenv and the sources bound back read-only when they were under a
    hidden directory; the user's own home bound read-write; new PID, IPC and UTS namespaces (the lab's
    processes cannot be seen or traced), no capabilities, killed with the Hub.
    """
    bwrap = shutil.which("bwrap") or "bwrap"
    hidden = [Path("/tmp"), Path.home().resolve(), data_dir.resolve()]  # noqa: S108 - hidden, not used
    argv = [bwrap, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--ro-bind", "/", "/", "--dev", "/dev"]
    argv += ["--proc", "/proc"]
    for d in hidden[:2]:
        argv += ["--tmpfs", str(d)]
    for needed in notebook_paths(home.parent)[:4]:
        if any(h in [needed, *needed.parents] for h in hidden[:2]):
            argv += ["--ro-bind", str(needed), str(needed)]
    argv += ["--tmpfs", str(hidden[2]), "--bind", str(home), str(home), "--chdir", str(home), "--"]
    return argv


def system_account(hub_name: str) -> str:
    """The system account of a Hub user: ``lab-alice``; names Unix refuses become ``labx-<sha256[:16]>``.

    >>> system_account("alice"), system_account("Ünïcode.user@example.org")[:5]
    ('lab-alice', 'labx-')
    """
    if _UNIX_NAME.fullmatch(hub_name):
        return ACCOUNT_PREFIX + hub_name
    return "labx-" + hashlib.sha256(hub_name.encode()).hexdigest()[:16]


def _group() -> int:
    try:
        return grp.getgrnam(NOTEBOOK_GROUP).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", NOTEBOOK_GROUP], check=False, capture_output=True)
        return grp.getgrnam(NOTEBOOK_GROUP).gr_gid


def ensure_group() -> int:
    """The notebook group's gid (created as a system group if missing)."""
    with _accounts_locked():
        return _group()


@contextmanager
def _accounts_locked() -> Iterator[None]:
    """Serialize account creation (threads of one Hub, and every lab on this machine).

    Concurrent ``useradd`` runs can lose each other's updates to ``/etc/passwd``; a lost account's uid
    could later be given to another user, so creations never overlap.
    """
    with _ACCOUNTS_THREAD_LOCK, open(ACCOUNTS_LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_account(hub_name: str) -> pwd.struct_passwd:
    """The notebook account of ``hub_name``, created (system account, no login shell) if missing.

    Refuses an existing account of that name that the lab did not create.
    """
    name = system_account(hub_name)
    with _accounts_locked():
        gid = _group()
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            comment = f"{ACCOUNT_MARK} for {hub_name}" if name.startswith(ACCOUNT_PREFIX) else ACCOUNT_MARK
            r = subprocess.run(
                [
                    *("useradd", "--system", "--gid", str(gid), "--no-create-home"),
                    *("--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"),
                    *("--comment", comment, name),
                ],
                check=False,
                capture_output=True,
                text=True,
            )
            try:
                entry = pwd.getpwnam(name)
            except KeyError as exc:
                raise Unavailable(
                    f"could not create the notebook account {name}: {r.stderr.strip()}"
                ) from exc
    if entry.pw_gid != gid or not entry.pw_gecos.startswith(ACCOUNT_MARK) or entry.pw_uid == 0:
        raise Unavailable(f"the account {name} exists but is not a lab notebook account; refusing to use it")
    return entry


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    """Give ``top`` and everything below to uid:gid without following symbolic links."""
    os.lchown(top, uid, gid)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def prepare_home(home: Path, account: pwd.struct_passwd) -> None:
    """Create (or take back from an older layout) ``home``: owned by the account, mode 0700."""
    home.parent.mkdir(parents=True, exist_ok=True)
    home.parent.chmod(0o711)  # traverse only: nobody lists the homes
    if home.is_symlink():
        raise Unavailable(f"{home} is a symbolic link; refusing to use it as a home")
    home.mkdir(mode=0o700, exist_ok=True)
    if home.stat().st_uid != account.pw_uid:
        _chown_tree(home, account.pw_uid, account.pw_gid)
    home.chmod(0o700)


def run_as(account: pwd.struct_passwd, home: Path, argv: list[str]) -> None:
    """Run ``argv`` as the notebook account in its home (umask 077), e.g. to copy the example notebooks."""
    subprocess.run(
        argv,
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        umask=0o077,
        cwd=home,
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
        check=True,
        capture_output=True,
        timeout=60,
    )


def preexec_as(account: pwd.struct_passwd, home: Path) -> Callable[[], None]:
    """A ``preexec_fn`` that becomes the account (no supplementary groups), sets umask 077 and enters home."""
    uid, gid = account.pw_uid, account.pw_gid

    def preexec() -> None:
        os.setgid(gid)
        os.setgroups([gid])
        os.setuid(uid)
        os.umask(0o077)
        os.chdir(home)

    return preexec


def _private(path: Path, is_dir: bool, owner: tuple[int, int] | None) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return
    if owner and (st.st_uid, st.st_gid) != owner:
        os.lchown(path, *owner)
    mode = 0o700 if is_dir else (st.st_mode & 0o700) | 0o600
    if stat.S_IMODE(st.st_mode) != mode:
        path.chmod(mode)


def secure_state(data_dir: Path, *, isolated: bool) -> None:
    """Make the data directory the launcher's alone: entries 0700/0600, owned by the launcher when root.

    The directory itself is 0711 when notebooks are isolated (their homes are below it), else 0700;
    ``homes`` is 0711 and each home is left to :func:`prepare_home` (0700, its account's).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    owner = (os.geteuid(), os.getegid()) if os.geteuid() == 0 else None
    if owner:
        os.lchown(data_dir, *owner)
    data_dir.chmod(0o711 if isolated else 0o700)
    homes = data_dir / "homes"
    for dirpath, dirnames, filenames in os.walk(data_dir):
        here = Path(dirpath)
        if here == homes:
            for name in dirnames:  # each home: closed to others now, its owner fixed at spawn
                home = here / name
                if not home.is_symlink():
                    home.chmod(0o700)
            dirnames.clear()
            continue
        for name in dirnames:
            _private(here / name, True, owner)
        for name in filenames:
            _private(here / name, False, owner)
    if homes.exists():
        if owner:
            os.lchown(homes, *owner)
        homes.chmod(0o711 if isolated else 0o700)


def _closed_ancestors(paths: Iterable[Path]) -> list[Path]:
    """Directories on the way to ``paths`` that "others" may not traverse."""
    closed: list[Path] = []
    for path in paths:
        for d in [*reversed(path.parents), path]:
            if d.is_dir() and not d.stat().st_mode & stat.S_IXOTH and d not in closed:
                closed.append(d)
    return closed


def notebook_paths(homes: Path) -> list[Path]:
    """What notebook servers need to reach: the interpreter, the virtualenv, the sources, the homes."""
    interpreter = Path(os.path.realpath(sys.executable))
    return [interpreter.parent, Path(sys.prefix), Path(sys.base_prefix).resolve(), ROOT, homes]


def grant_traverse(paths: Iterable[Path], gid: int) -> list[Path]:
    """Let the notebook group traverse (``x`` only) the closed directories on the way to ``paths``.

    Returns the directories that needed an ACL entry. Raises :class:`Unavailable` if ``setfacl``
    (Debian package ``acl``, installed by ``make install``) is missing.
    """
    closed = _closed_ancestors(paths)
    if not closed:
        return []
    setfacl = shutil.which("setfacl")
    if setfacl is None:
        raise Unavailable(
            "notebook accounts cannot reach "
            + ", ".join(map(str, closed))
            + ": install the `acl` package (make install does) or open these directories for traversal"
        )
    for d in closed:
        subprocess.run([setfacl, "-m", f"g:{gid}:x", str(d)], check=True, capture_output=True)
    return closed


def check_reachable(gid: int, python: str) -> None:
    """Raise :class:`Unavailable` unless a notebook-group process can import ``lab.client``."""
    try:
        nobody = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return
    r = subprocess.run(
        [python, "-c", "import lab.client"],
        user=nobody,
        group=gid,
        extra_groups=[],
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if r.returncode != 0:
        raise Unavailable(f"a notebook account cannot run {python}: {r.stderr.strip()[-500:]}")
