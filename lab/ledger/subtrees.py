"""Consistency proofs for a growing log without rehashing it: perfect subtrees are remembered.

In an append-only RFC 9162 tree a perfect, aligned subtree (``2^k`` leaves starting at a multiple
of ``2^k``) never changes once complete, and every node a consistency proof needs is built from
such subtrees plus at most O(log n) small ranges. :class:`SubtreeCache` keeps the hashes of the
perfect subtrees of at least ``MIN_MEMO`` leaves (about n/128 hashes) and reads the leaves of small
ranges on demand, so a proof costs O(log n) small reads after the first one instead of reading and
hashing the whole log. The cosigner builds one proof per witness per round with it.

>>> from lab.shared import merkle
>>> leaves = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(1000)]
>>> cache = SubtreeCache(lambda lo, hi: leaves[lo:hi])
>>> cache.consistency_proof(300, 1000) == merkle.consistency_proof(leaves, 300)
True
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.ledger.models import LedgerEntryRow
from lab.shared.merkle import EMPTY_ROOT, node_hash, root_of

MIN_MEMO = 256


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class SubtreeCache:
    """Subtree hashes of one append-only log; ``read(lo, hi)`` returns the leaf hashes of a range."""

    def __init__(self, read: Callable[[int, int], list[bytes]]) -> None:
        self.read = read
        self.memo: dict[tuple[int, int], bytes] = {}

    def root(self, lo: int, hi: int) -> bytes:
        """The RFC 9162 hash of leaves ``lo..hi-1``."""
        n = hi - lo
        if n <= 0:
            return EMPTY_ROOT
        if n <= MIN_MEMO:
            return root_of(self.read(lo, hi))
        perfect = n & (n - 1) == 0
        if perfect and (lo, hi) in self.memo:
            return self.memo[(lo, hi)]
        k = _split(n)
        h = node_hash(self.root(lo, lo + k), self.root(lo + k, hi))
        if perfect:
            self.memo[(lo, hi)] = h
        return h

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 2.1.4.1: as ``merkle.consistency_proof`` over the first ``new_size`` leaves."""
        if not 0 < old_size <= new_size:
            raise ValueError(f"old size {old_size} outside 1..{new_size}")
        if old_size == new_size:
            return []

        def sub(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
            if m == hi - lo:
                return [] if complete else [self.root(lo, hi)]
            k = _split(hi - lo)
            if m <= k:
                return [*sub(m, lo, lo + k, complete), self.root(lo + k, hi)]
            return [*sub(m - k, lo + k, hi, False), self.root(lo, lo + k)]

        return sub(old_size, 0, new_size, True)


def leaf_range(session: Session, lo: int, hi: int) -> list[bytes]:
    """The stored leaf hashes of entries ``lo..hi-1``."""
    rows = session.execute(
        select(LedgerEntryRow.leaf_hash)
        .where(LedgerEntryRow.idx >= lo, LedgerEntryRow.idx < hi)
        .order_by(LedgerEntryRow.idx)
    ).scalars()
    return [bytes.fromhex(h) for h in rows]
