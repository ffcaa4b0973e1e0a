"""Batched inclusion proofs (one pass over the leaves) equal the single-proof paths of RFC 9162."""

from __future__ import annotations

import hashlib

import pytest

from lab.shared import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 255, 256, 257, 513, 1000, 4097])
def test_batched_proofs_equal_single_proofs_and_verify(n: int) -> None:
    leaves = _leaves(n)
    indexes = sorted({0, n - 1, n // 2, n // 3, max(0, n - 257)})
    root, proofs = merkle.inclusion_proofs(leaves, indexes)
    assert root == merkle.root_of(leaves)
    for i in indexes:
        assert proofs[i] == merkle.inclusion_proof(leaves, i)
        assert merkle.verify_inclusion(leaves[i], i, n, proofs[i], root)


def test_batched_proofs_refuse_a_leaf_outside_the_tree() -> None:
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_proofs(_leaves(4), [4])
    assert merkle.inclusion_proofs([], []) == (merkle.EMPTY_ROOT, {})
