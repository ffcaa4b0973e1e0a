"""RFC 9162 hashing and proofs: every leaf of every small tree, and tampering."""

from __future__ import annotations

import hashlib

import pytest

from lab.shared import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"entry-{i}".encode()) for i in range(n)]


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 2.1.1, recursive."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


@pytest.mark.parametrize("n", range(0, 34))
def test_frontier_root_matches_rfc_definition(n: int) -> None:
    assert merkle.root_of(_leaves(n)) == _reference_root(_leaves(n))


def test_leaf_and_node_hashes_use_domain_separation() -> None:
    assert merkle.leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert merkle.node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 32, 33])
def test_every_inclusion_proof_verifies_and_tampering_fails(n: int) -> None:
    leaves = _leaves(n)
    root = merkle.root_of(leaves)
    for i in range(n):
        proof = merkle.inclusion_proof(leaves, i)
        assert merkle.verify_inclusion(leaves[i], i, n, proof, root)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), i, n, proof, root)
        if proof:
            bad = [*proof[:-1], bytes(32)]
            assert not merkle.verify_inclusion(leaves[i], i, n, bad, root)
        if n > 1:
            assert not merkle.verify_inclusion(leaves[i], (i + 1) % n, n, proof, root)


@pytest.mark.parametrize("n", [2, 3, 7, 8, 9, 20, 33])
def test_every_consistency_proof_verifies_and_rewrites_fail(n: int) -> None:
    leaves = _leaves(n)
    new_root = merkle.root_of(leaves)
    for m in range(1, n + 1):
        proof = merkle.consistency_proof(leaves, m)
        old_root = merkle.root_of(leaves[:m])
        assert merkle.verify_consistency(m, n, proof, old_root, new_root)
        rewritten = merkle.root_of([merkle.leaf_hash(b"x"), *leaves[1:m]])
        assert not merkle.verify_consistency(m, n, proof, rewritten, new_root)
        if proof:
            assert not merkle.verify_consistency(m, n, [bytes(32), *proof[1:]], old_root, new_root)
