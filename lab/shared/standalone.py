"""Offline verification of ledger documents, with nothing but hashlib and ``cryptography``.

This module imports nothing else from the lab so that auditors can copy it and run
``python standalone.py proof.json --log-key VKEY [--witness VKEY ... --quorum K]`` (an inclusion
proof) or ``python standalone.py audit.json --log-key VKEY --witness VKEY ...`` (an audit bundle:
the log is consistent with the latest checkpoint each trusted witness cosigned).
The formats are specified in ``docs/ledger.md``.

It fails closed: the log's key (and, to trust the witnesses rather than the lab, the witnesses'
keys) come from the person verifying, never from the document. A proof without them, or anchored
to a key the verifier did not give, is refused.

It is also the one home of the verifying half of RFC 9162 (leaf and node hashes,
:func:`root_from_inclusion`, :func:`verify_consistency`) and of the canonical JSON bytes of an
entry: :mod:`lab.shared.merkle` (the log's side), the certificates, the client and the witness
import them from here, so there is one copy and this file still runs alone.

>>> a, b, c = leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")
>>> root_from_inclusion(c, 2, 3, [node_hash(a, b)]) == node_hash(node_hash(a, b), c)
True
>>> verify_consistency(2, 3, [c], node_hash(a, b), node_hash(node_hash(a, b), c))
True
>>> canonical({"b": 1, "a": [True, None, "é"]})
b'{"a":[true,null,"\\xc3\\xa9"],"b":1}'
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DASH = "\u2014"
#: Said next to a positive answer checked with the log's key alone.
LOG_KEY_ONLY = "checked with the log's key only: history is trusted to the lab's operator; add --witness keys"
#: The root hash of the empty tree: ``SHA-256("")``.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash of an entry's bytes: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def canonical(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8, no NaN) — what a ledger leaf hashes.

    ``default`` renders values JSON has no type for (the log passes its Decimal/datetime rule).
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default, allow_nan=False
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
            r = node_hash(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


# -- keys given by the verifier ------------------------------------------------------------------
def _vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """``name+hexid+base64(type||key)`` -> (name, key id, type, 32-byte key); checks the key id."""
    name, hex_id, b64 = vkey.strip().split("+", 2)
    raw = base64.b64decode(b64, validate=True)
    kid = bytes.fromhex(hex_id)
    if len(raw) != 33 or hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4] != kid:
        raise ValueError(f"verifier key {name}: malformed or its key ID does not match")
    return name, kid, raw[0], raw[1:]


def trusted_log_keys(specs: list[str]) -> dict[str, str]:
    """Log keys as ``{key_id: base64 public key}`` from ``KEY_ID=BASE64`` or log vkeys (type 0x01)."""
    out: dict[str, str] = {}
    for spec in specs:
        if "=" in spec and "+" not in spec.split("=", 1)[0]:
            kid, b64 = spec.split("=", 1)
            pub = base64.b64decode(b64, validate=True)
            if hashlib.sha256(pub).hexdigest()[:16] != kid:
                raise ValueError(f"key id {kid} does not match its public key")
        else:
            _, _, kind, pub = _vkey(spec)
            if kind != 0x01:
                raise ValueError("a log key is an Ed25519 note key (type 0x01)")
        out[hashlib.sha256(pub).hexdigest()[:16]] = base64.b64encode(pub).decode()
    return out


def verify_tree_head(head: dict[str, Any], trusted_keys: dict[str, str] | None) -> tuple[bool, str]:
    """Check a signed tree head's Ed25519 signature against a key the verifier trusts."""
    if not trusted_keys:
        return False, "no trusted log key given: refusing to trust the key the document carries"
    pub_b64 = trusted_keys.get(head["key_id"])
    if pub_b64 is None or head.get("public_key", pub_b64) != pub_b64:
        return False, f"tree head key {head['key_id']} is not a trusted ledger key"
    msg = b"lab-sth-v1\n" + f"{head['size']}\n{head['root_hash']}\n{head['timestamp_ms']}\n".encode()
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_b64)).verify(
            base64.b64decode(head["signature"]), msg
        )
    except (InvalidSignature, ValueError):
        return False, "tree head signature is invalid"
    return True, "tree head signature valid"


# -- checkpoints (C2SP signed notes) -------------------------------------------------------------
def verify_checkpoint(
    note: str,
    trusted_keys: dict[str, str],
    witnesses: Sequence[str] = (),
    quorum: int = 0,
) -> tuple[bool, str, int, bytes]:
    """Verify a checkpoint note: the log's signature by a trusted key, and ``quorum`` cosignatures
    (``cosignature/v1``) of the given witness vkeys. Returns (ok, why, size, root)."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        return False, "malformed checkpoint note", 0, b""
    text, sig_lines = note[: cut + 1], note[cut + 2 :].splitlines()
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        return False, "malformed checkpoint text", 0, b""
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    sigs: list[tuple[str, bytes]] = []
    for line in sig_lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            return False, f"malformed signature line {line!r}", 0, b""
        sigs.append((parts[1], base64.b64decode(parts[2], validate=True)))
    log_ok = False
    for b64 in trusted_keys.values():
        pub = base64.b64decode(b64)
        kid = hashlib.sha256(origin.encode() + b"\n\x01" + pub).digest()[:4]
        for name, raw in sigs:
            if name == origin and raw[:4] == kid:
                try:
                    Ed25519PublicKey.from_public_bytes(pub).verify(raw[4:], text.encode())
                except InvalidSignature:
                    return False, "the log's signature on the checkpoint does not verify", 0, b""
                log_ok = True
    if not log_ok:
        return False, "the checkpoint is not signed by a trusted log key", 0, b""
    cosigned: list[str] = []
    for vkey in witnesses:
        wname, wkid, kind, pub = _vkey(vkey)
        if kind != 0x04:
            return False, f"witness key {wname} is not a cosignature/v1 key (type 0x04)", 0, b""
        for name, raw in sigs:
            if name != wname or raw[:4] != wkid:
                continue
            if len(raw) != 4 + 8 + 64:
                return False, f"cosignature of {wname} is malformed", 0, b""
            (ts,) = struct.unpack(">Q", raw[4:12])
            msg = f"cosignature/v1\ntime {ts}\n".encode() + text.encode()
            try:
                Ed25519PublicKey.from_public_bytes(pub).verify(raw[12:], msg)
            except InvalidSignature:
                return False, f"cosignature of {wname} does not verify", 0, b""
            cosigned.append(wname)
    if len(set(cosigned)) < quorum:
        return (
            False,
            f"checkpoint of size {size} is cosigned by {len(set(cosigned))} of the trusted witnesses, "
            f"{quorum} needed",
            size,
            root,
        )
    by = f", cosigned by {', '.join(sorted(set(cosigned)))}" if cosigned else ""
    return True, f"checkpoint {origin} size {size} signed by the log{by}", size, root


def verify_inclusion_document(
    doc: dict[str, Any],
    trusted_keys: dict[str, str] | None,
    witnesses: Sequence[str] = (),
    quorum: int = 0,
) -> tuple[bool, str]:
    """Verify a ``lab ledger proof`` document: entry -> leaf -> root -> signed head or checkpoint.

    ``trusted_keys`` (the log's keys, from the verifier) is required. With ``witnesses`` and
    ``quorum`` the root must be that of the document's checkpoint, cosigned by ``quorum`` of them.
    An entry the lab withheld from this reader (``{"withheld": true, ...}``) is checked by its leaf
    hash alone: it is proven to be in the log, its content is not shown.
    """
    if not trusted_keys:
        return False, "no trusted log key given: refusing to trust the key the document carries"
    try:
        withheld = isinstance(doc["entry"], dict) and doc["entry"].get("withheld") is True
        leaf = bytes.fromhex(doc["leaf_hash"]) if withheld else leaf_hash(canonical(doc["entry"]))
        if leaf.hex() != doc["leaf_hash"]:
            return False, "entry content does not match its leaf hash"
        path = [bytes.fromhex(h) for h in doc["audit_path"]]
        root = root_from_inclusion(leaf, int(doc["index"]), int(doc["tree_size"]), path)
        if root is None or root.hex() != doc["root_hash"]:
            return False, "audit path does not lead to the stated root"
        anchored = ""
        if witnesses or quorum or doc.get("tree_head") is None:
            note = doc.get("checkpoint")
            if not isinstance(note, str):
                return False, "no checkpoint to anchor the root (witness cosignatures required)"
            ok, why, size, cp_root = verify_checkpoint(note, trusted_keys, witnesses, quorum)
            if not ok:
                return False, why
            if size != int(doc["tree_size"]) or cp_root != root:
                return False, "the checkpoint is for a different tree"
            anchored = f"; {why}"
        else:
            head = doc["tree_head"]
            if int(head["size"]) != int(doc["tree_size"]) or head["root_hash"] != doc["root_hash"]:
                return False, "signed tree head is for a different tree"
            ok, why = verify_tree_head(head, trusted_keys)
            if not ok:
                return False, why
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        return False, f"malformed proof document: {exc}"
    what = "withheld entry" if withheld else "entry"
    return True, f"{what} {doc['index']} is included in the signed tree of size {doc['tree_size']}{anchored}"


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """Check a consistency proof between two tree heads (RFC 9162 2.1.4.2); ``old_size`` >= 1."""
    if old_size < 1 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = ([old_root] if old_size & (old_size - 1) == 0 else []) + list(
        proof
    )  # power of two: old root first
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn % 2 == 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def _consistent(old_size: int, new_size: int, proof: list[bytes], old_root: bytes, new_root: bytes) -> bool:
    """:func:`verify_consistency`, where a witness's empty checkpoint (size 0) is a prefix of any tree."""
    if old_size == 0:
        return not proof
    return verify_consistency(old_size, new_size, proof, old_root, new_root)


def verify_audit_bundle(
    bundle: dict[str, Any], trusted_keys: dict[str, str] | None, witnesses: Sequence[str], quorum: int
) -> tuple[bool, str]:
    """Check a ``lab ledger audit-bundle`` document: the log's current checkpoint is consistent with
    the latest checkpoint each trusted witness cosigned; ``quorum`` of them must vouch for it."""
    if not trusted_keys or not witnesses:
        return False, "give the log's key and the witnesses' keys: refusing to trust the document's"
    try:
        ok, why, size, root = verify_checkpoint(bundle["checkpoint"], trusted_keys)
        if not ok:
            return False, f"current checkpoint: {why}"
        vouched: set[str] = set()
        for item in bundle["witnessed"]:
            for vkey in witnesses:
                ok, _, old_size, old_root = verify_checkpoint(item["note"], trusted_keys, [vkey], 1)
                if not ok:
                    continue
                name = vkey.split("+", 1)[0]
                proof = [bytes.fromhex(h) for h in item["proof"]]
                if old_size > size:
                    return (
                        False,
                        f"witness {name} cosigned size {old_size}; the log now has {size}: rolled back",
                    )
                if not _consistent(old_size, size, proof, old_root, root):
                    return False, (
                        f"REWRITTEN: the log's tree of size {size} is not consistent with the checkpoint "
                        f"witness {name} cosigned at size {old_size}"
                    )
                vouched.add(name)
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        return False, f"malformed audit bundle: {exc}"
    if len(vouched) < quorum:
        return False, f"only {len(vouched)} trusted witness(es) vouch for the log, {quorum} needed"
    return True, f"log of size {size} is consistent with the checkpoints of {', '.join(sorted(vouched))}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verify a lab ledger proof or audit bundle offline.")
    ap.add_argument(
        "proof", help="proof JSON (lab ledger proof --out) or audit bundle (lab ledger audit-bundle)"
    )
    ap.add_argument("--log-key", action="append", default=[], help="the log's vkey or KEY_ID=BASE64")
    ap.add_argument("--witness", action="append", default=[], help="a trusted witness's vkey")
    ap.add_argument("--quorum", type=int, default=None, help="cosignatures needed (default: all)")
    args = ap.parse_args(argv)
    with open(args.proof, encoding="utf-8") as f:
        doc = json.load(f)
    try:
        keys = trusted_log_keys(args.log_key)
    except (ValueError, binascii.Error) as exc:
        print(f"INVALID: bad --log-key: {exc}")  # noqa: T201
        return 1
    quorum = len(args.witness) if args.quorum is None else args.quorum
    if doc.get("format") == "lab-witness-audit/v1":
        ok, why = verify_audit_bundle(doc, keys, args.witness, quorum)
    else:
        ok, why = verify_inclusion_document(doc, keys, args.witness, quorum)
    caveat = f" ({LOG_KEY_ONLY})" if ok and not args.witness else ""
    print(("ok: " if ok else "INVALID: ") + why + caveat)  # noqa: T201
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
