"""Server-side PSI data structures, built from encrypted elements exactly as openmined-psi builds them.

openmined-psi's ``CreateSetupMessage`` encrypts every server item and then packs the encrypted
elements into a Golomb-compressed set (GCS) or a Bloom filter, in one single-threaded call. The
lab splits that call in two so the expensive part runs in parallel and is done once:

1. the EC encryption of the server set (``parallel.encrypt_server_chunk``, in worker processes);
2. the packing, done here with numpy, per client-size bucket.

The functions below reproduce the library's packing bit for bit (``tests/unit/test_psi_structures.py``
compares them with ``CreateSetupMessage`` on the same key and items), so any openmined-psi client
reads the result.

Parameters (``fpr`` is the bound on the chance that one query of ``n_client`` items sees any false
positive; the library divides it by ``n_client`` to get a per-element rate ``p``):

* GCS: ``hash_range = int(max(n_client, n_server) / p)``; element hash ``SHA-256(e) mod hash_range``;
  sorted, de-duplicated, deltas Golomb-coded with divisor ``2**div``.
* Bloom filter: ``k = ceil(-log2 p)`` hash functions over ``8 * ceil(-m log2(p) / ln 2 / 8)`` bits,
  ``m = max(n_client, n_server)``; ``h_i = (SHA-256("1"‖e) + i·SHA-256("2"‖e)) mod bits``.

Every set size is handled: an empty server set packs to an empty structure, and sets far smaller
than the hash range (a 3-item set against a 2,048-item bucket: ``1 − p`` rounds to 1 in binary64,
where the library's formula takes ``log2(0)``) get the Golomb divisor from ``log1p`` instead; a
client bound below 1 is refused with :class:`UnsupportedSetSize`.

GCS is smaller (about ``log2(1/p) + 1.5`` bits per element against ``1.44·log2(1/p)``) and is chosen
whenever its hash range fits comfortably in a signed 64-bit integer (the library stores it as one);
otherwise — large client buckets against large server sets at a tight FPR — the Bloom filter is used.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from lab.errors import BadRequest

DataStructure = Literal["gcs", "bloom_filter"]
GCS_MAX_HASH_RANGE = 2**62
"""Largest GCS hash range the lab builds (the library's int64 must not overflow)."""


class UnsupportedSetSize(BadRequest, ValueError):
    """A PSI structure was asked for a set size it cannot be built for (a client bound below 1)."""

    code, title = "psi-set-size", "Unsupported PSI set size"


def size_bucket(n: int, min_bucket: int = 1024) -> int:
    """The client-size bucket of a declared size: the next power of two, at least ``min_bucket``.

    >>> size_bucket(10_000), size_bucket(1), size_bucket(1024), size_bucket(1025)
    (16384, 1024, 1024, 2048)
    """
    if n < 1:
        raise UnsupportedSetSize(f"a PSI client set holds at least one item, not {n}", size=n)
    return max(min_bucket, 1 << (n - 1).bit_length())


def per_element_fpr(fpr: float, n_client: int) -> float:
    """The library's corrected, per-element false-positive rate."""
    if n_client < 1:
        raise UnsupportedSetSize(f"a PSI client bound is at least 1, not {n_client}", size=n_client)
    if not 0.0 < fpr < 1.0:
        raise UnsupportedSetSize(f"a PSI false-positive rate lies in (0, 1), not {fpr}")
    return fpr / n_client


def gcs_hash_range(fpr: float, n_client: int, n_server: int) -> int:
    """``static_cast<int64_t>(max(n_client, n_server) / (fpr / n_client))``, as in ``GCS::Create``."""
    return int(max(n_client, n_server) / per_element_fpr(fpr, n_client))


def choose_structure(fpr: float, n_client: int, n_server: int) -> DataStructure:
    """GCS when its hash range fits in 62 bits, else a Bloom filter.

    >>> choose_structure(1e-9, 16384, 100_000), choose_structure(1e-9, 1 << 20, 1_000_000)
    ('gcs', 'bloom_filter')
    """
    return "gcs" if gcs_hash_range(fpr, n_client, n_server) < GCS_MAX_HASH_RANGE else "bloom_filter"


def _sha_mod(elements: Sequence[bytes], prefix: bytes, modulus: int) -> NDArray[np.int64]:
    sha = hashlib.sha256
    return np.fromiter(
        (int.from_bytes(sha(prefix + e).digest(), "big") % modulus for e in elements),
        dtype=np.int64,
        count=len(elements),
    )


def gcs_hashes(elements: Sequence[bytes], hash_range: int) -> NDArray[np.int64]:
    """``SHA-256(e) mod hash_range`` for each encrypted element (``GCS::Hash``)."""
    return _sha_mod(elements, b"", hash_range)


def _round_half_away(x: float) -> float:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def golomb_divisor(span: int, n: int) -> int:
    """``max(0, round(-log2(-log2(1 - 1/avg))))`` with ``avg = span / n``, as ``golomb_compress``.

    Where the library's double arithmetic degenerates (``avg <= 1``: ``log2(0)``, giving 0 after
    its casts; ``1 - 1/avg`` rounding to 1 for huge ``avg``) the limit is used instead.

    >>> golomb_divisor(1, 1), golomb_divisor(1000, 10), golomb_divisor(2**60, 3)
    (0, 6, 58)
    """
    avg = float(span) / n
    prob = 1 / avg
    if prob >= 1.0:
        return 0
    q = 1.0 - prob
    inner = -math.log2(q) if q < 1.0 else -math.log1p(-prob) / math.log(2)
    return int(max(0.0, _round_half_away(-math.log2(inner))))


def golomb_compress(sorted_hashes: NDArray[np.int64]) -> tuple[bytes, int]:
    """Golomb-code sorted hashes as ``golomb_compress`` does: returns ``(bits, div)``."""
    if len(sorted_hashes) == 0:
        return b"", 0
    div = golomb_divisor(int(sorted_hashes[-1]) + 1, len(sorted_hashes))
    values = np.unique(sorted_hashes)  # the library skips duplicates
    deltas = np.diff(values, prepend=np.int64(0))
    quotients = deltas >> div
    remainders = deltas & ((1 << div) - 1)
    lengths = quotients + 1 + div
    ends = np.cumsum(lengths)
    ones = ends - lengths + quotients  # position of each unary terminator bit
    bits = np.zeros(int(ends[-1]), dtype=np.uint8)
    bits[ones] = 1
    for b in range(div):
        bits[ones + 1 + b] = (remainders >> b) & 1
    return np.packbits(bits, bitorder="little").tobytes(), div


def bloom_parameters(fpr: float, n_client: int, n_server: int) -> tuple[int, int]:
    """``(num_hash_functions, num_bytes)`` as in ``BloomFilter::CreateEmpty``."""
    p = per_element_fpr(fpr, n_client)
    max_elements = max(n_client, n_server)
    k = math.ceil(-math.log2(p))
    num_bytes = math.ceil(-max_elements * math.log2(p) / math.log(2) / 8)
    return k, num_bytes


def bloom_bits(elements: Sequence[bytes], k: int, num_bytes: int, chunk: int = 65536) -> bytes:
    """The Bloom filter bit string of ``BloomFilter::Add`` over ``elements``."""
    num_bits = 8 * num_bytes
    bitmap = np.zeros(num_bits, dtype=bool)
    steps = np.arange(k, dtype=np.int64)
    for start in range(0, len(elements), chunk):
        part = elements[start : start + chunk]
        h1 = _sha_mod(part, b"1", num_bits)
        h2 = _sha_mod(part, b"2", num_bits)
        bitmap[(h1[:, None] + steps[None, :] * h2[:, None]) % num_bits] = True
    return np.packbits(bitmap, bitorder="little").tobytes()


def build_setup(elements: list[bytes], fpr: float, bound: int) -> tuple[bytes, str]:
    """Serialize the ``ServerSetup`` of encrypted ``elements`` for clients of up to ``bound`` items."""
    import private_set_intersection.python as psi

    kind = choose_structure(fpr, bound, len(elements))
    setup = psi.ServerSetup()
    if kind == "gcs":
        hash_range = gcs_hash_range(fpr, bound, len(elements))
        bits, div = golomb_compress(np.sort(gcs_hashes(elements, hash_range)))
        setup.gcs.bits, setup.gcs.div, setup.gcs.hash_range = bits, div, hash_range
    else:
        k, num_bytes = bloom_parameters(fpr, bound, len(elements))
        setup.bloom_filter.num_hash_functions = k
        setup.bloom_filter.bits = bloom_bits(elements, k, num_bytes)
    data: bytes = setup.SerializeToString()
    return data, kind
