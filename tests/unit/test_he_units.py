"""HE channel units without I/O: parameter sets, plans, the sigmoid approximation, frames, evaluation.

Evaluation runs TenSEAL in-process here (the API runs it only in the isolated worker): public
contexts as the lab holds them, ciphertexts made with the operator's secret key.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi  # registers SEAL's Modulus type

from he_compute import frames, ops, params
from lab.errors import BadRequest, PayloadTooLarge


def test_approved_sets_are_secure_and_matched_exactly() -> None:
    for p in params.APPROVED.values():
        p.check_secure()
        assert params.match(p.poly_modulus_degree, list(p.coeff_mod_bit_sizes), 40.0) is p
        assert p.coeff_mod_bit_sizes[-1] >= max(p.coeff_mod_bit_sizes[1:-1])
    assert [p.levels for p in params.APPROVED.values()] == [2, 3, 7]
    with pytest.raises(BadRequest, match="128-bit"):
        params.match(8192, [60, 60, 60, 60], 40.0)  # 240 bits > 218
    with pytest.raises(BadRequest, match="not an approved set"):
        params.match(8192, [60, 40, 60], 40.0)
    with pytest.raises(BadRequest, match="scale"):
        params.match(8192, [60, 40, 40, 60], 30.0)
    with pytest.raises(BadRequest, match="not approved"):
        params.get("ckks-4096")
    with pytest.raises(BadRequest, match="special prime"):
        params.ParamSet("x", 8192, (60, 40, 40, 30), 1, "").check_secure()


def test_sigmoid_approximation_and_logit_range() -> None:
    errors = [ops.sigmoid_approximation(-8.0, 8.0, d).max_error for d in (3, 7, 15)]
    assert 0.2 > errors[0] > errors[1] > errors[2] and errors[2] < 2e-3  # wide ranges need degree
    a = ops.sigmoid_approximation(-3.0, 1.0, 3)
    u = np.linspace(-1, 1, 1001)
    z = -1.0 + 2.0 * u
    assert np.max(np.abs(np.polynomial.polynomial.polyval(u, a.coeffs) - 1 / (1 + np.exp(-z)))) <= a.max_error
    assert ops.logit_range([2.0, -1.0], 0.5, [(0, 1), (0, 10)]) == (-9.5, 2.5)
    assert [ops.poly_depth(d) for d in (1, 3, 5, 7, 15)] == [1, 2, 3, 3, 4]


def test_score_plans_refuse_what_cannot_be_evaluated() -> None:
    feats, bounds = ["a", "b"], {"a": [0, 1], "b": [0, 2]}
    plan = ops.score_plan("linear", {"coef": [[1.0, 2.0]], "intercept": [0.5]}, feats,
                          degree=None, output="probability", levels=2)  # fmt: skip
    assert (
        plan.task() == {"weights": [1.0, 2.0], "bias": 0.5, "poly": None} and plan.meta()["output"] == "score"
    )
    assert plan.width == 2 and not plan.multiplies
    logistic = {"coef": [1.0, 2.0], "intercept": 0.5, "bounds": bounds}
    plan = ops.score_plan("logistic", logistic, feats, degree=None, output="probability", levels=3)
    meta = plan.meta()
    assert meta["approximation"]["degree"] == 3 and meta["approximation"]["logit_range"] == [0.5, 5.5]
    assert meta["output"] == "probability" and meta["classes"] == [0, 1] and plan.multiplies
    assert plan.task()["bias"] == pytest.approx((0.5 - 3.0) / 2.5) and len(plan.task()["poly"]) == 4
    deep = ops.score_plan("logistic", logistic, feats, degree=None, output="probability", levels=7)
    assert deep.approximation is not None and deep.approximation.degree == 15
    bad = [
        ({"coef": [[1.0, 2.0], [3.0, 4.0]], "intercept": [0, 1]}, "linear", 2, "multiclass|2 numbers"),
        ({"coef": [0.0, 0.0], "intercept": 1.0}, "linear", 2, "all-zero"),
        ({"coef": [1.0], "intercept": 1.0}, "linear", 2, "2 numbers"),
        ({"coef": [1.0, float("nan")], "intercept": 1.0}, "linear", 2, "finite"),
        ({"coef": [1.0, 2.0], "intercept": 0.0}, "logistic", 3, "no bounds"),
        (logistic, "logistic", 2, "at least 3 levels"),
        (logistic, "gaussian_nb", 7, "cannot be scored"),
    ]
    for p, kind, levels, match in bad:
        with pytest.raises(ops.PlanError, match=match):
            ops.score_plan(kind, p, feats, degree=None, output="probability", levels=levels)
    with pytest.raises(ops.PlanError, match="allows 3"):
        ops.score_plan("logistic", logistic, feats, degree=7, output="probability", levels=3)


def test_lookup_plans_scale_values_into_the_last_level() -> None:
    plan = ops.lookup_plan([2, 3], [1.0, -300.0, 2.0, 3.0, 4.0, 5.0], levels=2)
    assert plan.scale == 512.0 and max(map(abs, plan.task()["values"])) <= 1.0
    assert plan.width == 5 and plan.multiplies and plan.meta() == {"scale": 512.0, "missing_cells": []}
    with pytest.raises(ops.PlanError, match="3 levels"):
        ops.lookup_plan([2, 2, 2], [1.0] * 8, levels=2)
    with pytest.raises(ops.PlanError, match="do not match"):
        ops.lookup_plan([2, 2], [1.0] * 3, levels=2)


def test_frames_are_bounded() -> None:
    data = frames.encode({"a": 1}, [b"x" * 10, b"y"])
    assert frames.decode(data, max_blobs=2, max_blob_bytes=10) == ({"a": 1}, [b"x" * 10, b"y"])
    for bad, err in [
        (data, (BadRequest, "at most 1")),
        (data[:-1], (BadRequest, "truncated")),
        (data + b"!", (BadRequest, "trailing")),
        (b"XXXX" + data[4:], (BadRequest, "magic")),
    ]:
        with pytest.raises(err[0], match=err[1]):
            frames.decode(bad, max_blobs=1 if "at most" in err[1] else 2, max_blob_bytes=10)
    with pytest.raises(PayloadTooLarge):
        frames.decode(data, max_blobs=2, max_blob_bytes=9)

    async def chunks(size: int) -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i : i + size]

    async def read(size: int, max_total: int) -> list[bytes]:
        r = frames.StreamReader(chunks(size), max_total=1 << 30, max_blob_bytes=10)
        _, n = await r.start()
        r.max_total = r.consumed + max_total
        out = [await r.blob() for _ in range(n)]
        await r.finish()
        return out

    def run(coro: Any) -> Any:  # in a thread: independent of any loop the test process holds
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    assert run(read(3, 100)) == [b"x" * 10, b"y"]
    with pytest.raises(PayloadTooLarge):
        run(read(3, 12))
    assert frames.BlobDigest.of([b"ab", b"c"]) != frames.BlobDigest.of([b"a", b"bc"])


# ---- evaluation ------------------------------------------------------------------------------


def _contexts(name: str) -> tuple[ts.Context, ts.Context, ops.Evaluator]:
    p = params.get(name)
    bits = list(p.coeff_mod_bit_sizes)
    sym = ts.ENCRYPTION_TYPE.SYMMETRIC
    secret = ts.context(
        ts.SCHEME_TYPE.CKKS, p.poly_modulus_degree, coeff_mod_bit_sizes=bits, encryption_type=sym
    )
    secret.global_scale = 2.0**40
    public = ts.context_from(secret.serialize(save_secret_key=False))
    primes = [m.value() for m in public.seal_context().data.first_context_data().parms().coeff_modulus()]
    return secret, public, ops.Evaluator(primes, 2.0**40)


def _enc(secret: ts.Context, public: ts.Context, values: np.ndarray) -> ts.CKKSVector:
    return ts.ckks_vector_from(public, ts.ckks_vector(secret, values).serialize())


def _dec(secret: ts.Context, v: ts.CKKSVector) -> np.ndarray:
    return np.array(ts.ckks_vector_from(secret, v.serialize()).decrypt())


def test_evaluation_is_exact_up_to_ckks_noise() -> None:
    secret, public, ev = _contexts("ckks-8192")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 50_000, (4096, 3))
    w = [0.001, -2.0, 0.0]  # a zero weight is left out, not multiplied
    z = ev.score(
        [_enc(secret, public, x[:, j]) for j in range(3)], {"weights": w, "bias": 7.0, "poly": None}, None
    )
    assert np.max(np.abs(_dec(secret, z) - (x @ w + 7.0))) < 1e-3  # values up to 1e5

    table = rng.uniform(0, 50_000, (18, 5))
    table[3, :] = 0.0  # an all-zero row (suppressed cells)
    a, b = rng.integers(0, 18, 4096), rng.integers(0, 5, 4096)
    oh = [[_enc(secret, public, (a == k).astype(float)) for k in range(18)],
          [_enc(secret, public, (b == k).astype(float)) for k in range(5)]]  # fmt: skip
    plan = ops.lookup_plan([18, 5], table.ravel().tolist(), levels=2)
    got = _dec(secret, ev.lookup(oh, plan.task(), None)) * plan.scale
    assert np.max(np.abs(got - table[a, b])) < 1e-6 * 50_000  # without the prime compensation: ~1e-1

    secret, public, ev = _contexts("ckks-8192-deep")
    approx = ops.sigmoid_approximation(-6.0, 6.0, 3)
    u = rng.uniform(-1, 1, 4096)
    y = ev.poly(_enc(secret, public, u) * 1.0, list(approx.coeffs), 1)
    assert np.max(np.abs(_dec(secret, y) - np.polynomial.polynomial.polyval(u, approx.coeffs))) < 1e-5


def _declare(blob: bytes, size: int) -> bytes:
    """Rewrite a serialized CKKSVector's declared size (protobuf field 1) — what a cheat would do."""
    assert blob[0] == 0x0A
    n = blob[1]
    varint = bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        varint.append(byte | (0x80 if size else 0))
        if not size:
            break
    return bytes([0x0A, len(varint)]) + bytes(varint) + blob[2 + n :]


def test_undeclared_slots_come_back_zero() -> None:
    """A ciphertext packed with 4096 records but declaring 10 is charged 10 — and yields only 10."""
    secret, public, ev = _contexts("ckks-8192")
    full = np.arange(4096, dtype=float)
    cheat = ts.ckks_vector_from(public, _declare(ts.ckks_vector(secret, full).serialize(), 10))
    assert cheat.size() == 10
    out = ev.score([cheat], {"weights": [2.0], "bias": 1.0, "poly": None}, [1.0] * 10)
    revealed = ts.ckks_vector_from(secret, _declare(out.serialize(), 4096)).decrypt()
    assert np.allclose(revealed[:10], 2 * full[:10] + 1, atol=1e-4)
    assert np.max(np.abs(revealed[10:])) < 1e-4  # nothing about records 10..4095
    assert struct.unpack("<I", struct.pack("<I", 10))[0] == 10
