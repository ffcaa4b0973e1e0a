"""The HE frame on the server: typed refusals and a bounded reader of a streamed request body.

The layout, the encoder, the in-memory decoder and the blob digest are :mod:`lab.shared.frames`
(one copy for the client and the server); here a malformed frame becomes a 400 and an oversized one
a 413 problem.

>>> data = encode({"op": "ping"}, [b"ab", b""])
>>> decode(data, max_blobs=4, max_blob_bytes=8)
({'op': 'ping'}, [b'ab', b''])
>>> decode(data, max_blobs=1, max_blob_bytes=8)
Traceback (most recent call last):
...
lab.errors.BadRequest: HE frame holds 2 blobs; at most 1 expected
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lab.errors import BadRequest, LabError, PayloadTooLarge
from lab.shared import frames as wire
from lab.shared.frames import MAGIC, MAX_HEADER, BlobDigest, encode

__all__ = ["MAGIC", "BlobDigest", "StreamReader", "decode", "encode"]
_U32 = wire.U32


def _refusal(exc: wire.FrameError) -> LabError:
    return PayloadTooLarge(str(exc)) if exc.too_large else BadRequest(str(exc))


def decode(data: bytes, *, max_blobs: int, max_blob_bytes: int) -> tuple[dict[str, Any], list[bytes]]:
    """:func:`lab.shared.frames.decode`, refusing with 400/413 problems."""
    try:
        return wire.decode(data, max_blobs=max_blobs, max_blob_bytes=max_blob_bytes)
    except wire.FrameError as exc:
        raise _refusal(exc) from None


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        return wire.parse_header(raw)
    except wire.FrameError as exc:
        raise _refusal(exc) from None


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
