"""Task handlers inside the isolated worker: parse operator material, check it, evaluate.

Imported only by :func:`he_compute.worker._serve` (in the worker process). Every check here is
on bytes the operator sent; any failure raises and becomes a 400 problem in the parent.

Tasks (frame header ``op``):

* ``inspect`` — blobs ``[context]``: report the facts the parent decides on (secret key?
  parameters, scale, keys present); the parent never parses a context itself.
* ``score`` — ``{plan, size}``, blobs: one ciphertext per feature → ``[result]``.
* ``lookup`` — ``{plan, size}``, blobs: the one-hot ciphertexts of every dimension, in order → ``[result]``.
* ``ping`` — liveness.

``ctx`` (SHA-256) names the context; with ``ctx_inline`` its bytes are the first blob.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import tenseal as ts
import tenseal.sealapi  # registers SEAL types (Modulus) used to read parameters

from he_compute.ops import Evaluator


class TaskError(ValueError):
    """The task's input is unacceptable."""


def context_facts(ctx: ts.Context) -> dict[str, Any]:
    """What the parent needs to accept or refuse a context."""
    data = ctx.seal_context().data
    key_parms = data.key_context_data().parms()
    try:
        has_public_key = bool(ctx.has_public_key())
    except ValueError:  # symmetric contexts carry no public key
        has_public_key = False
    return {
        "is_private": bool(ctx.is_private()),
        "has_secret_key": bool(ctx.has_secret_key()),
        "has_public_key": has_public_key,
        "has_relin_keys": bool(ctx.has_relin_keys()),
        "has_galois_keys": bool(ctx.has_galois_keys()),
        "poly_modulus_degree": int(key_parms.poly_modulus_degree()),
        "coeff_mod_bit_sizes": [int(m.bit_count()) for m in key_parms.coeff_modulus()],
        "scale_bits": math.log2(ctx.global_scale) if ctx.global_scale > 0 else 0.0,
        "scheme": str(key_parms.scheme()),
    }


def _load_context(raw: bytes) -> tuple[ts.Context, list[int]]:
    ctx = ts.context_from(raw)
    if ctx.is_private() or ctx.has_secret_key():
        raise TaskError("the context holds a secret key")
    ctx.auto_rescale = ctx.auto_relin = ctx.auto_mod_switch = True
    primes = [int(m.value()) for m in ctx.seal_context().data.first_context_data().parms().coeff_modulus()]
    return ctx, primes


def _context(
    header: dict[str, Any], blobs: list[bytes], cache: OrderedDict[str, Any], cache_size: int
) -> tuple[tuple[ts.Context, list[int]], list[bytes]]:
    sha = header.get("ctx")
    if not isinstance(sha, str):
        raise TaskError("task names no context")
    if header.get("ctx_inline"):
        cache[sha] = _load_context(blobs[0])
        while len(cache) > cache_size:
            cache.popitem(last=False)
        blobs = blobs[1:]
    if sha not in cache:
        raise TaskError("context not loaded in this worker")
    cache.move_to_end(sha)
    return cache[sha], blobs


def _vectors(ctx: ts.Context, n_primes: int, blobs: list[bytes], size: int) -> list[ts.CKKSVector]:
    """Parse ciphertexts and require fresh, well-formed ones holding exactly ``size`` values."""
    out = []
    scale = float(ctx.global_scale)
    for i, raw in enumerate(blobs):
        v = ts.ckks_vector_from(ctx, raw)
        cts = v.ciphertext()
        if len(cts) != 1:
            raise TaskError(f"ciphertext {i} holds {len(cts)} ciphertexts; one expected")
        ct = cts[0]
        if v.size() != size:
            raise TaskError(f"ciphertext {i} holds {v.size()} values; {size} declared")
        if ct.size() != 2 or ct.is_transparent() or not ct.is_ntt_form():
            raise TaskError(f"ciphertext {i} is not a fresh, relinearized ciphertext")
        if ct.coeff_modulus_size() != n_primes:
            raise TaskError(f"ciphertext {i} is not at the top level of the modulus chain")
        if ct.scale != scale:
            raise TaskError(f"ciphertext {i} has scale {ct.scale!r}; the context's is {scale!r}")
        out.append(v)
    return out


def handle(
    header: dict[str, Any], blobs: list[bytes], cache: OrderedDict[str, Any], cache_size: int
) -> tuple[dict[str, Any], list[bytes]]:
    """Run one task; returns the reply header and blobs."""
    op = header.get("op")
    if op == "ping":
        return {"pong": True}, []
    if op == "inspect":
        if len(blobs) != 1:
            raise TaskError("inspect takes one context")
        return {"facts": context_facts(ts.context_from(blobs[0]))}, []
    if op not in ("score", "lookup"):
        raise TaskError(f"unknown task {op!r}")
    (ctx, primes), blobs = _context(header, blobs, cache, cache_size)
    plan, size = header["plan"], int(header["size"])
    slots = ctx.seal_context().data.first_context_data().parms().poly_modulus_degree() // 2
    if not 1 <= size <= slots:
        raise TaskError(f"a batch holds 1..{slots} records")
    if op == "score" and len(blobs) != len(plan["weights"]):
        raise TaskError(f"{len(blobs)} ciphertexts for a model of {len(plan['weights'])} features")
    if op == "lookup" and len(blobs) != sum(plan["shape"]):
        raise TaskError(f"{len(blobs)} ciphertexts for a table needing {sum(plan['shape'])} one-hot vectors")
    needs_relin = (op == "lookup" and len(plan["shape"]) > 1) or (op == "score" and bool(plan.get("poly")))
    if needs_relin and not ctx.has_relin_keys():
        raise TaskError("this operation needs relinearization keys; the context has none")
    vecs = _vectors(ctx, len(primes), blobs, size)
    mask = None if size == slots else [1.0] * size
    ev = Evaluator(primes, float(ctx.global_scale))
    if op == "score":
        result = ev.score(vecs, plan, mask)
    else:
        onehots, start = [], 0
        for k in plan["shape"]:
            onehots.append(vecs[start : start + k])
            start += k
        result = ev.lookup(onehots, plan, mask)
    return {}, [result.serialize()]
