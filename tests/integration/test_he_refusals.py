"""What the HE channel refuses — every refusal a 4xx problem that charges nothing — and how it survives.

Contexts with a secret key, unapproved or mismatched parameters, oversized or garbage; calls on
material outside the grant or the policy, over quota, with garbage, oversized or miscounted
ciphertexts, with someone else's context; a worker that dies mid-call (the service answers the
next request) or times out.
"""

from __future__ import annotations

import os
import signal
import struct
import threading
import time
from typing import Any

import numpy as np
import pytest
import tenseal as ts
from sqlalchemy import select

from he_compute import frames
from he_compute.models import HeContextRow
from he_compute.worker import WorkerPool, get_pool, set_pool
from lab.runtime import Runtime
from lab.settings import HeSettings
from tests.conftest import HubHandle
from tests.integration._he import (
    FEATURES,
    add_model,
    charged,
    client,
    features_frame,
    he_project,
    import_he_sample,
    linear_params,
)

pytestmark = [pytest.mark.integration, pytest.mark.hub]
FRAME = {"content-type": "application/vnd.lab.he-frame"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def make_ctx(n: int = 8192, bits: tuple[int, ...] = (60, 40, 40, 60), scale: float = 2.0**40) -> ts.Context:
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS, n, coeff_mod_bit_sizes=list(bits), encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC
    )
    ctx.global_scale = scale
    return ctx


def upload(api: Any, token: str, project: str, data: bytes, param_set: str = "ckks-8192") -> Any:
    return api.post(
        f"/api/v1/projects/{project}/he/contexts",
        params={"param_set": param_set},
        content=data,
        headers={**auth(token), "content-type": "application/octet-stream"},
    )


@pytest.fixture
def env(api: Any, runtime: Runtime, hub: HubHandle) -> dict[str, Any]:
    import_he_sample(runtime)
    add_model(runtime, "credit_score_v1", "linear", linear_params())
    add_model(runtime, "other_model", "linear", linear_params())  # published, not granted
    add_model(runtime, "rogue", "linear", linear_params())  # granted, but the policy does not open it
    pid = he_project(runtime, models=["credit_score_v1", "rogue", "default_risk"], record_quota=9000)
    add_model(runtime, "default_risk", "logistic", {**linear_params(2), "classes": [0, 1]}, project_id=pid)
    return {
        "project": pid,
        "alice": hub.token_for("alice", ["operator"]),
        "bob": hub.token_for("bob", ["operator"]),
    }


def test_context_refusals_store_nothing(api: Any, runtime: Runtime, env: dict[str, Any]) -> None:
    pid, alice = env["project"], env["alice"]
    good = make_ctx()
    cases = [
        (good.serialize(save_secret_key=True), "ckks-8192", 400, "he-context-rejected"),  # secret key
        (make_ctx(4096, (40, 20, 40)).serialize(save_secret_key=False), "ckks-8192", 400, "bad-request"),
        (make_ctx(scale=2.0**30).serialize(save_secret_key=False), "ckks-8192", 400, "bad-request"),
        (make_ctx(bits=(50, 40, 40, 40, 48)).serialize(), "ckks-8192", 400, "he-context-rejected"),
        (good.serialize(save_secret_key=False), "ckks-4096", 400, "bad-request"),  # unapproved name
        (b"\x00garbage" * 100, "ckks-8192", 400, "he-input-rejected"),
    ]
    galois = make_ctx()
    galois.generate_galois_keys()
    cases.append((galois.serialize(save_secret_key=False), "ckks-8192", 413, "payload-too-large"))
    for data, param_set, status, code in cases:
        r = upload(api, alice, pid, data, param_set)
        assert (r.status_code, r.json().get("code")) == (status, code), r.json()
        assert r.headers["content-type"] == "application/problem+json"
    assert upload(api, env["bob"], pid, good.serialize(save_secret_key=False)).status_code == 404
    with runtime.transaction() as s:
        assert s.execute(select(HeContextRow)).first() is None
    assert runtime.store.list_keys(runtime.settings.s3.bucket_work, f"projects/{pid}/he/") == []

    first = upload(api, alice, pid, good.serialize(save_secret_key=False))
    again = upload(api, alice, pid, good.serialize(save_secret_key=False))
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert first.json()["has_relin_keys"] and not first.json()["has_galois_keys"]


def _frame(spec: dict[str, Any], blobs: list[bytes], count: int | None = None) -> bytes:
    data = frames.encode(spec, blobs)
    if count is not None:  # lie about the number of blobs
        head = data[: data.index(b"}") + 1]
        data = head + struct.pack("<I", count) + data[len(head) + 4 :]
    return data


def test_call_refusals_charge_nothing(api: Any, runtime: Runtime, env: dict[str, Any]) -> None:
    pid, alice = env["project"], env["alice"]
    c = client(api, alice, pid)
    ctx = c.he.context("ckks-8192")
    cid = ctx.registered[pid]
    bob_ctx = client(api, env["bob"]).he.context("ckks-8192")
    good = [ctx.encrypt(np.full(100, 0.5)) for _ in FEATURES]
    spec = {"context": cid, "model": "credit_score_v1", "records": 100}  # the path names the project

    def call(body: bytes, token: str = alice) -> Any:
        return api.post(f"/api/v1/projects/{pid}/he/score", content=body, headers={**auth(token), **FRAME})

    before = charged(runtime, pid)
    refusals = [
        (_frame({**spec, "model": "other_model"}, good), 403, "not-in-grant"),
        (_frame({**spec, "model": "rogue"}, good), 403, "not-in-grant"),  # not opened by the policy
        (_frame({**spec, "model": "nope"}, good), 404, "not-found"),
        (_frame({**spec, "records": 9001}, good * 3), 429, "quota-exceeded"),
        (_frame({**spec, "records": 0}, good), 400, "bad-request"),
        (_frame({**spec, "extra": 1}, good), 400, "bad-request"),
        (_frame({**spec, "project": "p_elsewhere"}, good), 400, "project-mismatch"),  # the path decides
        (_frame(spec, good[:-1]), 400, "bad-request"),  # one ciphertext short
        (_frame(spec, good, count=len(good) + 5), 400, "bad-request"),  # announced more than sent
        (_frame(spec, [b"\x07garbage" * 50] * len(FEATURES)), 400, "he-input-rejected"),
        (_frame(spec, [os.urandom(400_000)] * len(FEATURES)), 413, "payload-too-large"),
        (_frame(spec, [ctx.encrypt(np.ones(99))] * len(FEATURES)), 400, "he-input-rejected"),  # 99 ≠ 100
        (_frame({**spec, "context": "hc_" + "0" * 32}, good), 404, "not-found"),
        (_frame({**spec, "model": "default_risk"}, good), 400, "bad-request"),  # logistic needs levels
        (b"not a frame at all", 400, "bad-request"),
    ]
    # vectors holding no ciphertext: TenSEAL segfaults when one meets a real one; the worker refuses it
    empty = b"\x0a\x01\x64\x19" + struct.pack("<d", 2.0**40)
    refusals.append((_frame(spec, [good[0], empty, *good[2:]]), 400, "he-input-rejected"))
    for body, status, code in refusals:
        r = call(body)
        assert (r.status_code, r.json().get("code")) == (status, code), (code, r.json())
    r = call(_frame({**spec, "context": bob_ctx.registered.get(pid, "hc_x")}, good))
    assert r.status_code in (403, 404)  # bob is not even a member; his contexts are his anyway
    plan = f"/api/v1/projects/{pid}/he/plan/score"
    r = api.post(plan, json={**spec, "records": 9001}, headers=auth(alice))
    assert r.status_code == 429 and r.json()["code"] == "quota-exceeded"
    r = api.post(plan, json={**spec, "project": "p_elsewhere"}, headers=auth(alice))
    assert r.status_code == 400 and r.json()["code"] == "project-mismatch"
    assert charged(runtime, pid) == before

    ok = call(_frame({**spec, "project": pid}, good))  # and the channel still works (naming its project)
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/vnd.lab.he-frame"
    header, blobs = frames.decode(ok.content, max_blobs=10, max_blob_bytes=1 << 20)
    assert header["records"] == 100 and len(blobs) == 1
    assert charged(runtime, pid)[0] == before[0] + 100


def test_a_worker_dying_mid_call_leaves_the_service_answering(
    api: Any, runtime: Runtime, env: dict[str, Any]
) -> None:
    pid = he_project(runtime, record_quota=100_000)
    c = client(api, env["alice"], pid)
    df = features_frame(20 * 4096)
    previous = set_pool(WorkerPool(HeSettings(processes=1)))
    try:
        pool = get_pool(runtime.settings.he)
        before = charged(runtime, pid)
        outcome: dict[str, Any] = {}

        def score() -> None:
            try:
                c.he.score(df, model="credit_score_v1", progress=False)
            except Exception as exc:
                outcome["error"] = exc

        t = threading.Thread(target=score)
        t.start()
        deadline = time.monotonic() + 120
        while pool._idle.qsize() and time.monotonic() < deadline:  # wait until the worker is busy
            time.sleep(0.005)
        victim = pool.pids()[0]
        os.kill(victim, signal.SIGSEGV)  # what a crash in native code looks like from outside
        t.join(120)
        err = outcome.get("error")
        assert err is not None and err.status == 400 and err.code == "he-worker-crashed", err
        assert charged(runtime, pid) == before and pool.crashes == 1 and victim not in pool.pids()

        small = features_frame(1000)
        s = c.he.score(small, model="credit_score_v1", progress=False)  # answered by the new worker
        assert len(s) == 1000 and charged(runtime, pid)[0] == before[0] + 1000
        set_pool(WorkerPool(HeSettings(processes=1, task_seconds=0.001))).close()  # type: ignore[union-attr]
        with pytest.raises(Exception) as timed_out:
            c.he.score(small, model="credit_score_v1", progress=False)
        assert timed_out.value.status == 503 and timed_out.value.code == "he-timeout"  # type: ignore[attr-defined]
        assert charged(runtime, pid)[0] == before[0] + 1000
    finally:
        get_pool(runtime.settings.he).close()
        set_pool(previous)
