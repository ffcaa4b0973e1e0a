"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs, without I/O.

* leaf hash: ``SHA-256(0x00 || entry)``; node hash: ``SHA-256(0x01 || left || right)``;
  the empty tree hashes to ``SHA-256("")``.
* :class:`Frontier` keeps the roots of the perfect subtrees of a growing tree so that
  appending and computing the root are O(log n).
* :func:`inclusion_proof` / :func:`verify_inclusion` and :func:`consistency_proof` /
  :func:`verify_consistency` follow RFC 9162 sections 2.1.3 and 2.1.4.

This is the log's side (building trees and proofs). The hashes and the verifiers are defined once in
:mod:`lab.shared.standalone`, the offline verifier an auditor can copy alone, and re-exported here.

>>> leaves = [leaf_hash(bytes([i])) for i in range(7)]
>>> root = root_of(leaves)
>>> verify_inclusion(leaves[3], 3, 7, inclusion_proof(leaves, 3), root)
True
>>> verify_consistency(3, 7, consistency_proof(leaves, 3), root_of(leaves[:3]), root)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lab.shared.standalone import EMPTY_ROOT, leaf_hash, node_hash, root_from_inclusion, verify_consistency

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "consistency_proof",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash of a list of leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    frontier = Frontier()
    for h in leaves:
        frontier.append(h)
    return frontier.root()


@dataclass
class Frontier:
    """Roots of the perfect subtrees of a tree, largest first (a compact range)."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self.hashes.append(leaf)
        self.size += 1
        n = self.size
        while n % 2 == 0:  # merge equal-sized subtrees at the right edge
            right = self.hashes.pop()
            left = self.hashes.pop()
            self.hashes.append(node_hash(left, right))
            n //= 2

    def root(self) -> bytes:
        """The tree's root hash."""
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h

    def to_hex(self) -> list[str]:
        """Serializable form of the hashes."""
        return [h.hex() for h in self.hashes]

    @classmethod
    def from_hex(cls, size: int, hashes: Sequence[str]) -> Frontier:
        """Rebuild from :meth:`to_hex` output."""
        return cls(size, [bytes.fromhex(h) for h in hashes])


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree of ``leaves`` (RFC 9162 2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} outside tree of size {len(leaves)}")
    proof: list[bytes] = []
    lo, hi, m = 0, len(leaves), index
    path: list[bytes] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if m - lo < k:
            path.append(root_of(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root_of(leaves[lo : lo + k]))
            lo = lo + k
    proof = list(reversed(path))
    return proof


def inclusion_proofs(leaves: Sequence[bytes], indexes: Sequence[int]) -> tuple[bytes, dict[int, list[bytes]]]:
    """The root and the audit paths of several leaves, sharing subtree hashes.

    The same paths as :func:`inclusion_proof`, but every subtree is hashed once: O(n + k log n) for
    k proofs instead of O(k n), so a document proving many entries (a product's lineage) stays cheap.
    """
    memo: dict[tuple[int, int], bytes] = {}

    def root(lo: int, hi: int) -> bytes:
        if hi - lo <= 256:  # small subtrees are rehashed, so the memo stays ~n/128 entries
            return root_of(leaves[lo:hi])
        key = (lo, hi)
        if key not in memo:
            k = _split(hi - lo)
            memo[key] = node_hash(root(lo, lo + k), root(lo + k, hi))
        return memo[key]

    proofs: dict[int, list[bytes]] = {}
    for index in indexes:
        if not 0 <= index < len(leaves):
            raise ValueError(f"leaf {index} outside tree of size {len(leaves)}")
        path: list[bytes] = []
        lo, hi = 0, len(leaves)
        while hi - lo > 1:
            k = _split(hi - lo)
            if index - lo < k:
                path.append(root(lo + k, hi))
                hi = lo + k
            else:
                path.append(root(lo, lo + k))
                lo = lo + k
        proofs[index] = list(reversed(path))
    return (root(0, len(leaves)) if leaves else EMPTY_ROOT), proofs


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Check an inclusion proof (RFC 9162 2.1.3.2)."""
    return root_from_inclusion(leaf, index, size, list(proof)) == root


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the first ``old_size`` leaves are a prefix of ``leaves`` (RFC 9162 2.1.4.1)."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ValueError(f"old size {old_size} outside 1..{n}")
    if old_size == n:
        return []

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        size = hi - lo
        if m == size:
            return [] if complete else [root_of(leaves[lo:hi])]
        k = _split(size)
        if m <= k:
            return [*subproof(m, lo, lo + k, complete), root_of(leaves[lo + k : hi])]
        return [*subproof(m - k, lo + k, hi, False), root_of(leaves[lo : lo + k])]

    return subproof(old_size, 0, n, True)
