"""Batched DLEQ proofs on P-256: the operator shows that its cohort answer is the lab's request
raised to ONE secret exponent.

The construction is RFC 9497 ("Oblivious Pseudorandom Functions (OPRFs) Using Prime-Order Groups",
Davidson, Faz-Hernandez, Sullivan, Wood, 2023) section 2.2, followed exactly for the ciphersuite
``P256-SHA256`` in VOPRF mode: ``ComputeComposites`` / ``ComputeCompositesFast`` (section 2.2.1),
``GenerateProof`` and ``VerifyProof`` (sections 2.2.1, 2.2.2), a non-interactive (Fiat–Shamir)
Chaum–Pedersen proof over the composite pair ``(M, Z)``. The batching technique is that of the
Privacy Pass paper (Davidson, Goldberg, Sullivan, Tankersley, Valsorda, PETS 2018, section 3.3).
``HashToScalar`` is RFC 9380 ``hash_to_field`` (``expand_message_xmd`` with SHA-256, L = 48) with
``DST = "HashToScalar-" || contextString`` and ``contextString = "OPRFV1-\\x01-P256-SHA256"``.
``tests/unit/test_psi_dleq.py`` checks the code against the RFC's published P256-SHA256 batch vector.

Statement proven, for public key ``Y = k·G`` and lists ``C[i]``, ``D[i]``:
``log_G(Y) = log_{C[i]}(D[i])`` for every ``i`` (soundness error about ``m / q``, ``q`` the order).
RFC 9497 numbers batch elements with two bytes, so lists longer than :data:`BATCH` are proven in
consecutive batches of at most that many elements, each with its own ``(c, s)`` under the same key.

Elements are compressed SEC1 points (33 bytes, openmined-psi's wire format); point arithmetic is
pycryptodome's (``Crypto.PublicKey.ECC``; decompression by OpenSSL through ``cryptography``), none
of it is written here. Only scalar arithmetic modulo
the group order (``s = r − c·k``) and the hashing of the transcripts are.

Wire format of a proof (:func:`encode` / :func:`decode`): ``Y`` (33 bytes) then, per batch,
``c ‖ s`` (32 + 32 bytes, big-endian scalars).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.PublicKey import ECC
from Crypto.PublicKey._point import EccPoint as Point
from cryptography.hazmat.primitives.asymmetric import ec

ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CONTEXT = b"OPRFV1-" + bytes([1]) + b"-P256-SHA256"
ELEMENT = 33
SCALAR = 32
BATCH = 1 << 16
"""Most elements in one RFC 9497 batch (indices are encoded as ``I2OSP(i, 2)``)."""

GENERATOR: Point = ECC.construct(curve="P-256", d=1).pointQ


class InvalidProof(ValueError):
    """A proof that does not verify, or elements that are not valid non-identity P-256 points."""


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-256."""
    if len(dst) > 255 or length > 255 * 32:
        raise ValueError("expand_message_xmd: DST or output too long")
    dst_prime = dst + _i2osp(len(dst), 1)
    b0 = hashlib.sha256(bytes(64) + msg + _i2osp(length, 2) + b"\x00" + dst_prime).digest()
    out = [hashlib.sha256(b0 + b"\x01" + dst_prime).digest()]
    while 32 * len(out) < length:
        prev = bytes(x ^ y for x, y in zip(b0, out[-1], strict=True))
        out.append(hashlib.sha256(prev + _i2osp(len(out) + 1, 1) + dst_prime).digest())
    return b"".join(out)[:length]


def hash_to_scalar(msg: bytes, dst: bytes = b"HashToScalar-" + CONTEXT) -> int:
    """RFC 9497 ``HashToScalar`` for P256-SHA256 (``hash_to_field`` with L = 48, count 1)."""
    return int.from_bytes(expand_message_xmd(msg, dst, 48), "big") % ORDER


def decompress(data: bytes) -> Point:
    """A compressed SEC1 P-256 point (identity and off-curve encodings are refused)."""
    if len(data) != ELEMENT or data[0] not in (2, 3):
        raise InvalidProof("an element is not a compressed P-256 point")
    try:  # OpenSSL decompresses (9x faster than ECC.import_key); EccPoint re-checks the curve equation
        xy = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data).public_numbers()
        return Point(xy.x, xy.y, "p256")
    except ValueError:
        raise InvalidProof("an element is not a point of P-256") from None


def compress(p: Point) -> bytes:
    """``SerializeElement``: the compressed SEC1 encoding (the identity has none)."""
    if p.is_point_at_infinity():
        raise InvalidProof("the identity element cannot be serialized")
    return bytes([2 | (int(p.y) & 1)]) + int(p.x).to_bytes(32, "big")


def _framed(*parts: bytes) -> bytes:
    return b"".join(_i2osp(len(p), 2) + p for p in parts)


def _seed(bm: bytes) -> bytes:
    seed_dst = b"Seed-" + CONTEXT
    return hashlib.sha256(_framed(bm, seed_dst)).digest()


def _coefficient(seed: bytes, i: int, ci: bytes, di: bytes) -> int:
    return hash_to_scalar(_framed(seed) + _i2osp(i, 2) + _framed(ci, di) + b"Composite")


def msm(points: Sequence[Point], scalars: Sequence[int]) -> Point | None:
    """``Σ scalars[i]·points[i]`` by Pippenger's bucket method, with the library's point additions
    only (about 2× faster than one scalar multiplication per term at a few thousand terms);
    ``None`` for an empty sum. ``tests/unit/test_psi_dleq.py`` checks it against the plain sum.
    """
    n = len(points)
    if n < 16:
        out: Point | None = None
        for p, k in zip(points, scalars, strict=True):
            t = p * k
            out = t if out is None else out + t
        return out
    c = max(4, n.bit_length() - 2)
    mask = (1 << c) - 1
    total: Point | None = None
    for w in reversed(range((ORDER.bit_length() + c - 1) // c)):
        if total is not None:
            for _ in range(c):
                total = total + total
        buckets: list[Point | None] = [None] * (1 << c)
        shift = w * c
        for p, k in zip(points, scalars, strict=True):
            d = (k >> shift) & mask
            if d:
                b = buckets[d]
                buckets[d] = p if b is None else b + p
        run: Point | None = None
        acc: Point | None = None
        for b in reversed(buckets[1:]):  # Σ d·bucket[d] as a sum of running sums
            if b is not None:
                run = b if run is None else run + b
            if run is not None:
                acc = run if acc is None else acc + run
        if acc is not None:
            total = acc if total is None else total + acc
    return total


def composite_terms(
    bm: bytes, c: Sequence[bytes], d: Sequence[bytes], start: int = 0
) -> tuple[Point | None, Point | None]:
    """``ComputeComposites`` over ``C[start:]``, ``D[start:]`` of one batch: partial sums
    ``(Σ d_i·C[i], Σ d_i·D[i])`` (``None`` for an empty slice); slices add up to the batch's."""
    return _terms(bm, [(start + j, ci, di) for j, (ci, di) in enumerate(zip(c, d, strict=True))], True)


def _terms(
    bm: bytes, items: Sequence[tuple[int, bytes, bytes]], with_z: bool
) -> tuple[Point | None, Point | None]:
    seed = _seed(bm)
    coefs = [_coefficient(seed, i, ci, di) for i, ci, di in items]
    m = msm([decompress(ci) for _, ci, _ in items], coefs)
    z = msm([decompress(di) for _, _, di in items], coefs) if with_z else None
    return m, z


def partial_composites(bm: bytes, items: Sequence[tuple[int, bytes, bytes]], with_z: bool) -> bytes:
    """Worker form of :func:`composite_terms` over ``(index in batch, C[i], D[i])`` items:
    ``compress(M) ‖ compress(Z)`` (``Z`` only ``with_z``); an empty or identity sum is ``b""``."""
    m, z = _terms(bm, items, with_z)
    out = [m] + ([z] if with_z else [])
    if any(p is None or p.is_point_at_infinity() for p in out):
        return b""
    return b"".join(compress(p) for p in out if p is not None)


def add_partials(parts: Sequence[bytes], with_z: bool) -> tuple[Point, Point | None]:
    """Sum the :func:`partial_composites` of one batch into ``(M, Z)``."""
    m: Point | None = None
    z: Point | None = None
    for part in parts:
        if not part:
            raise InvalidProof("degenerate composite")
        pm = decompress(part[:ELEMENT])
        m = pm if m is None else m + pm
        if with_z:
            pz = decompress(part[ELEMENT:])
            z = pz if z is None else z + pz
    if m is None or m.is_point_at_infinity() or (with_z and (z is None or z.is_point_at_infinity())):
        raise InvalidProof("degenerate composite")
    return m, z


def composite_m(bm: bytes, c: Sequence[bytes], d: Sequence[bytes], start: int = 0) -> Point | None:
    """``M`` of ``ComputeCompositesFast`` (the prover knows ``k`` and sets ``Z = k·M``)."""
    return _terms(bm, [(start + j, ci, di) for j, (ci, di) in enumerate(zip(c, d, strict=True))], False)[0]


def _challenge(bm: bytes, m: Point, z: Point, t2: Point, t3: Point) -> int:
    return hash_to_scalar(_framed(bm, compress(m), compress(z), compress(t2), compress(t3)) + b"Challenge")


def public_key(k: int) -> bytes:
    """``SerializeElement(k·G)``."""
    return compress(GENERATOR * k)


def prove_batch(k: int, m: Point, r: int | None = None) -> tuple[int, int]:
    """``GenerateProof`` given the composite ``M`` of one batch: returns ``(c, s)``."""
    r = r if r is not None else secrets.randbelow(ORDER - 1) + 1
    bm = public_key(k)
    c = _challenge(bm, m, m * k, GENERATOR * r, m * r)
    return c, (r - c * k) % ORDER


def verify_batch(y: bytes, m: Point, z: Point, c: int, s: int) -> bool:
    """``VerifyProof`` given the composites ``(M, Z)`` of one batch."""
    if not (0 <= c < ORDER and 0 <= s < ORDER):
        return False
    y_point = decompress(y)
    t2 = GENERATOR * s + y_point * c
    t3 = m * s + z * c
    if t2.is_point_at_infinity() or t3.is_point_at_infinity():
        return False
    return secrets.compare_digest(_i2osp(_challenge(y, m, z, t2, t3), SCALAR), _i2osp(c, SCALAR))


@dataclass(frozen=True)
class Proof:
    """The operator's public key and one ``(c, s)`` per batch of :data:`BATCH` elements."""

    public_key: bytes
    batches: tuple[tuple[int, int], ...]


def batches(n: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch of ``n`` elements.

    >>> batches(3), len(batches(BATCH + 1))
    ([(0, 3)], 2)
    """
    return [(a, min(n, a + BATCH)) for a in range(0, n, BATCH)] or [(0, 0)]


def prove(k: int, c: Sequence[bytes], d: Sequence[bytes]) -> Proof:
    """Prove ``D[i] = k·C[i]`` for all ``i`` (single process; the client parallelizes by batch)."""
    bm = public_key(k)
    out = []
    for a, b in batches(len(c)):
        m = composite_m(bm, c[a:b], d[a:b])
        if m is None:
            raise InvalidProof("nothing to prove")
        out.append(prove_batch(k, m))
    return Proof(bm, tuple(out))


def verify(proof: Proof, c: Sequence[bytes], d: Sequence[bytes]) -> None:
    """Raise :class:`InvalidProof` unless ``proof`` shows ``D[i] = k·C[i]`` for one ``k`` and all ``i``."""
    if len(c) != len(d) or not c:
        raise InvalidProof("the answer and the request differ in length")
    spans = batches(len(c))
    if len(spans) != len(proof.batches):
        raise InvalidProof(f"the proof has {len(proof.batches)} batches, {len(spans)} expected")
    for (a, b), (ch, s) in zip(spans, proof.batches, strict=True):
        m, z = composite_terms(proof.public_key, c[a:b], d[a:b])
        if m is None or z is None or m.is_point_at_infinity() or z.is_point_at_infinity():
            raise InvalidProof("degenerate composite")
        if not verify_batch(proof.public_key, m, z, ch, s):
            raise InvalidProof("the DLEQ proof does not verify")


def encode(proof: Proof) -> bytes:
    return proof.public_key + b"".join(_i2osp(c, SCALAR) + _i2osp(s, SCALAR) for c, s in proof.batches)


def decode(data: bytes) -> Proof:
    body = data[ELEMENT:]
    if len(data) < ELEMENT + 2 * SCALAR or len(body) % (2 * SCALAR):
        raise InvalidProof("the proof is missing or has a malformed length")
    decompress(data[:ELEMENT])
    pairs = [
        (
            int.from_bytes(body[i : i + SCALAR], "big"),
            int.from_bytes(body[i + SCALAR : i + 2 * SCALAR], "big"),
        )
        for i in range(0, len(body), 2 * SCALAR)
    ]
    return Proof(data[:ELEMENT], tuple(pairs))
