"""Ed25519 keys that sign tree heads; the private key is stored encrypted at rest (AES-GCM)."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def seal(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """Encrypt ``plaintext`` with AES-256-GCM under ``key``, binding ``context``."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def unseal(key: bytes, sealed: bytes, context: bytes) -> bytes:
    """Decrypt what :func:`seal` produced (raises ``InvalidTag`` on a wrong key or tampering)."""
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], context)


def new_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """Raw 32-byte public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: bytes) -> str:
    """Short identifier of a public key: first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public).hexdigest()[:16]


def tree_head_message(size: int, root: bytes, timestamp_ms: int) -> bytes:
    """The bytes a tree-head signature covers (stated in docs/ledger.md)."""
    return b"lab-sth-v1\n" + f"{size}\n{root.hex()}\n{timestamp_ms}\n".encode()


def verify_signature(public_b64: str, signature_b64: str, message: bytes) -> bool:
    """Check an Ed25519 signature given base64 public key and signature."""
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
        pub.verify(base64.b64decode(signature_b64), message)
    except (InvalidSignature, ValueError):
        return False
    return True
