"""Never a silent fallback: `lab up` with no way to isolate notebooks says so loudly, and so do the pages.

`lab up` runs as a subprocess with ``LAB_NOTEBOOK_ISOLATION=none`` (what it chooses without root and
without bubblewrap): the warning goes to stderr before anything starts and again into the summary, the
Hub's login page carries it, and so do the lab's own pages (the managed lab API learns the mode from the
Hub's environment). The data directory stays the launcher's alone (0700: there are no homes to reach).
"""

from __future__ import annotations

import html
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.launcher.isolation import NOT_ISOLATED
from lab.storage.seaweed import free_port_block
from lab.web.i18n import EN

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
LAB = str(Path(sys.executable).parent / "lab")


@pytest.fixture(scope="module")
def lab_up_none() -> Iterator[dict[str, Any]]:
    top = Path(tempfile.mkdtemp(prefix="lab-none-"))
    data = top / "lab"
    public = free_port_block(4, 40000, 45000)
    s3 = free_port_block(4, 45000, 50000) + 3
    env = {**os.environ, "LAB_DATA_DIR": str(data), "LAB_NOTEBOOK_ISOLATION": "none"}
    env.pop("LAB_DATABASE_URL", None)
    out, err = top / "stdout.log", top / "stderr.log"
    proc = subprocess.Popen(
        [LAB, "up", "--scale", "1000", "--public-port", str(public), "--s3-port", str(s3)],
        env=env,
        stdout=out.open("w"),
        stderr=err.open("w"),
    )
    deadline = time.monotonic() + 300
    while "The lab is up." not in out.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            pytest.fail(f"lab up did not start ({proc.returncode}):\n{out.read_text()}\n{err.read_text()}")
        time.sleep(0.5)
    time.sleep(1)  # the rest of the summary
    try:
        yield {"url": f"http://127.0.0.1:{public}", "data": data, "stdout": out, "stderr": err}
    finally:
        subprocess.run([LAB, "down"], env=env, timeout=90)
        proc.wait(60)
        shutil.rmtree(top, ignore_errors=True)


def _page(url: str, timeout: float = 90) -> str:
    """A page through the proxy, once the Hub has added the route (its check runs every 30 s)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url, timeout=30)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 200, r.text[:500]
    return html.unescape(r.text)


def test_lab_up_warns_on_stderr_first_and_in_its_summary(lab_up_none: dict[str, Any]) -> None:
    stderr, stdout = lab_up_none["stderr"].read_text(), lab_up_none["stdout"].read_text()
    assert f"WARNING: {NOT_ISOLATED}" in stderr
    summary = stdout[stdout.index("The lab is up.") :]
    assert f"WARNING: {NOT_ISOLATED}" in summary
    assert "notebooks       isolated" not in summary and "sandboxed" not in summary


def test_the_hub_and_the_labs_pages_show_the_warning(lab_up_none: dict[str, Any]) -> None:
    url = lab_up_none["url"]
    assert NOT_ISOLATED in _page(f"{url}/hub/login")
    console = _page(f"{url}/services/lab-api/ui/logged-out?lang=en")
    assert EN["app.not_isolated"] in console


def test_the_data_directory_is_still_the_launchers_alone(lab_up_none: dict[str, Any]) -> None:
    data: Path = lab_up_none["data"]
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("secrets.json", "lab.sqlite"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
