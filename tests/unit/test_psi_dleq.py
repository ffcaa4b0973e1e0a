"""The batched DLEQ proof of cohort mode (``psi_service.dleq``): RFC 9497's published P256-SHA256
vectors, a valid proof verifies, and any tampered element or scalar is refused."""

from __future__ import annotations

import secrets

import pytest

from psi_service import dleq

# RFC 9497, Appendix A.3.2 (VOPRF mode, P256-SHA256), test vector 3 (batch of two)
SK = int("ca5d94c8807817669a51b196c34c1b7f8442fde4334a7121ae4736364312fca6", 16)
PK = bytes.fromhex("03e17e70604bcabe198882c0a1f27a92441e774224ed9c702e51dd17038b102462")
BLINDED = [
    bytes.fromhex("02dd05901038bb31a6fae01828fd8d0e49e35a486b5c5d4b4994013648c01277da"),
    bytes.fromhex("03462e9ae64cae5b83ba98a6b360d942266389ac369b923eb3d557213b1922f8ab"),
]
EVALUATED = [
    bytes.fromhex("0209f33cab60cf8fe69239b0afbcfcd261af4c1c5632624f2e9ba29b90ae83e4a2"),
    bytes.fromhex("02bb24f4d838414aef052a8f044a6771230ca69c0a5677540fff738dd31bb69771"),
]
PROOF_R = int("350e8040f828bf6ceca27405420cdf3d63cb3aef005f40ba51943c8026877963", 16)
PROOF = bytes.fromhex(
    "bdcc351707d02a72ce49511c7db990566d29d6153ad6f8982fad2b435d6ce4d6"
    "0da1e6b3fa740811bde34dd4fe0aa1b5fe6600d0440c9ddee95ea7fad7a60cf2"
)


def test_expand_message_xmd_matches_rfc_9380() -> None:
    # RFC 9380 Appendix K.1, expand_message_xmd(SHA-256), msg "", len_in_bytes 0x20
    out = dleq.expand_message_xmd(b"", b"QUUX-V01-CS02-with-expander-SHA256-128", 32)
    assert out.hex() == "68a985b87eb6b46952128911f2a4412bbc302a9d759667f87f7a21d803f07235"


def test_batch_proof_matches_rfc_9497_vector() -> None:
    assert dleq.public_key(SK) == PK
    m = dleq.composite_m(PK, BLINDED, EVALUATED)
    assert m is not None
    c, s = dleq.prove_batch(SK, m, r=PROOF_R)
    assert c.to_bytes(32, "big") + s.to_bytes(32, "big") == PROOF
    dleq.verify(dleq.decode(PK + PROOF), BLINDED, EVALUATED)


def _answer(n: int) -> tuple[int, list[bytes], list[bytes]]:
    k = secrets.randbelow(dleq.ORDER - 1) + 1
    request = [dleq.public_key(secrets.randbelow(dleq.ORDER - 1) + 1) for _ in range(n)]
    response = [dleq.compress(dleq.decompress(x) * k) for x in request]
    return k, request, response


def test_a_valid_proof_verifies_and_round_trips() -> None:
    k, request, response = _answer(6)
    proof = dleq.prove(k, request, response)
    dleq.verify(dleq.decode(dleq.encode(proof)), request, response)


def test_any_tampered_element_or_scalar_is_refused() -> None:
    k, request, response = _answer(5)
    proof = dleq.prove(k, request, response)
    (c, s), other = proof.batches[0], dleq.public_key(k + 1)
    forged = [
        (proof, request, [response[0], *response[:1], *response[2:]]),  # substitution (a repeat)
        (proof, request, response[::-1]),  # reordering
        (proof, request[::-1], response),
        (proof, request, [*response[:3], dleq.compress(dleq.decompress(request[3]) * (k + 1)), response[4]]),
        (dleq.Proof(proof.public_key, ((c ^ 1, s),)), request, response),
        (dleq.Proof(proof.public_key, ((c, (s + 1) % dleq.ORDER),)), request, response),
        (dleq.Proof(proof.public_key, ((c, s + dleq.ORDER),)), request, response),
        (dleq.Proof(other, proof.batches), request, response),
        (proof, request[:4], response[:4]),
    ]
    for p, req, resp in forged:
        with pytest.raises(dleq.InvalidProof):
            dleq.verify(p, req, resp)


def test_an_answer_under_two_keys_has_no_valid_proof() -> None:
    k, request, response = _answer(4)
    mixed = response[:2] + [dleq.compress(dleq.decompress(x) * (k + 7)) for x in request[2:]]
    for key in (k, k + 7):
        with pytest.raises(dleq.InvalidProof):
            dleq.verify(dleq.prove(key, request, mixed), request, mixed)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02" + bytes(32), b"\x04" + bytes(64), b"\x02" + b"\xff" * 32, PK + PROOF[:63], PK],
)
def test_malformed_proofs_and_points_are_typed_errors(data: bytes) -> None:
    with pytest.raises(dleq.InvalidProof):
        dleq.decode(data)


def test_batches_split_past_the_rfc_index_limit() -> None:
    assert dleq.batches(dleq.BATCH) == [(0, dleq.BATCH)]
    assert dleq.batches(dleq.BATCH + 1) == [(0, dleq.BATCH), (dleq.BATCH, dleq.BATCH + 1)]


@pytest.mark.parametrize("n", [0, 1, 2, 15, 16, 17, 300])
def test_the_multi_scalar_sum_equals_the_plain_sum(n: int) -> None:
    points = [dleq.decompress(dleq.public_key(secrets.randbelow(dleq.ORDER - 1) + 1)) for _ in range(n)]
    scalars = [secrets.randbelow(dleq.ORDER) for _ in range(n)]
    scalars[:2] = [0, dleq.ORDER - 1][: len(scalars[:2])]
    plain = None
    for p, k in zip(points, scalars, strict=True):
        t = p * k
        plain = t if plain is None else plain + t
    got = dleq.msm(points, scalars)
    assert (got is None) == (plain is None)
    if got is not None and plain is not None:
        assert got == plain
