"""C2SP signed notes (``signed-note``), checkpoints (``tlog-checkpoint``) and cosignatures.

Byte formats, exactly as the specifications state them:

* a note is ``text`` (ending in a newline), a blank line, then signature lines
  ``— <key name> base64(4-byte key ID || signature)\\n`` (U+2014 em dash);
* a checkpoint's text is ``<origin>\\n<size>\\n<base64 root>\\n`` (then optional extension lines);
* an Ed25519 note signature (type ``0x01``) signs the text; its key ID is
  ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``;
* a ``cosignature/v1`` (type ``0x04``) is ``key ID || u64 big-endian timestamp || Ed25519
  signature`` over ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint text;
* a verifier key (vkey) is ``<name>+<hex key ID>+base64(type || public key)``.

>>> v = Verifier.from_vkey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
>>> sig = "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM="
>>> note = "This is an example message.\\n\\n— example.com/foo " + sig + "\\n"
>>> open_note(note, [v])[0]
'This is an example message.\\n'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"
MAX_SIGNATURES = 32
MAX_NOTE_BYTES = 64 * 1024


class NoteError(ValueError):
    """A note, checkpoint, key or signature that is malformed or does not verify."""


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    """The 4-byte key ID: ``SHA-256(name || "\\n" || type || public key)[:4]``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"invalid key name {name!r}: empty, or holds a space or '+'")


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a ``cosignature/v1`` signs (tlog-cosignature, "Ed25519 signed message")."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


@dataclass(frozen=True)
class Verifier:
    """A trusted public key: name, 4-byte key ID, signature type, 32-byte Ed25519 key."""

    name: str
    key_id: bytes
    sig_type: int
    public: bytes

    @classmethod
    def make(cls, name: str, sig_type: int, public: bytes) -> Verifier:
        _check_name(name)
        return cls(name, key_id(name, sig_type, public), sig_type, public)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key ID>+base64(type || public key)``."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"not a verifier key: {vkey!r}")
        name, hex_id, b64 = parts
        _check_name(name)
        try:
            kid, raw = bytes.fromhex(hex_id), base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise NoteError(f"verifier key {name}: bad encoding ({exc})") from None
        if len(kid) != 4 or len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"verifier key {name}: not an Ed25519 (0x01) or cosignature/v1 (0x04) key")
        v = cls(name, kid, raw[0], raw[1:])
        if key_id(name, v.sig_type, v.public) != kid:
            raise NoteError(f"verifier key {name}: key ID does not match the key")
        return v

    @property
    def vkey(self) -> str:
        raw = base64.b64encode(bytes([self.sig_type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def verify(self, text: str, sig: bytes) -> int | None:
        """Check ``sig`` (key ID stripped) over ``text``; returns the timestamp (0 for plain notes)."""
        pub = Ed25519PublicKey.from_public_bytes(self.public)
        try:
            if self.sig_type == COSIGNATURE_V1:
                if len(sig) != 72:
                    return None
                (ts,) = struct.unpack(">Q", sig[:8])
                if ts >= 2**63:
                    return None
                pub.verify(sig[8:], cosignature_message(text, ts))
                return int(ts)
            if len(sig) != 64:
                return None
            pub.verify(sig, text.encode())
            return 0
        except InvalidSignature:
            return None


@dataclass(frozen=True)
class Signer:
    """A private key that signs notes (``ED25519``) or cosigns checkpoints (``COSIGNATURE_V1``)."""

    name: str
    sig_type: int
    private: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        pub = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier.make(self.name, self.sig_type, pub)

    def sign_line(self, text: str, timestamp: int = 0) -> str:
        """One note signature line (with its final newline) over ``text``."""
        kid = self.verifier.key_id
        if self.sig_type == COSIGNATURE_V1:
            if not 0 < timestamp < 2**63:
                raise NoteError("a cosignature needs a positive timestamp")
            raw = kid + struct.pack(">Q", timestamp) + self.private.sign(cosignature_message(text, timestamp))
        else:
            raw = kid + self.private.sign(text.encode())
        return f"{DASH} {self.name} {base64.b64encode(raw).decode()}\n"


@dataclass(frozen=True)
class Signature:
    """One parsed signature line."""

    name: str
    key_id: bytes
    sig: bytes
    line: str


def split_note(note: str) -> tuple[str, list[Signature]]:
    """Split a signed note into its text (with final newline) and its signature lines."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError("note too large")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise NoteError("note holds control characters")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("malformed note: no blank line before the signatures")
    text, lines = note[: cut + 1], note[cut + 2 :].splitlines(keepends=True)
    if not lines:
        raise NoteError("malformed note: no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    return text, [parse_signature_line(line) for line in lines]


def parse_signature_line(line: str) -> Signature:
    """Parse ``— <name> <base64>\\n``."""
    if not line.startswith(DASH + " ") or not line.endswith("\n"):
        raise NoteError(f"malformed signature line {line!r}")
    parts = line[2:-1].split(" ")
    if len(parts) != 2:
        raise NoteError(f"malformed signature line {line!r}")
    name, b64 = parts
    _check_name(name)
    try:
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError(f"signature of {name} is not base64") from None
    if len(raw) < 5:
        raise NoteError(f"signature of {name} is too short")
    return Signature(name, raw[:4], raw[4:], line)


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, dict[Verifier, int]]:
    """Verify ``note``: its text and, per known key that signed it, the timestamp (0 if none).

    Unknown keys are ignored; a known key's bad signature rejects the whole note; a note with no
    verified signature of a known key is rejected (signed-note, "Signatures").
    """
    text, sigs = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    good: dict[Verifier, int] = {}
    for s in sigs:
        v = known.get((s.name, s.key_id))
        if v is None:
            continue
        ts = v.verify(text, s.sig)
        if ts is None:
            raise NoteError(f"signature of {v.name} ({v.key_id.hex()}) does not verify")
        good[v] = ts
    if not good:
        raise NoteError("no signature from a trusted key")
    return text, good


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint note text: origin, tree size, root hash (and extension lines)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text, byte-exact: ``origin\\nsize\\nbase64(root)\\n[extensions\\n]``."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint's note text (not the signatures)."""
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line for line in lines):
            raise NoteError("a checkpoint has at least three non-empty lines")
        origin, size_s, root_s, *ext = lines
        if not size_s.isascii() or not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            raise NoteError(f"checkpoint size {size_s!r} is not a decimal without leading zeroes")
        try:
            root = base64.b64decode(root_s, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError("checkpoint root hash is not base64") from None
        if len(root) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size_s), root, tuple(ext))
