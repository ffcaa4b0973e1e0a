"""Counter-based randomness for the sample generator: every value is a pure function of (seed, name, index).

Nothing here keeps state between calls, so any row of any dataset can be regenerated from its
index alone, in any chunk, in any order. That is what lets ``health_visits`` recompute the
residents it samples instead of holding the population in memory, and what makes the output
independent of the chunk size.

* :class:`Streams` hashes ``index`` with a per-(seed, name) key through the SplitMix64
  finalizer and turns the bits into uniforms, normals and categorical draws.
* :class:`Permutation` is a keyed bijection on ``[0, n)`` (a four-round Feistel network on
  the next even power of two, with cycle walking): unique identifiers come from
  permuted indexes, never from rejection sampling.

All arithmetic is on numpy ``uint64`` arrays and wraps modulo 2**64 by design.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_53 = float(2**53)


def derive_key(seed: int, name: str) -> int:
    """A 64-bit key for the stream ``name`` under ``seed`` (stable across runs and platforms)."""
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def mix64(x: U64) -> U64:
    """SplitMix64 finalizer, applied elementwise to a copy of ``x``."""
    z = x + _GOLDEN
    z ^= z >> np.uint64(30)
    z *= _MUL1
    z ^= z >> np.uint64(27)
    z *= _MUL2
    z ^= z >> np.uint64(31)
    return z


def as_u64(index: npt.ArrayLike) -> U64:
    """Indexes as a ``uint64`` array (non-negative integers expected)."""
    return np.asarray(index, dtype=np.int64).astype(np.uint64)


class Streams:
    """Named, keyed hash streams: ``bits(name, index)`` is uniform on 64 bits and independent per name."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._keys: dict[str, np.uint64] = {}

    def key(self, name: str) -> np.uint64:
        k = self._keys.get(name)
        if k is None:
            k = self._keys[name] = np.uint64(derive_key(self.seed, name))
        return k

    def bits(self, name: str, index: U64) -> U64:
        return mix64(index ^ self.key(name))

    def uniform(self, name: str, index: U64) -> F64:
        """Uniform on ``[0, 1)`` with 53 random bits."""
        return (self.bits(name, index) >> np.uint64(11)).astype(np.float64) / _TWO_POW_53

    def normal(self, name: str, index: U64) -> F64:
        """Standard normal (Box-Muller on two independent uniforms)."""
        u1 = ((self.bits(name + "#r", index) >> np.uint64(11)).astype(np.float64) + 1.0) / _TWO_POW_53
        u2 = self.uniform(name + "#t", index)
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)

    def integers(self, name: str, index: U64, high: int) -> I64:
        """Integers in ``[0, high)`` (modulo bias below 2**-40 for ``high`` < 2**24)."""
        return (self.bits(name, index) % np.uint64(high)).astype(np.int64)

    def choice(self, name: str, index: U64, weights: Sequence[float] | F64) -> I64:
        """Categorical draw: position in ``weights`` (which need not sum to one)."""
        return categorical(self.uniform(name, index), weights)


def categorical(u: F64, weights: Sequence[float] | F64) -> I64:
    """Map uniforms to categories by inverse CDF of ``weights``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights are a non-empty vector of non-negative numbers with a positive sum")
    cdf = np.cumsum(w) / w.sum()
    out: I64 = np.minimum(np.searchsorted(cdf, u, side="right"), w.size - 1).astype(np.int64)
    return out


def categorical_by_group(u: F64, group: I64, table: F64) -> I64:
    """Categorical draw whose weights depend on ``group``: row ``g`` of ``table`` for group ``g``."""
    cdf = np.cumsum(table, axis=1)
    cdf /= cdf[:, -1:]
    out: I64 = np.minimum((u[:, None] >= cdf[group][:, :-1]).sum(axis=1), table.shape[1] - 1).astype(np.int64)
    return out


class Permutation:
    """A keyed pseudorandom bijection of ``[0, n)``.

    >>> p = Permutation(1000, key=7)
    >>> out = p(np.arange(1000))
    >>> sorted(out.tolist()) == list(range(1000))
    True
    """

    ROUNDS = 4

    def __init__(self, n: int, key: int) -> None:
        if n < 1:
            raise ValueError("a permutation needs n >= 1")
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = np.uint64((1 << self._half) - 1)
        self._keys = [np.uint64(derive_key(key, f"feistel{r}")) for r in range(self.ROUNDS)]

    def _feistel(self, x: U64) -> U64:
        half = np.uint64(self._half)
        left, right = x >> half, x & self._mask
        for k in self._keys:
            left, right = right, left ^ (mix64(right ^ k) & self._mask)
        return (left << half) | right

    def __call__(self, index: npt.ArrayLike) -> I64:
        x = self._feistel(as_u64(index))
        n = np.uint64(self.n)
        outside = np.flatnonzero(x >= n)
        while outside.size:
            x[outside] = self._feistel(x[outside])
            outside = outside[x[outside] >= n]
        return x.astype(np.int64)


def unit_mod(modulus: int, key: int) -> int:
    """A multiplier coprime to ``modulus`` (for the affine bijection ``a*x + b mod modulus``)."""
    a = derive_key(key, "unit") % modulus
    while math.gcd(a, modulus) != 1:
        a = (a + 1) % modulus
    return a
