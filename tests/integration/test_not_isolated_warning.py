"""Never a silent fallback: a Hub whose notebooks are not isolated says so on its pages.

A real JupyterHub started by the launcher's :class:`~lab.launcher.hub.HubProcess` with isolation off
(``LAB_NOTEBOOK_ISOLATION=none``, what ``lab up`` chooses without root and without bubblewrap) renders
the warning on the login page a new user sees first; the session's Hub, whose notebooks are isolated
(accounts as root, the sandbox otherwise), does not. The lab's own pages (served by the lab API, which the
Hub starts with the launcher's ``LAB_NOTEBOOK_ISOLATION``) carry it too, in both languages.
"""

from __future__ import annotations

import html
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from lab.api.main import create_app
from lab.launcher.hub import HubProcess
from lab.launcher.isolation import NOT_ISOLATED
from lab.runtime import Runtime
from lab.storage.seaweed import free_port_block
from lab.web.i18n import EN, ZH
from tests.conftest import HubHandle

pytestmark = [pytest.mark.integration, pytest.mark.hub, pytest.mark.slow]


def _login_page(public_url: str, timeout: float = 90) -> str:
    """The login page, once the Hub has added its route to the proxy (its route check runs every 30 s)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{public_url}/hub/login", timeout=30)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.status_code == 200, r.text[:500]
    return html.unescape(r.text)


def test_a_hub_without_isolation_warns_on_its_login_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_NOTEBOOK_ISOLATION", "none")
    work = Path(tempfile.mkdtemp(prefix="lab-hub-none-"))
    base = free_port_block(4, 31000, 39000)
    process = HubProcess(work, base, base + 2, base + 3, secrets.token_hex(32), manage_api=False)
    assert process.isolation == "none"
    try:
        process.start()
        proxy = psutil.Process(int((work / "jupyterhub-proxy.pid").read_text()))
        page = _login_page(process.public_url)
    finally:
        process.stop()
        shutil.rmtree(work, ignore_errors=True)
    assert NOT_ISOLATED in page, page[:3000]
    assert not psutil.wait_procs([proxy], timeout=10)[1], "the Hub's proxy outlived it"


def test_an_isolated_hub_shows_no_warning(hub: HubHandle) -> None:
    assert hub.process.isolation in {"accounts", "sandbox"}
    page = _login_page(hub.process.public_url)
    assert "NOT ISOLATED" not in page and "sign in" in page.lower()


@pytest.mark.parametrize("mode", ["none", "accounts", "sandbox", None])
def test_the_labs_pages_warn_exactly_when_notebooks_are_not_isolated(
    runtime: Runtime, mode: str | None
) -> None:
    runtime.settings.notebook_isolation = mode  # type: ignore[assignment]
    with TestClient(create_app(runtime=runtime), base_url="http://testserver") as client:
        for lang, messages in (("en", EN), ("zh", ZH)):
            for path in ("/services/lab-api/problems/internal", "/services/lab-api/ui/logged-out"):
                r = client.get(path, params={"lang": lang})
                assert r.status_code == 200, r.text[:300]
                shown = messages["app.not_isolated"] in html.unescape(r.text)
                assert shown is (mode == "none"), (path, lang, mode)
