"""EC work of the PSI protocol, split into chunks and run in a pool of worker processes.

openmined-psi's calls are single-threaded and hold the GIL, so the lab parallelizes them across
processes: every worker rebuilds the same server (or client) object from the key bytes
(``CreateFromKey``) and handles one slice of the items. What is parallelized, exactly:

* server-set encryption (setup): ``CreateSetupMessage(..., RAW)`` on slices → encrypted elements;
* request processing: ``ProcessRequest`` on slices of the client's encrypted elements;
* the lab's own request in cohort mode: ``CreateRequest`` on slices of its column;
* the batched DLEQ composites of cohort mode (prover and verifier), on slices of one batch;
* the lab's intersection in cohort mode: ``GetIntersection`` on slices of the operator's response
  (operator-supplied bytes are parsed only in workers, so a malformed message cannot take the API
  process down: a crashed or stuck worker is replaced and the call fails with a 400).

Slices keep their order, so concatenating the results gives exactly the single-call answer.
The pool is created lazily (``spawn`` start method: safe in a threaded server) and reused.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


class WorkerFailed(Exception):
    """A worker raised, crashed or timed out; ``reason`` says which (no operator data in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- worker functions (top-level so that they pickle) ----------------------------------------


def normalize_chunk(kind: str, values: Sequence[object]) -> list[str | None]:
    """Canonical identifiers of a slice of a column (None where invalid)."""
    from psi_service.normalize import canonical

    return canonical(values, kind)


def encrypt_server_chunk(key: bytes, items: Sequence[str]) -> list[bytes]:
    """The server's encryption of ``items`` (what ``CreateSetupMessage`` packs), in sorted order."""
    import private_set_intersection.python as psi

    server = psi.server.CreateFromKey(key, False)
    setup = server.CreateSetupMessage(0.5, 1, list(items), psi.DataStructure.RAW)
    return list(setup.raw.encrypted_elements)


def process_request_chunk(key: bytes, reveal: bool, elements: Sequence[bytes]) -> list[bytes]:
    """``ProcessRequest`` on a slice of a client's encrypted elements (order kept when ``reveal``)."""
    import private_set_intersection.python as psi

    request = psi.Request()
    request.reveal_intersection = reveal
    request.encrypted_elements.extend(elements)
    try:
        response = psi.server.CreateFromKey(key, reveal).ProcessRequest(request)
    except RuntimeError as exc:
        raise ValueError(f"request rejected by the PSI library: {str(exc)[:200]}") from None
    return list(response.encrypted_elements)


def create_request_chunk(key: bytes, reveal: bool, items: Sequence[str]) -> list[bytes]:
    """A client's encrypted elements for ``items`` (order kept)."""
    import private_set_intersection.python as psi

    client = psi.client.CreateFromKey(key, reveal)
    return list(client.CreateRequest(list(items)).encrypted_elements)


def intersect_chunk(key: bytes, setup: bytes, elements: Sequence[bytes], reveal: bool) -> bytes | int:
    """On a response slice: a match mask (one byte per element) if ``reveal``, else the match count."""
    import private_set_intersection.python as psi

    server_setup = psi.ServerSetup()
    server_setup.ParseFromString(setup)
    response = psi.Response()
    response.encrypted_elements.extend(elements)
    client = psi.client.CreateFromKey(key, reveal)
    try:
        if not reveal:
            return int(client.GetIntersectionSize(server_setup, response))
        mask = bytearray(len(elements))
        for i in client.GetIntersection(server_setup, response):
            mask[i] = 1
        return bytes(mask)
    except RuntimeError as exc:
        raise ValueError(f"response rejected by the PSI library: {str(exc)[:200]}") from None


def dleq_chunk(bm: bytes, with_z: bool, items: Sequence[tuple[int, bytes, bytes]]) -> bytes:
    """Partial DLEQ composites of a slice (``psi_service.dleq.partial_composites``)."""
    from psi_service.dleq import partial_composites

    return partial_composites(bm, items, with_z)


# --- the pool ---------------------------------------------------------------------------------


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
            _pool_size = workers
        return _pool


def reset_pool() -> None:
    """Terminate the workers (after a crash or a timeout); the next call starts fresh ones."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)


atexit.register(reset_pool)


def slices(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, nearly equal ``(start, stop)`` ranges covering ``range(n)``.

    >>> slices(10, 3)
    [(0, 4), (4, 7), (7, 10)]
    """
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def run_chunked(
    fn: Callable[..., T],
    items: Sequence[Any],
    *args: Any,
    workers: int,
    min_items: int,
    timeout: float,
    tail: tuple[Any, ...] = (),
    isolate: bool = False,
) -> list[T]:
    """``[fn(*args, items[a:b], *tail) for each slice]``, in worker processes when worth it.

    With one worker or fewer than ``min_items`` items the call runs here, in one slice, unless
    ``isolate`` (operator-supplied bytes): then it always runs in a worker process.
    Raises :class:`WorkerFailed` if any slice fails.
    """
    if not isolate and (workers <= 1 or len(items) < min_items):
        try:
            return [fn(*args, items, *tail)]
        except ValueError as exc:
            raise WorkerFailed(str(exc)) from None
    pool = _get_pool(max(1, workers))
    # a few slices per worker keeps the cores busy when slices take unequal time
    ranges = slices(len(items), 1 if len(items) < min_items else max(1, workers) * 2)
    futures: list[Future[T]] = []
    try:
        futures = [pool.submit(fn, *args, items[a:b], *tail) for a, b in ranges]
        return [f.result(timeout=timeout) for f in futures]
    except ValueError as exc:
        raise WorkerFailed(str(exc)) from None
    except BrokenProcessPool:
        reset_pool()
        raise WorkerFailed("a PSI worker process crashed on this input") from None
    except TimeoutError:
        reset_pool()
        raise WorkerFailed(f"a PSI worker took longer than {timeout:.0f} s") from None
    finally:
        for f in futures:
            f.cancel()
