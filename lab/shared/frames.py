"""The HE channel's binary frame, once for both sides: a JSON header and length-prefixed blobs.

Layout (all integers little-endian)::

    b"LHE1"  u32 header_len  header (UTF-8 JSON object)
    u32 n_blobs
    n_blobs × ( u32 len  bytes )

It carries ciphertexts between the client and the API, and tasks and results between the API and
its isolated workers (never pickle). Readers are bounded: counts and lengths over the caller's
limits are refused before anything is allocated, and a malformed frame is a :class:`FrameError`
(the server maps it to a 400/413 problem, the client to an error naming the lab's answer).

>>> data = encode({"op": "ping"}, [b"ab", b""])
>>> decode(data, max_blobs=4, max_blob_bytes=8)
({'op': 'ping'}, [b'ab', b''])
>>> decode(data[:-1], max_blobs=4, max_blob_bytes=8)
Traceback (most recent call last):
...
lab.shared.frames.FrameError: truncated HE frame
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any

MAGIC = b"LHE1"
MAX_HEADER = 1 << 20
U32 = struct.Struct("<I")


class FrameError(ValueError):
    """A malformed frame; ``too_large`` when a count or a length is over its bound."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def stream(header: dict[str, Any], count: int, blobs: Iterable[bytes]) -> Iterator[bytes]:
    """A frame of ``count`` blobs as chunks (for a streamed request body)."""
    head = json.dumps(header, separators=(",", ":")).encode()
    yield MAGIC + U32.pack(len(head)) + head + U32.pack(count)
    for b in blobs:
        yield U32.pack(len(b))
        yield b


def encode(header: dict[str, Any], blobs: Iterable[bytes]) -> bytes:
    """One whole frame: header and blobs."""
    items = list(blobs)
    return b"".join(stream(header, len(items), items))


def parse_header(raw: bytes) -> dict[str, Any]:
    """The header's JSON object."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FrameError("HE frame header is not JSON") from None
    if not isinstance(header, dict):
        raise FrameError("HE frame header must be a JSON object")
    return header


def decode(data: bytes, *, max_blobs: int, max_blob_bytes: int) -> tuple[dict[str, Any], list[bytes]]:
    """Parse a whole frame held in memory (bounded by ``max_blobs`` × ``max_blob_bytes``)."""
    view = memoryview(data)
    if bytes(view[:4]) != MAGIC:
        raise FrameError("not an HE frame (bad magic)")
    pos = 4

    def u32() -> int:
        nonlocal pos
        if pos + 4 > len(view):
            raise FrameError("truncated HE frame")
        (v,) = U32.unpack_from(view, pos)
        pos += 4
        return int(v)

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(view):
            raise FrameError("truncated HE frame")
        out = bytes(view[pos : pos + n])
        pos += n
        return out

    hlen = u32()
    if hlen > MAX_HEADER:
        raise FrameError("HE frame header too large", too_large=True)
    header = parse_header(take(hlen))
    count = u32()
    if count > max_blobs:
        raise FrameError(f"HE frame holds {count} blobs; at most {max_blobs} expected")
    blobs = []
    for _ in range(count):
        n = u32()
        if n > max_blob_bytes:
            raise FrameError(f"a blob of {n} bytes exceeds the limit of {max_blob_bytes}", too_large=True)
        blobs.append(take(n))
    if pos != len(view):
        raise FrameError("trailing bytes after the HE frame")
    return header, blobs


class BlobDigest:
    """SHA-256 over a sequence of blobs, each prefixed by its length (8 bytes, big-endian).

    >>> d = BlobDigest(); d.update(b"a"); d.hexdigest() == BlobDigest.of([b"a"])
    True
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, blob: bytes) -> None:
        self._h.update(len(blob).to_bytes(8, "big"))
        self._h.update(blob)

    def hexdigest(self) -> str:
        return self._h.hexdigest()

    @classmethod
    def of(cls, blobs: Iterable[bytes]) -> str:
        d = cls()
        for b in blobs:
            d.update(b)
        return d.hexdigest()
