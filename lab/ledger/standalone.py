"""Offline verification of ledger documents, with nothing but hashlib and ``cryptography``.

This module imports nothing else from the lab so that auditors can copy it and run
``python standalone.py proof.json``. The formats are specified in ``docs/ledger.md``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def root_from_inclusion(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2: the root an inclusion path leads to, or None if malformed."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = _node(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_tree_head(head: dict[str, Any], trusted_keys: dict[str, str] | None = None) -> tuple[bool, str]:
    """Check a signed tree head's Ed25519 signature (against ``trusted_keys`` if given)."""
    pub_b64 = head["public_key"]
    if trusted_keys is not None and trusted_keys.get(head["key_id"]) != pub_b64:
        return False, f"tree head key {head['key_id']} is not a trusted ledger key"
    pub = base64.b64decode(pub_b64)
    if hashlib.sha256(pub).hexdigest()[:16] != head["key_id"]:
        return False, "tree head key id does not match its public key"
    msg = b"lab-sth-v1\n" + f"{head['size']}\n{head['root_hash']}\n{head['timestamp_ms']}\n".encode()
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(base64.b64decode(head["signature"]), msg)
    except (InvalidSignature, ValueError):
        return False, "tree head signature is invalid"
    return True, "tree head signature valid"


def verify_inclusion_document(
    doc: dict[str, Any], trusted_keys: dict[str, str] | None = None
) -> tuple[bool, str]:
    """Verify a ``lab ledger proof`` document: entry -> leaf -> root -> signed head.

    An entry the lab withheld from this reader (``{"withheld": true, ...}``, another project's) is
    checked by its leaf hash alone: it is proven to be in the log, its content is not shown.
    """
    try:
        withheld = isinstance(doc["entry"], dict) and doc["entry"].get("withheld") is True
        leaf = bytes.fromhex(doc["leaf_hash"]) if withheld else _leaf(canonical(doc["entry"]))
        if leaf.hex() != doc["leaf_hash"]:
            return False, "entry content does not match its leaf hash"
        path = [bytes.fromhex(h) for h in doc["audit_path"]]
        root = root_from_inclusion(leaf, int(doc["index"]), int(doc["tree_size"]), path)
        if root is None or root.hex() != doc["root_hash"]:
            return False, "audit path does not lead to the stated root"
        head = doc.get("tree_head")
        if head is None:
            return False, "no signed tree head to anchor the root"
        if int(head["size"]) != int(doc["tree_size"]) or head["root_hash"] != doc["root_hash"]:
            return False, "signed tree head is for a different tree"
        ok, why = verify_tree_head(head, trusted_keys)
        if not ok:
            return False, why
    except (KeyError, ValueError, TypeError) as exc:
        return False, f"malformed proof document: {exc}"
    what = "withheld entry" if withheld else "entry"
    return True, f"{what} {doc['index']} is included in the signed tree of size {doc['tree_size']}"


if __name__ == "__main__":  # pragma: no cover
    ok, why = verify_inclusion_document(json.load(open(sys.argv[1], encoding="utf-8")))  # noqa: SIM115
    print(("ok: " if ok else "INVALID: ") + why)  # noqa: T201
    sys.exit(0 if ok else 1)
