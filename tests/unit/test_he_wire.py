"""The client's uncompressed ciphertext serialization (``lab.client._wire``) against TenSEAL's own.

The lab's worker parses what the client sends with TenSEAL/SEAL, unchanged: these tests check that
the uncompressed bytes are the same ciphertext as TenSEAL's zstd-compressed ones, that the worker's
checks accept them, and that SEAL still refuses a corrupted coefficient.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tenseal as ts

from he_compute import _evaluate, params
from lab.client import _wire
from lab.client._he import make_context


def _seal_header(blob: bytes) -> tuple[int, ...]:
    """The SEAL header of the first ciphertext in a TenSEAL CKKSVector message."""
    pos = blob.index(b"\x12") + 1  # after the packed sizes: field 2, length-delimited
    while blob[pos] & 0x80:
        pos += 1
    return struct.unpack_from("<HBBBBHQ", blob, pos + 1)


@pytest.mark.parametrize("name", ["ckks-8192", "ckks-8192-deep"])
@pytest.mark.parametrize("n", [4096, 1000, 1])
def test_uncompressed_serialization_is_the_same_ciphertext(name: str, n: int) -> None:
    p = params.APPROVED[name]
    secret = make_context(name, p.poly_modulus_degree, list(p.coeff_mod_bit_sizes), p.scale_bits)
    x = np.random.default_rng(n).uniform(-1, 1, n)
    vector = ts.ckks_vector(secret.ctx, x)
    raw, reference = _wire.serialize(vector), vector.serialize()

    assert _wire.supported() and _wire._state["ok"] is True  # the pinned TenSEAL takes the fast path
    magic, _, _, _, compression, _, size = _seal_header(raw)
    assert (magic, compression) == (0xA15E, 0)  # SEAL's compr_mode_type::none
    assert _seal_header(reference)[4] == 2  # TenSEAL's own: zstd
    assert size == 16 + 73 + 16 + 8 + 8 * 2 * p.poly_modulus_degree * (len(p.coeff_mod_bit_sizes) - 1)
    assert size + 64 <= p.max_ciphertext_bytes  # the lab's per-ciphertext bound still holds

    back = ts.ckks_vector_from(secret.ctx, raw)
    assert back.serialize() == reference  # byte-identical once TenSEAL compresses it again
    assert np.max(np.abs(np.array(back.decrypt()) - x)) < 1e-6

    public = ts.context_from(secret.public)  # as the lab's worker parses it
    vecs = _evaluate._vectors(public, len(p.coeff_mod_bit_sizes) - 1, [raw], n)
    assert vecs[0].size() == n


def test_a_corrupted_coefficient_is_refused_by_the_parser() -> None:
    p = params.APPROVED["ckks-8192"]
    secret = make_context("ckks-8192", p.poly_modulus_degree, list(p.coeff_mod_bit_sizes), p.scale_bits)
    raw = bytearray(_wire.serialize(ts.ckks_vector(secret.ctx, [0.5] * 10)))
    raw[-17:-9] = b"\xff" * 8  # the last coefficient (before the scale field) ≥ its modulus
    public = ts.context_from(secret.public)
    with pytest.raises(Exception, match="invalid"):
        ts.ckks_vector_from(public, bytes(raw))


def test_unverified_tenseal_versions_fall_back_to_tenseal(monkeypatch: pytest.MonkeyPatch) -> None:
    p = params.APPROVED["ckks-8192"]
    secret = make_context("ckks-8192", p.poly_modulus_degree, list(p.coeff_mod_bit_sizes), p.scale_bits)
    vector = ts.ckks_vector(secret.ctx, [1.0, 2.0])
    monkeypatch.setattr(_wire, "VERIFIED_TENSEAL", "0.0.0")
    monkeypatch.setattr(_wire, "_state", {})
    out = _wire.serialize(vector)
    assert _wire._state["ok"] is False
    assert _seal_header(out)[4] == 2 and ts.ckks_vector_from(secret.ctx, out).serialize() == out


def test_the_client_reads_the_labs_answer_with_the_shared_bounded_decoder() -> None:
    from lab.client._he import _unframe
    from lab.shared import frames

    answer = frames.encode({"records": 2}, [b"ct1", b"ct2"])
    assert _unframe(answer, sent=2) == ({"records": 2}, [b"ct1", b"ct2"])
    for bad, why in [
        (answer, "at most 1"),  # more results than ciphertexts sent
        (answer[:-1], "truncated"),
        (answer + b"x", "trailing"),
        (b"HTTP" + answer[4:], "bad magic"),
    ]:
        with pytest.raises(ValueError, match=why):
            _unframe(bad, sent=1 if why == "at most 1" else 2)
