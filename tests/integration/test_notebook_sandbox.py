"""Without root, notebook servers run inside bubblewrap: no view of the lab's files, their own home only.

The sandbox is the one :class:`lab.launcher.spawner.SandboxedLocalSpawner` puts around
``jupyterhub-singleuser``; here it runs a hostile script instead (as whatever user runs the tests).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.launcher.isolation import sandbox_argv

pytestmark = pytest.mark.integration

HOSTILE = """
import json, os
def read(p):
    try:
        with open(p) as f:
            return f.read()
    except OSError as e:
        return type(e).__name__
lab = os.environ["DATA"]
out = {
    "secrets": read(lab + "/secrets.json"),
    "bob": read(lab + "/homes/bob/notes.txt"),
    "own": read(lab + "/homes/alice/notes.txt"),
    "listing": sorted(os.listdir(lab)),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "cwd": os.getcwd(),
}
with open("written.txt", "w") as f:
    f.write("mine")
import lab.client
print(json.dumps(out))
"""


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is installed by `make install`")
def test_a_sandboxed_server_sees_only_its_own_home(tmp_path: Path) -> None:
    data = tmp_path / "var"
    for user in ("alice", "bob"):
        (data / "homes" / user).mkdir(parents=True)
        (data / "homes" / user / "notes.txt").write_text(f"{user}'s notes")
    (data / "secrets.json").write_text('{"s3_secret_key": "top secret"}')
    home = data / "homes" / "alice"
    r = subprocess.run(
        [*sandbox_argv(data, home), sys.executable, "-c", HOSTILE],
        env={"DATA": str(data), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["secrets"] == "FileNotFoundError" and seen["bob"] == "FileNotFoundError"
    assert seen["listing"] == ["homes"] and seen["own"] == "alice's notes"
    assert len(seen["pids"]) <= 3  # its own PID namespace: the lab's processes are not there
    assert seen["cwd"] == str(home) and (home / "written.txt").read_text() == "mine"
