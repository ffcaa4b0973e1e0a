"""Local encryption processes: CKKS batches encrypted in parallel on the operator's machine.

TenSEAL holds the GIL, and encrypting a ciphertext costs the client more than the lab's whole
evaluation of it, so the client encrypts batches in a few helper processes (and serializes them
uncompressed, :mod:`lab.client._wire`). Each is a
fresh interpreter (``python -m lab.client._encrypt FD``, like the lab's own isolated workers: no
``fork`` of a threaded notebook kernel, no re-import of the caller's ``__main__``) on a socket
pair; it receives the secret context once, then batches of float64 columns, and answers their
serialized ciphertexts. The secret key goes to these child processes only — it never leaves the
machine.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import struct
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

_U32 = struct.Struct("<I")


def pack(blobs: list[bytes]) -> bytes:
    """Length-prefixed blobs."""
    return b"".join(part for b in blobs for part in (_U32.pack(len(b)), b))


def unpack(data: bytes) -> list[bytes]:
    out, pos, view = [], 0, memoryview(data)
    while pos < len(data):
        (n,) = _U32.unpack_from(data, pos)
        out.append(bytes(view[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out


class Encryptors:
    """``processes`` encryption processes holding one secret context; :meth:`submit` is thread-safe."""

    def __init__(self, secret: bytes, processes: int) -> None:
        self._idle: queue.Queue[tuple[subprocess.Popen[bytes], Connection]] = queue.Queue()
        self._all: list[tuple[subprocess.Popen[bytes], Connection]] = []
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        for _ in range(processes):
            parent, child = socket.socketpair()
            proc = subprocess.Popen(
                [sys.executable, "-m", "lab.client._encrypt", str(child.fileno())],
                pass_fds=[child.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
            child.close()
            conn = Connection(parent.detach())
            conn.send_bytes(secret)
            self._all.append((proc, conn))
            self._idle.put((proc, conn))
        self._threads = ThreadPoolExecutor(processes, thread_name_prefix="lab-he-encrypt")

    def _run(self, columns: list[np.ndarray]) -> list[bytes]:
        proc, conn = self._idle.get()
        try:
            conn.send_bytes(pack([np.ascontiguousarray(c, dtype="<f8").tobytes() for c in columns]))
            out = unpack(conn.recv_bytes())
        except (EOFError, OSError):
            raise RuntimeError(f"the local encryption process {proc.pid} died") from None
        self._idle.put((proc, conn))
        return out

    def submit(self, columns: list[np.ndarray]) -> Future[list[bytes]]:
        """Encrypt one batch (one ciphertext per column) in a free process."""
        return self._threads.submit(self._run, columns)

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        for proc, conn in self._all:
            with contextlib.suppress(OSError):
                conn.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            if proc.poll() is None:
                proc.kill()


def main(fd: int) -> None:
    """An encryption process: the secret context first, then batches until the parent hangs up."""
    import tenseal as ts

    from lab.client._wire import serialize

    conn = Connection(fd)
    ctx = ts.context_from(conn.recv_bytes())
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        columns = [np.frombuffer(b, dtype="<f8") for b in unpack(data)]
        conn.send_bytes(pack([serialize(ts.ckks_vector(ctx, c)) for c in columns]))


if __name__ == "__main__":
    main(int(sys.argv[1]))
