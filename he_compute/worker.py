"""The isolated worker pool: the only place operator contexts and ciphertexts are parsed and evaluated.

Each worker is a fresh interpreter (``python -m he_compute.worker``, nothing inherited from the
API but one socket) that sets its own
``RLIMIT_AS`` (memory) and disables core dumps, then answers tasks over a pipe. Tasks and
replies are :mod:`he_compute.frames` (JSON header + byte blobs), never pickle: a worker that has
parsed hostile input is not trusted to send objects back, and its replies are size-bounded.

The parent (:class:`WorkerPool`) hands a task to an idle worker and waits at most
``task_seconds``. Outcomes:

* the worker answers with an error → :class:`HeInputRejected` (400), the worker stays;
* it runs out of memory → it reports and exits → :class:`WorkerMemoryExceeded` (413);
* it dies (segfault, abort, killed) → :class:`WorkerCrashed` (400: "your input crashed the worker");
* it does not answer in time → it is killed → :class:`WorkerTimeout` (503);
* no worker is free within ``queue_seconds`` → :class:`WorkerBusy` (503).

A dead or killed worker is replaced at once, so the pool — and the API — keeps answering.
Workers cache a few parsed contexts by SHA-256; the parent mirrors each worker's cache and sends
the context bytes only to a worker that lacks them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from he_compute import frames
from lab.errors import BadRequest, PayloadTooLarge, Unavailable

MEMORY_EXIT = 70


class HeInputRejected(BadRequest):
    code, title = "he-input-rejected", "Encrypted input rejected"


class WorkerCrashed(BadRequest):
    code, title = "he-worker-crashed", "The input crashed the isolated worker"


class WorkerMemoryExceeded(PayloadTooLarge):
    code, title = "he-memory", "Encrypted computation exceeds the memory limit"


class WorkerTimeout(Unavailable):
    code, title = "he-timeout", "Encrypted computation timed out"


class WorkerBusy(Unavailable):
    code, title = "he-busy", "All homomorphic workers are busy"


class WorkerLimits(BaseSettings):
    """Limits of the HE worker pool (``LAB_HE_*`` environment variables)."""

    model_config = SettingsConfigDict(env_prefix="LAB_HE_", extra="ignore")

    processes: int = Field(2, ge=1, le=64, description="worker processes")
    memory_bytes: int = Field(3 << 30, ge=256 << 20, description="RLIMIT_AS of each worker")
    task_seconds: float = Field(120.0, gt=0, description="longest one task (one batch) may run")
    queue_seconds: float = Field(30.0, ge=0, description="longest a task waits for a free worker")
    max_message_bytes: int = Field(256 << 20, ge=1 << 20, description="largest task or reply")
    context_cache: int = Field(4, ge=1, le=64, description="parsed contexts each worker keeps")
    max_records: int = Field(2_000_000, ge=1, description="most records one score or lookup call carries")
    max_open_calls_per_caller: int = Field(
        4, ge=1, description="multi-part calls one caller may hold open at once, all projects (429 past it)"
    )
    max_open_calls_per_project: int = Field(
        8, ge=1, description="multi-part calls one project's members may hold open at once (429 past it)"
    )


# ---- worker process --------------------------------------------------------------------------


def _serve(conn: Connection, memory_bytes: int, max_message_bytes: int, cache_size: int) -> None:
    """Worker main loop (runs in the spawned process)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    from he_compute import _evaluate

    cache: OrderedDict[str, Any] = OrderedDict()
    while True:
        try:
            data = conn.recv_bytes(max_message_bytes)
        except (EOFError, OSError):
            return
        try:
            header, blobs = frames.decode(data, max_blobs=1 << 20, max_blob_bytes=max_message_bytes)
            del data
            out_header, out_blobs = _evaluate.handle(header, blobs, cache, cache_size)
            reply = frames.encode({"ok": True, "cached": list(cache), **out_header}, out_blobs)
        except MemoryError:
            with contextlib.suppress(Exception):
                conn.send_bytes(frames.encode({"ok": False, "kind": "memory", "detail": "out of memory"}, []))
            os._exit(MEMORY_EXIT)
        except Exception as exc:  # any parse or evaluation failure is the input's fault
            detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
            reply = frames.encode(
                {"ok": False, "kind": "input", "detail": detail[:300], "cached": list(cache)}, []
            )
        conn.send_bytes(reply)


# ---- parent side -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    cached: set[str] = field(default_factory=set)


class WorkerPool:
    """A fixed-size pool of isolated worker processes.

    >>> # pool = WorkerPool(WorkerLimits(processes=2))
    >>> # header, blobs = pool.run({"op": "ping"}, [])
    """

    def __init__(self, limits: WorkerLimits | None = None) -> None:
        self.limits = limits or WorkerLimits()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.crashes = 0
        self.timeouts = 0
        for _ in range(self.limits.processes):
            self._idle.put(self._spawn())

    @property
    def size(self) -> int:
        return self.limits.processes

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and monitoring)."""
        with self._lock:
            return [w.process.pid for w in self._all]

    def _spawn(self) -> _Worker:
        """Start one worker: a fresh interpreter (``python -m he_compute.worker``) on a socket pair."""
        parent, child = socket.socketpair()
        lim = self.limits
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "he_compute.worker",
                str(child.fileno()),
                str(lim.memory_bytes),
                str(lim.max_message_bytes),
                str(lim.context_cache),
            ],
            pass_fds=[child.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
        child.close()
        w = _Worker(proc, Connection(parent.detach()))
        with self._lock:
            self._all.add(w)
        return w

    def _retire(self, w: _Worker, *, kill: bool) -> None:
        with self._lock:
            self._all.discard(w)
        if kill and w.process.poll() is None:
            w.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.process.wait(5)
        with contextlib.suppress(OSError):
            w.conn.close()
        if not self._closed:
            self._idle.put(self._spawn())

    def run(
        self,
        header: dict[str, Any],
        blobs: list[bytes],
        context: tuple[str, bytes] | None = None,
    ) -> tuple[dict[str, Any], list[bytes]]:
        """Run one task; ``context`` = (sha256, bytes) is sent only to a worker that lacks it."""
        if self._closed:
            raise Unavailable("the HE worker pool is shut down")
        size = sum(map(len, blobs)) + (len(context[1]) if context else 0) + (1 << 16)
        if size > self.limits.max_message_bytes:
            raise PayloadTooLarge(f"an HE task of {size} bytes exceeds the worker limit")
        try:
            w = self._idle.get(timeout=self.limits.queue_seconds)
        except queue.Empty:
            raise WorkerBusy(
                f"all {self.size} HE workers stayed busy for {self.limits.queue_seconds:g}s; retry later"
            ) from None
        try:
            out, out_blobs = self._exchange(w, header, blobs, context)
        except (WorkerCrashed, WorkerTimeout, WorkerMemoryExceeded):
            raise  # that worker was retired and replaced
        except BaseException:
            self._retire(w, kill=True)  # state unknown: replace it
            raise
        self._idle.put(w)
        if not out.get("ok"):
            raise HeInputRejected(f"the encrypted input was rejected: {out.get('detail', 'invalid input')}")
        return out, out_blobs

    def _exchange(
        self, w: _Worker, header: dict[str, Any], blobs: list[bytes], context: tuple[str, bytes] | None
    ) -> tuple[dict[str, Any], list[bytes]]:
        inline = context is not None and context[0] not in w.cached
        task = dict(header, ctx=context[0] if context else None, ctx_inline=inline)
        payload = frames.encode(task, ([context[1]] if inline and context else []) + blobs)
        try:
            w.conn.send_bytes(payload)
            del payload
            if not w.conn.poll(self.limits.task_seconds):
                self.timeouts += 1
                self._retire(w, kill=True)
                raise WorkerTimeout(
                    f"the encrypted computation took longer than {self.limits.task_seconds:g}s "
                    "and was stopped"
                )
            data = w.conn.recv_bytes(self.limits.max_message_bytes)
        except (EOFError, OSError):
            self.crashes += 1
            self._retire(w, kill=True)
            raise WorkerCrashed(
                "the isolated worker died while parsing or evaluating this input; nothing was charged"
            ) from None
        try:
            out, out_blobs = frames.decode(
                data, max_blobs=1 << 16, max_blob_bytes=self.limits.max_message_bytes
            )
        except Exception:
            self._retire(w, kill=True)
            raise WorkerCrashed("the isolated worker sent a malformed reply; it was replaced") from None
        w.cached = set(out.get("cached") or [])
        if out.get("kind") == "memory":
            self._retire(w, kill=True)
            raise WorkerMemoryExceeded(
                "the encrypted computation exceeded the worker memory limit "
                f"({self.limits.memory_bytes} bytes)"
            )
        return out, out_blobs

    def close(self) -> None:
        """Stop every worker."""
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            with contextlib.suppress(OSError):
                w.conn.close()
            if w.process.poll() is None:
                w.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.process.wait(5)


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> WorkerPool:
    """The process-wide pool, started on first use with :class:`WorkerLimits` from the environment."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._closed:
            _POOL = WorkerPool()
        return _POOL


def set_pool(pool: WorkerPool | None) -> WorkerPool | None:
    """Replace the process-wide pool (e.g. with other limits); returns the previous one (not closed)."""
    global _POOL
    with _POOL_LOCK:
        previous, _POOL = _POOL, pool
        return previous


@atexit.register
def _shutdown() -> None:
    if _POOL is not None:
        _POOL.close()


def main(argv: list[str]) -> None:
    """Entry point of a worker process: ``python -m he_compute.worker FD MEMORY MAX_MESSAGE CACHE``."""
    fd, memory, max_message, cache = (int(a) for a in argv)
    _serve(Connection(fd), memory, max_message, cache)


if __name__ == "__main__":
    main(sys.argv[1:])
