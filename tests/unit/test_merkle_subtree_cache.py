"""The cosigner's remembered-subtree consistency proofs equal the reference ones, and stay cheap."""

from __future__ import annotations

import doctest
import random

import lab.ledger.subtrees as subtrees
from lab.ledger.subtrees import SubtreeCache
from lab.shared import merkle


def test_proofs_and_roots_equal_the_reference_for_random_sizes() -> None:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(3000)]
    cache = SubtreeCache(lambda lo, hi: leaves[lo:hi])
    rng = random.Random(7)
    for _ in range(200):
        new = rng.randint(1, len(leaves))
        old = rng.randint(1, new)
        assert cache.consistency_proof(old, new) == merkle.consistency_proof(leaves[:new], old), (old, new)
        assert cache.root(0, new) == merkle.root_of(leaves[:new])
        assert merkle.verify_consistency(
            old,
            new,
            cache.consistency_proof(old, new),
            merkle.root_of(leaves[:old]),
            merkle.root_of(leaves[:new]),
        )


def test_a_growing_log_reads_only_small_ranges_once_warm() -> None:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(20_000)]
    read: list[int] = []

    def reader(lo: int, hi: int) -> list[bytes]:
        read.append(hi - lo)
        return leaves[lo:hi]

    cache = SubtreeCache(reader)
    cache.consistency_proof(10_000, 19_000)  # warm-up reads what it must
    read.clear()
    cache.consistency_proof(19_000, 20_000)  # the next round
    assert sum(read) <= 20 * subtrees.MIN_MEMO and all(n <= subtrees.MIN_MEMO for n in read)


def test_doctest() -> None:
    assert doctest.testmod(subtrees).failed == 0
