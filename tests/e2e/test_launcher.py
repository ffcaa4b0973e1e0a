"""`lab up` as a user runs it: the whole embedded lab, sample data, demo accounts, `lab token`, `lab down`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lab.storage.seaweed import free_port_block

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
LAB = str(Path(sys.executable).parent / "lab")


@pytest.fixture(scope="module")
def lab_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # not under pytest's private directory: notebook accounts must reach their homes in the data directory
    data = Path(tempfile.mkdtemp(prefix="lab-up-"))
    public = free_port_block(4, 40000, 45000)  # public, proxy api
    s3 = free_port_block(4, 45000, 50000) + 3
    for p in (public + 81, public + 181):
        assert p  # the hub and API ports derive from the public port
    env = {**os.environ, "LAB_DATA_DIR": str(data)}
    env.pop("LAB_DATABASE_URL", None)
    log = (data / "lab-up.log").open("w")
    proc = subprocess.Popen(
        [LAB, "up", "--scale", "2000", "--public-port", str(public), "--s3-port", str(s3)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    text = ""
    while time.monotonic() < deadline:
        text = (data / "lab-up.log").read_text()
        if "The lab is up." in text:
            break
        if proc.poll() is not None:
            pytest.fail(f"lab up exited {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"lab up not ready:\n{text[-3000:]}")
    yield {"url": f"http://127.0.0.1:{public}/services/lab-api", "data": str(data), "log": text, "env": env}  # type: ignore[dict-item]
    subprocess.run([LAB, "down"], env=env, check=True, timeout=90)
    proc.wait(60)
    log.close()
    shutil.rmtree(data, ignore_errors=True)


def test_lab_up_prints_urls_and_demo_accounts(lab_up: dict[str, str]) -> None:
    for user in ("bureau1", "bureau2", "steward1", "alice", "bob", "auditor1"):
        assert user in lab_up["log"]
    assert "/hub/login" in lab_up["log"] and "lab token alice" in lab_up["log"]


def test_catalog_through_the_proxy_with_and_without_a_token(lab_up: dict[str, str]) -> None:
    r = httpx.get(f"{lab_up['url']}/api/v1/catalog", timeout=30)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    token = subprocess.run(
        [LAB, "token", "alice"],
        env=lab_up["env"],
        capture_output=True,
        text=True,  # type: ignore[arg-type]
        check=True,
        timeout=60,
    ).stdout.strip()
    r = httpx.get(f"{lab_up['url']}/api/v1/catalog", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200
    ids = {e["id"] for e in r.json()}
    assert ids == {
        "population",
        "enterprise_registry",
        "tax_credit",
        "social_insurance",
        "health_visits",
        "environment_monitoring",
    }
    me = httpx.get(
        f"{lab_up['url']}/api/v1/me", headers={"Authorization": f"token {token}"}, timeout=30
    ).json()
    assert me["name"] == "alice" and me["roles"] == ["operator"]


def test_ledger_verifies_after_the_sample_import(lab_up: dict[str, str]) -> None:
    env = lab_up["env"]
    out = subprocess.run([LAB, "ledger", "verify"], env=env, capture_output=True, text=True, timeout=60)  # type: ignore[arg-type]
    # 6 catalog imports + the demo project's application and its two approvals
    assert out.returncode == 0 and out.stdout.startswith("ok: 9 entries"), out.stdout + out.stderr


def test_the_demo_witnesses_cosign_and_the_log_verifies_against_them(lab_up: dict[str, str]) -> None:
    """`lab up` ran two witness processes; they cosign the log, published without login."""
    deadline = time.monotonic() + 60
    st: dict[str, object] = {}
    while time.monotonic() < deadline:
        st = httpx.get(f"{lab_up['url']}/api/v1/ledger/witnesses", timeout=30).json()
        if st["quorum_met"]:
            break
        time.sleep(1)
    assert st["quorum_met"] is True and st["quorum"] == 2, st
    ws = st["witnesses"]
    assert isinstance(ws, list) and len(ws) == 2 and {w["size"] for w in ws} == {st["size"]}, st
    cp = httpx.get(f"{lab_up['url']}/api/v1/ledger/checkpoint/witnessed", timeout=30)
    assert cp.status_code == 200 and cp.text.count("\u2014 ") == 3
    env = {**lab_up["env"], "LAB_PINS": str(Path(lab_up["data"]) / "pins.json")}
    urls = [x for w in ws for x in ("--witness", w["url"])]
    out = subprocess.run(
        [LAB, "ledger", "verify", *urls], env=env, capture_output=True, text=True, timeout=60
    )  # type: ignore[arg-type]
    assert out.returncode == 0 and "consistent with 2 witness(es)" in out.stdout, out.stdout + out.stderr
