"""The add-checkpoint decision (tlog-witness), without HTTP.

:meth:`Witness.add_checkpoint` takes the request body and returns ``(status, content type, body)``
exactly as the specification's HTTP interface answers: 200 with cosignature lines; 400 malformed
or old size above the checkpoint size; 403 no valid signature of a trusted log key; 404 unknown
origin; 409 with the held size (``text/x.tlog.size``) when the old size is stale; 422 when the
proof does not verify or the roots differ — in which case the witness keeps the log-signed
checkpoint next to the one it had cosigned, as evidence of the log's misbehaviour.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from lab.shared.merkle import EMPTY_ROOT, verify_consistency
from witness.note import COSIGNATURE_V1, Checkpoint, NoteError, Signer, Verifier, open_note, split_note
from witness.state import Evidence, Held, State

SIZE_TYPE = "text/x.tlog.size"
TEXT = "text/plain; charset=utf-8"
MAX_PROOF_LINES = 63
Answer = tuple[int, str, str]


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The witness's Ed25519 private key, kept raw (32 bytes, mode 0600) in ``path``."""
    if path.exists():
        return Ed25519PrivateKey.from_private_bytes(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    return key


def origin_hash(origin: str) -> str:
    """The monitoring path component: lowercase hex SHA-256 of the origin."""
    return hashlib.sha256(origin.encode()).hexdigest()


@dataclass
class Witness:
    """A witness: its cosigning key, the log keys it trusts per origin, its state."""

    signer: Signer
    state: State
    logs: dict[str, list[Verifier]] = field(default_factory=dict)

    @classmethod
    def open(cls, state_dir: Path, name: str, log_vkeys: list[str]) -> Witness:
        """A witness keeping its key and SQLite state under ``state_dir``; trusts ``log_vkeys``."""
        key = load_or_create_key(state_dir / "witness.key")
        logs: dict[str, list[Verifier]] = {}
        for vkey in log_vkeys:
            v = Verifier.from_vkey(vkey)
            logs.setdefault(v.name, []).append(v)  # a log's key name is its origin
        return cls(Signer(name, COSIGNATURE_V1, key), State(state_dir / "witness.sqlite"), logs)

    @property
    def vkey(self) -> str:
        return self.signer.verifier.vkey

    def checkpoint(self, hashed_origin: str) -> str | None:
        """The latest cosigned checkpoint (log and witness signatures) of the origin with this hash."""
        for origin in self.logs:
            if origin_hash(origin) == hashed_origin:
                held = self.state.held(origin)
                return held.note if held else None
        return None

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            request = body.decode("utf-8")
            old, proof, note = _parse_request(request)
            text, _ = split_note(note)
            cp = Checkpoint.parse(text)
        except (UnicodeDecodeError, NoteError, ValueError) as exc:
            return 400, TEXT, f"malformed request: {exc}\n"
        trusted = self.logs.get(cp.origin)
        if trusted is None:
            return 404, TEXT, f"unknown log origin {cp.origin}\n"
        try:
            _, signed_by = open_note(note, trusted)
        except NoteError as exc:
            return 403, TEXT, f"checkpoint not signed by a trusted key of {cp.origin}: {exc}\n"
        if old > cp.size:
            return 400, TEXT, f"old size {old} exceeds the checkpoint size {cp.size}\n"
        log_lines = "".join(s.line for s in split_note(note)[1] if (s.name, s.key_id) in _ids(signed_by))

        def decide(held: Held | None) -> tuple[Answer, Held | None, Evidence | None]:
            held_size = held.size if held else 0
            if old != held_size:
                return (409, SIZE_TYPE, f"{held_size}\n"), None, None
            if cp.size == 0 and cp.root != EMPTY_ROOT:
                return (422, TEXT, "a checkpoint of size 0 must have the empty tree's root\n"), None, None
            if old == 0 and proof:
                return (422, TEXT, "old size 0 takes no consistency proof\n"), None, None
            if held is not None and old == cp.size and held.root != cp.root:
                return self._conflict(cp, held, note, request, "same size, different root hash")
            if (  # an empty tree (old size 0) is a prefix of any tree: no proof to check
                held is not None
                and 0 < old < cp.size
                and not verify_consistency(old, cp.size, proof, held.root, cp.root)
            ):
                return self._conflict(cp, held, note, request, f"no consistency from size {old} to {cp.size}")
            line = self.signer.sign_line(text, int(time.time()))
            return (200, TEXT, line), Held(cp.size, cp.root, text + "\n" + log_lines + line), None

        return self.state.update(cp.origin, decide)

    @staticmethod
    def _conflict(
        cp: Checkpoint, held: Held, note: str, request: str, reason: str
    ) -> tuple[Answer, None, Evidence]:
        ev = Evidence(cp.origin, time.time(), reason, held.note, note, request)
        return (
            (422, TEXT, f"inconsistent with the checkpoint cosigned at size {held.size}: {reason}\n"),
            None,
            ev,
        )


def _ids(verifiers: dict[Verifier, int]) -> set[tuple[str, bytes]]:
    return {(v.name, v.key_id) for v in verifiers}


def _parse_request(body: str) -> tuple[int, list[bytes], str]:
    """``old N\\n`` + up to 63 base64 proof lines + ``\\n`` + the checkpoint note."""
    head, sep, note = body.partition("\n\n")
    if not sep:
        raise ValueError("no blank line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old "):
        raise ValueError("the first line must be 'old <size>'")
    size_s = first[4:]
    if not size_s.isascii() or not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise ValueError(f"old size {size_s!r} is not a decimal without leading zeroes")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error):
            raise ValueError("a consistency proof line is not base64") from None
        if len(h) != 32:
            raise ValueError("a consistency proof hash is not 32 bytes")
        proof.append(h)
    return int(size_s), proof, note
