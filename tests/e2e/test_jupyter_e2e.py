"""End to end through the real embedded lab: SeaweedFS, SQLite, JupyterHub with configurable-http-proxy,
the lab API as a managed Hub service, a real single-user JupyterLab server and Chromium.

(The test's own operators ``olivia`` and ``oscar``: other suites change the demo users' projects.)

* an operator in an active project logs in with the browser, the Hub spawns her server, JupyterLab
  opens the getting-started notebook (screenshot in test-artifacts/), and code run in that server's
  kernel reaches the lab API with the server's *own* token;
* the server's environment and home directory hold no storage or database credentials;
* an operator in no active project cannot spawn;
* a sign-up can log in only after a bureau reviewer approves it, and then holds the operator role.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from lab.launcher.isolation import system_account
from tests.e2e._stack import ARTIFACTS, LabStack

pytestmark = [pytest.mark.e2e, pytest.mark.hub, pytest.mark.slow]

GRANTS = {
    "health_visits": {"dp": {"epsilon": "2.0", "delta": "0", "epsilon_per_query": "1.0"}},
    "enterprise_registry": {
        "psi": {"modes": ["intersection", "cardinality"], "columns": ["uscc"], "quota": 20}
    },
}


def wait_ready(stack: LabStack, user: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until ``user``'s default server is ready; returns its Hub model."""
    deadline = time.monotonic() + timeout
    with stack.admin() as admin:
        while time.monotonic() < deadline:
            model = admin.get(f"users/{user}").json()
            server = (model.get("servers") or {}).get("")
            if server and server.get("ready"):
                return dict(server)
            time.sleep(0.5)
    raise AssertionError(f"the server of {user} did not become ready in {timeout}s")


def run_in_kernel(stack: LabStack, user: str, token: str, code: str, timeout: float = 90) -> str:
    """Run ``code`` in a new kernel of ``user``'s server; returns its stdout (fails on an error)."""
    base = f"{stack.public_url}/user/{user}/api"
    h = {"Authorization": f"token {token}"}
    kernel = httpx.post(f"{base}/kernels", headers=h, json={"name": "python3"}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    kid = kernel.json()["id"]
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "username": user,
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
        "channel": "shell",
    }
    out: list[str] = []
    ws_url = base.replace("http://", "ws://", 1) + f"/kernels/{kid}/channels"
    try:
        with ws_connect(ws_url, additional_headers=h, open_timeout=30, max_size=None) as ws:
            ws.send(json.dumps(request))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    raise AssertionError(f"{content['ename']}: {content['evalue']}\n" + "".join(out))
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(out)
    finally:
        httpx.delete(f"{base}/kernels/{kid}", headers=h, timeout=30)
    raise AssertionError("the kernel did not finish in time")


def login(page: Any, stack: LabStack, user: str, password: str) -> None:
    page.goto(f"{stack.public_url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")


@pytest.fixture(scope="module")
def operator_server(lab_stack: LabStack, browser: Any) -> Iterator[dict[str, Any]]:
    """Olivia (operator, member of an active project) logs in with Chromium; her server spawns."""
    pid = lab_stack.project(GRANTS, ["olivia"])
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)
    login(page, lab_stack, "olivia", lab_stack.passwords["olivia"])
    page.wait_for_url(re.compile(r".*/user/olivia/lab.*"), timeout=120_000)
    server = wait_ready(lab_stack, "olivia")
    yield {"project": pid, "page": page, "server": server, "token": lab_stack.token("olivia")}
    context.close()
    with lab_stack.admin() as admin:
        admin.delete("users/olivia/server")


def test_jupyterlab_opens_the_getting_started_notebook(operator_server: dict[str, Any]) -> None:
    page = operator_server["page"]
    assert "/lab/tree/notebooks/00-getting-started.ipynb" in page.url
    page.wait_for_selector(".jp-NotebookPanel", timeout=90_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector('.jp-MarkdownOutput h1:has-text("Getting started")', timeout=60_000)
    page.wait_for_timeout(1500)  # let the kernel indicator settle
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "jupyterlab-getting-started.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000


def test_the_getting_started_notebook_runs_in_the_browser_without_editing(
    lab_stack: LabStack, operator_server: dict[str, Any]
) -> None:
    """What a newcomer does: Run ▸ Run All Cells, then save; the saved notebook holds no error."""
    page = operator_server["page"]
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    # as a newcomer would: wait until the kernel says Idle, then Run All (again if nothing started)
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('Idle')", timeout=120_000)
    for _ in range(2):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click(timeout=30_000)
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click(timeout=30_000)
        started = time.monotonic() + 30
        while time.monotonic() < started:
            prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
            if any(re.search(r"\[(\*|\d+)\]", p) for p in prompts):
                break
            page.wait_for_timeout(1000)
        else:
            continue
        break
    deadline, settled, prompts = time.monotonic() + 240, 0, []
    while time.monotonic() < deadline and settled < 3:
        # (JupyterLab renders off-screen cells lazily: judge by the last prompt and the kernel state)
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        done = bool(prompts) and re.search(r"\[\d+\]", prompts[-1]) and not any("*" in p for p in prompts)
        idle = page.locator(".jp-StatusBar-TextItem:has-text('Idle')").count() > 0
        settled = settled + 1 if done and idle else 0
        page.wait_for_timeout(1000)
    assert settled >= 3, f"the notebook did not finish: {prompts}"
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    # the notebook renders cells lazily: scroll to the top, then down to the catalog plot
    page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer").evaluate("el => el.scrollTo(0, 0)")
    page.wait_for_timeout(1000)
    first_plot = page.locator(".jp-OutputArea-output img").first
    first_plot.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-getting-started-run.png"))
    r = httpx.get(
        f"{lab_stack.public_url}/user/olivia/api/contents/notebooks/00-getting-started.ipynb",
        headers={"Authorization": f"token {operator_server['token']}"},
        timeout=30,
    )
    cells = r.json()["content"]["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    assert all(c["execution_count"] for c in cells if c["cell_type"] == "code"), "a cell did not run"
    assert [o for o in outputs if o["output_type"] == "error"] == []
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # catalog and budget plots
    # both limits, the project's and the dataset account's, and which one binds (issue 14 item 5)
    tables = ["".join(o.get("data", {}).get("text/html", "")) for o in outputs]
    assert any("dataset_epsilon_allowance" in t and "epsilon_total" in t and "binding" in t for t in tables)


def test_code_in_the_server_reaches_the_lab_api_with_its_own_token(
    lab_stack: LabStack, operator_server: dict[str, Any]
) -> None:
    code = (
        "import json, os, lab.client\n"
        "c = lab.client.connect()\n"
        "me = c.whoami()\n"
        "cat = c.catalog.list()\n"
        "print(json.dumps({'me': me, 'datasets': sorted(cat['id']), 'url': os.environ['LAB_API_URL'],\n"
        "                  'project': os.environ.get('LAB_PROJECT'),\n"
        "                  'token_is_own': os.environ['JUPYTERHUB_API_TOKEN'] != '', 'uid': os.getuid()}))\n"
    )
    result = json.loads(
        run_in_kernel(lab_stack, "olivia", operator_server["token"], code).strip().splitlines()[-1]
    )
    assert result["me"]["name"] == "olivia"
    assert "operator" in result["me"]["roles"]
    assert result["url"] == lab_stack.lab_api_url
    assert result["project"] == operator_server["project"]
    assert "health_visits" in result["datasets"] and "enterprise_registry" in result["datasets"]
    if os.geteuid() == 0:  # CI: the server and its kernels run as olivia's own notebook account
        assert pwd.getpwuid(result["uid"]).pw_name == system_account("olivia")


def test_the_server_token_is_narrow(lab_stack: LabStack, operator_server: dict[str, Any]) -> None:
    """The server's own token resolves to its user with her groups, and can do nothing administrative."""
    code = (
        "import os, json, httpx\n"
        "h = {'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}\n"
        "r = httpx.get(os.environ['JUPYTERHUB_API_URL'] + '/user', headers=h)\n"
        "u = httpx.get(os.environ['JUPYTERHUB_API_URL'] + '/users', headers=h)\n"
        "print(json.dumps({'me': r.json(), 'list_users': u.status_code}))\n"
    )
    out = json.loads(
        run_in_kernel(lab_stack, "olivia", operator_server["token"], code).strip().splitlines()[-1]
    )
    assert out["me"]["name"] == "olivia"
    assert f"project-{operator_server['project']}" in out["me"]["groups"]
    assert "access:services!service=lab-api" in out["me"]["scopes"]
    assert not any(s.startswith(("admin", "tokens", "list:users")) for s in out["me"]["scopes"])
    assert out["list_users"] == 403


def test_notebook_server_holds_no_storage_or_database_credentials(
    lab_stack: LabStack, operator_server: dict[str, Any]
) -> None:
    code = (
        "import os, json, pathlib\n"
        "home = pathlib.Path.home()\n"
        "files = {}\n"
        "for p in home.rglob('*'):\n"
        "    if p.is_file() and p.stat().st_size < 5_000_000:\n"
        "        files[str(p.relative_to(home))] = p.read_bytes().decode('utf-8', 'replace')\n"
        "print(json.dumps({'env': dict(os.environ), 'home': str(home), 'files': files}))\n"
    )
    raw = run_in_kernel(lab_stack, "olivia", operator_server["token"], code).strip().splitlines()[-1]
    seen = json.loads(raw)
    env: dict[str, str] = seen["env"]
    leaked = [k for k in env if k.startswith(("LAB_S3", "LAB_DATABASE", "LAB_SECRET", "LAB_HUB", "AWS_"))]
    assert leaked == []
    assert not any(k.startswith("CONFIGPROXY") for k in env)
    assert set(k for k in env if k.startswith("LAB_")) <= {"LAB_API_URL", "LAB_PROJECT", "LAB_PROJECTS"}
    assert seen["home"].endswith("/homes/olivia")
    assert "notebooks/00-getting-started.ipynb" in seen["files"]
    secrets = {k: v for k, v in lab_stack.secrets.items() if k != "s3_access_key"}
    blob = json.dumps(env) + json.dumps(seen["files"])
    for name, value in secrets.items():
        assert value not in blob, f"the notebook server can see {name}"
    assert lab_stack.secrets["s3_access_key"] not in json.dumps(env)


def test_operator_without_an_active_project_cannot_spawn(lab_stack: LabStack, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        login(page, lab_stack, "oscar", lab_stack.passwords["oscar"])
        page.wait_for_selector("text=not a member of an active lab project", timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hub-spawn-refused.png"))
    finally:
        context.close()
    token = lab_stack.token("oscar")
    r = httpx.post(
        f"{lab_stack.hub.api_url}/users/oscar/server", headers={"Authorization": f"token {token}"}, timeout=60
    )
    assert r.status_code == 403, r.text
    assert "not a member of an active lab project" in r.json()["message"]
    with lab_stack.admin() as admin:
        assert admin.get("users/oscar").json()["servers"] == {}


def _form(http: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    page = http.get(path)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert xsrf, page.text[:500]
    return http.post(path, data={**data, "_xsrf": xsrf.group(1)})


def test_signup_needs_bureau_approval_then_gives_the_operator_role(lab_stack: LabStack) -> None:
    hub = lab_stack.public_url
    password = "Zx9-" + uuid.uuid4().hex[:12]
    with httpx.Client(base_url=hub, follow_redirects=True, timeout=30) as carol:
        r = _form(
            carol,
            "/hub/signup",
            {"username": "carol", "signup_password": password, "signup_password_confirmation": password},
        )
        assert r.status_code == 200 and "sent to the admin" in r.text
        refused = _form(carol, "/hub/login", {"username": "carol", "password": password})
        assert refused.status_code == 403 and "not been authorized" in refused.text
    with httpx.Client(base_url=hub, follow_redirects=True, timeout=30) as reviewer:
        _form(reviewer, "/hub/login", {"username": "bureau1", "password": lab_stack.passwords["bureau1"]})
        area = reviewer.get("/hub/authorize")
        assert area.status_code == 200 and "carol" in area.text
        assert reviewer.get("/hub/authorize/carol").status_code == 200
    with httpx.Client(base_url=hub, follow_redirects=False, timeout=30) as carol:
        r = _form(carol, "/hub/login", {"username": "carol", "password": password})
        assert r.status_code == 302
    with lab_stack.admin() as admin:
        assert "operator" in admin.get("users/carol").json()["groups"]
    with httpx.Client(base_url=hub, follow_redirects=False, timeout=30) as impostor:
        r = _form(
            impostor,
            "/hub/signup",
            {"username": "alice", "signup_password": password, "signup_password_confirmation": password},
        )
        assert "sent to the admin" not in r.text
