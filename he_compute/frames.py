"""The binary container of the HE channel: a JSON header and length-prefixed blobs.

Layout (all integers little-endian)::

    b"LHE1"  u32 header_len  header (UTF-8 JSON object)
    u32 n_blobs
    n_blobs × ( u32 len  bytes )

It carries ciphertexts between the client and the API, and tasks and results between the API
and its isolated workers (never pickle: a worker that parsed hostile input is not trusted to
send objects back). Readers are bounded: they refuse counts and lengths over the caller's limits
before allocating anything.

>>> data = encode({"op": "ping"}, [b"ab", b""])
>>> decode(data, max_blobs=4, max_blob_bytes=8)
({'op': 'ping'}, [b'ab', b''])
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import AsyncIterator, Iterable
from typing import Any

from lab.errors import BadRequest, PayloadTooLarge

MAGIC = b"LHE1"
MAX_HEADER = 1 << 20
_U32 = struct.Struct("<I")


def encode(header: dict[str, Any], blobs: Iterable[bytes]) -> bytes:
    """One frame: header and blobs."""
    items = list(blobs)
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [MAGIC, _U32.pack(len(head)), head, _U32.pack(len(items))]
    for b in items:
        parts += [_U32.pack(len(b)), b]
    return b"".join(parts)


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


def decode(data: bytes, *, max_blobs: int, max_blob_bytes: int) -> tuple[dict[str, Any], list[bytes]]:
    """Parse a whole frame held in memory (bounded by ``max_blobs`` × ``max_blob_bytes``)."""
    view = memoryview(data)
    if bytes(view[:4]) != MAGIC:
        raise BadRequest("not an HE frame (bad magic)")
    pos = 4

    def u32() -> int:
        nonlocal pos
        if pos + 4 > len(view):
            raise BadRequest("truncated HE frame")
        (v,) = _U32.unpack_from(view, pos)
        pos += 4
        return int(v)

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(view):
            raise BadRequest("truncated HE frame")
        out = bytes(view[pos : pos + n])
        pos += n
        return out

    hlen = u32()
    if hlen > MAX_HEADER:
        raise PayloadTooLarge("HE frame header too large")
    header = _parse_header(take(hlen))
    count = u32()
    if count > max_blobs:
        raise BadRequest(f"HE frame holds {count} blobs; at most {max_blobs} expected")
    blobs = []
    for _ in range(count):
        n = u32()
        if n > max_blob_bytes:
            raise PayloadTooLarge(f"a blob of {n} bytes exceeds the limit of {max_blob_bytes}")
        blobs.append(take(n))
    if pos != len(view):
        raise BadRequest("trailing bytes after the HE frame")
    return header, blobs


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("HE frame header is not JSON") from None
    if not isinstance(header, dict):
        raise BadRequest("HE frame header must be a JSON object")
    return header


class StreamReader:
    """Reads a frame incrementally from an async byte stream (an HTTP request body).

    The total number of bytes received is capped at ``max_total`` (set it once the header told
    how much to expect; reading the header itself buffers at most one chunk beyond it); each blob
    is capped at ``max_blob_bytes``.
    """

    def __init__(self, stream: AsyncIterator[bytes], *, max_total: int, max_blob_bytes: int) -> None:
        self._it = stream.__aiter__()
        self._buf = bytearray()
        self._eof = False
        self.total = 0  # bytes received
        self.consumed = 0  # bytes parsed
        self.max_total, self.max_blob_bytes = max_total, max_blob_bytes

    async def _fill(self, n: int) -> None:
        while len(self._buf) < n and not self._eof:
            try:
                chunk = await self._it.__anext__()
            except StopAsyncIteration:
                self._eof = True
                break
            self.total += len(chunk)
            if self.total > self.max_total:
                raise PayloadTooLarge(f"request body exceeds {self.max_total} bytes")
            self._buf += chunk
        if len(self._buf) < n:
            raise BadRequest("truncated HE frame")

    async def _take(self, n: int) -> bytes:
        await self._fill(n)
        with memoryview(self._buf) as view:  # one copy (a bytearray slice would be a second)
            out = bytes(view[:n])
        del self._buf[:n]
        self.consumed += n
        return out

    async def _u32(self) -> int:
        (v,) = _U32.unpack(await self._take(4))
        return int(v)

    async def start(self) -> tuple[dict[str, Any], int]:
        """Read the magic, the header and the blob count."""
        if await self._take(4) != MAGIC:
            raise BadRequest("not an HE frame (bad magic)")
        hlen = await self._u32()
        if hlen > MAX_HEADER:
            raise PayloadTooLarge("HE frame header too large")
        header = _parse_header(await self._take(hlen))
        return header, await self._u32()

    async def blob(self) -> bytes:
        n = await self._u32()
        if n > self.max_blob_bytes:
            raise PayloadTooLarge(f"a ciphertext of {n} bytes exceeds the limit of {self.max_blob_bytes}")
        return await self._take(n)

    async def drain(self) -> None:
        """Read and discard the rest of the body (so that an early refusal reaches the client cleanly)."""
        self._buf.clear()
        while not self._eof:
            try:
                chunk = await self._it.__anext__()
            except StopAsyncIteration:
                self._eof = True
                break
            self.total += len(chunk)
            if self.total > self.max_total:
                return

    async def finish(self) -> None:
        """Require the end of the body."""
        if self._buf:
            raise BadRequest("trailing bytes after the HE frame")
        while not self._eof:
            try:
                chunk = await self._it.__anext__()
            except StopAsyncIteration:
                self._eof = True
                break
            if chunk:
                raise BadRequest("trailing bytes after the HE frame")
