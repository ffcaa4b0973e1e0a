"""Every example notebook runs green against a running lab (nbclient, a real kernel).

The lab is the embedded stack of tests/e2e/_stack.py (SeaweedFS, SQLite, JupyterHub, the managed lab
API). The notebooks' project is the demo project ``lab up`` creates — applied for by ``alice`` and
approved by two bureau reviewers through the API — and the kernel gets exactly what a notebook server
gets: ``LAB_API_URL``, ``LAB_PROJECT`` and alice's Hub token. As root (CI), the notebook and its kernel
run as alice's isolated system account (``lab-alice``, see docs/deploy.md), in a private home. Executed
notebooks are saved under test-artifacts/notebooks/ for inspection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from lab.launcher.demo_project import ensure_demo_project
from lab.launcher.isolation import ensure_account, prepare_home, run_as
from tests.e2e._stack import ARTIFACTS, LabStack, lab_stack

__all__ = ["lab_stack"]

pytestmark = [pytest.mark.integration, pytest.mark.hub, pytest.mark.slow]

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def demo_project(lab_stack: LabStack) -> str:
    tokens = {u: lab_stack.token(u) for u in ("alice", "bureau1", "bureau2")}
    return ensure_demo_project(lab_stack.lab_api_url, tokens)


def test_notebook_sources_are_built() -> None:
    """notebooks/*.ipynb are generated from notebooks/src/*.py (no stale copy, no stored outputs)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, str(root / "notebooks" / "_build.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_against_the_lab(
    path: Path, lab_stack: LabStack, demo_project: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in [k for k in os.environ if k.startswith("LAB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LAB_API_URL", lab_stack.lab_api_url)
    monkeypatch.setenv("LAB_PROJECT", demo_project)
    monkeypatch.setenv("LAB_PROJECTS", demo_project)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", lab_stack.token("alice"))
    out = ARTIFACTS / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        nb = _execute_as_alice(path, out)
    else:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        try:
            client.execute()
        except CellExecutionError as exc:
            nbformat.write(nb, out / path.name)
            pytest.fail(f"{path.name} failed:\n{str(exc)[-3000:]}")
        nbformat.write(nb, out / path.name)
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []


def _execute_as_alice(path: Path, out: Path) -> nbformat.NotebookNode:
    """Execute ``path`` as alice's notebook account (its kernel too) in a private home; returns the result."""
    account = ensure_account("alice")
    top = Path(tempfile.mkdtemp(prefix="lab-notebooks-"))
    top.chmod(0o711)
    home = top / "alice"
    prepare_home(home, account)
    run_as(account, home, ["cp", str(path), str(home / path.name)])
    env = {k: v for k, v in os.environ.items() if k in {"LAB_API_URL", "LAB_PROJECT", "LAB_PROJECTS"}}
    env |= {
        "JUPYTERHUB_API_TOKEN": os.environ["JUPYTERHUB_API_TOKEN"],
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    r = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-execute"), "--inplace", "--timeout=600", path.name],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        umask=0o077,
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    nb = nbformat.read(home / path.name, as_version=4)
    nbformat.write(nb, out / path.name)
    shutil.rmtree(top, ignore_errors=True)
    if r.returncode != 0:
        pytest.fail(f"{path.name} failed as {account.pw_name}:\n{r.stderr[-3000:]}")
    return nb
