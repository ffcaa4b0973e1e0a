"""The isolated worker pool on its own: real worker processes, real TenSEAL, hostile input.

The API-level crash and timeout tests are in ``test_he_refusals.py``; here: facts reported about
contexts, context caching, refusals that keep the worker, a busy pool, a crash between tasks and a
process that never answers.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time

import numpy as np
import pytest
import tenseal as ts

from he_compute import ops
from he_compute.worker import (
    HeInputRejected,
    WorkerBusy,
    WorkerCrashed,
    WorkerPool,
    WorkerTimeout,
)
from lab.settings import HeSettings

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def pool() -> WorkerPool:
    p = WorkerPool(HeSettings(processes=1, task_seconds=60, queue_seconds=0.2))
    yield p  # type: ignore[misc]
    p.close()


def _ctx() -> tuple[ts.Context, bytes, str]:
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60],
                     encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC)  # fmt: skip
    ctx.global_scale = 2.0**40
    public = ctx.serialize(save_secret_key=False)
    return ctx, public, hashlib.sha256(public).hexdigest()


def test_facts_cache_and_refusals_keep_the_worker(pool: WorkerPool) -> None:
    ctx, public, sha = _ctx()
    facts = pool.run({"op": "inspect"}, [public])[0]["facts"]
    assert facts["poly_modulus_degree"] == 8192 and facts["coeff_mod_bit_sizes"] == [60, 40, 40, 60]
    assert not facts["has_secret_key"] and not facts["is_private"] and facts["has_relin_keys"]
    assert pool.run({"op": "inspect"}, [ctx.serialize(save_secret_key=True)])[0]["facts"]["has_secret_key"]

    pid, crashes = pool.pids()[0], pool.crashes  # the pool is shared by the module's tests (any order)
    plan = ops.score_plan("linear", {"coef": [2.0], "intercept": 1.0}, ["x"], degree=None,
                          output="probability", levels=2).task()  # fmt: skip
    x = np.linspace(0, 1, 50)
    header, out = pool.run({"op": "score", "plan": plan, "size": 50}, [ts.ckks_vector(ctx, x).serialize()],
                           (sha, public))  # fmt: skip
    assert header["cached"] == [sha]  # parsed once, kept
    assert np.allclose(ts.ckks_vector_from(ctx, out[0]).decrypt(), 2 * x + 1, atol=1e-5)
    for bad in ([b"junk"], [b""], [ts.ckks_vector(ctx, x[:10]).serialize()]):
        with pytest.raises(HeInputRejected):
            pool.run({"op": "score", "plan": plan, "size": 50}, bad, (sha, public))
    with pytest.raises(HeInputRejected, match="unknown task"):
        pool.run({"op": "exec"}, [])
    assert pool.pids() == [pid] and pool.crashes == crashes  # refusals do not cost a worker


def test_busy_crashed_and_hung_workers_are_replaced(pool: WorkerPool) -> None:
    taken = pool._idle.get()  # the only worker is busy with someone else's task
    try:
        t0 = time.monotonic()
        with pytest.raises(WorkerBusy) as busy:
            pool.run({"op": "ping"}, [])
        assert busy.value.status == 503 and time.monotonic() - t0 < 5
    finally:
        pool._idle.put(taken)

    victim = pool.pids()[0]
    os.kill(victim, signal.SIGKILL)  # dies while idle: the next task finds out and gets a fresh worker
    time.sleep(0.2)
    with pytest.raises(WorkerCrashed) as crashed:
        pool.run({"op": "ping"}, [])
    assert crashed.value.status == 400 and victim not in pool.pids()
    assert pool.run({"op": "ping"}, [])[0]["pong"]

    hung = pool.pids()[0]
    os.kill(hung, signal.SIGSTOP)  # alive but never answering
    pool.limits.task_seconds = 1.0
    try:
        with pytest.raises(WorkerTimeout):
            pool.run({"op": "ping"}, [])
    finally:
        pool.limits.task_seconds = 60
    assert hung not in pool.pids() and pool.timeouts == 1
    assert pool.run({"op": "ping"}, [])[0]["pong"]


CRASHER = """
import struct, tenseal as ts
ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
ctx.global_scale = 2.0 ** 40
public = ts.context_from(ctx.serialize(save_secret_key=False))
real = ts.ckks_vector_from(public, ts.ckks_vector(ctx, [1.0, 2.0]).serialize())
hollow = ts.ckks_vector_from(public, b"\\x0a\\x01\\x02\\x19" + struct.pack("<d", 2.0 ** 40))
real + hollow
"""


def test_why_parsing_is_isolated() -> None:
    """A 12-byte 'ciphertext' (a vector holding no SEAL ciphertext) segfaults TenSEAL next to a real one.

    The worker refuses such vectors before evaluating (``test_he_refusals``), and whatever such
    input is not yet known crashes a worker, not the API (``test_a_worker_dying_mid_call...``).
    """
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", CRASHER], capture_output=True, timeout=120)
    assert run.returncode == -signal.SIGSEGV, run.stderr[-500:]
