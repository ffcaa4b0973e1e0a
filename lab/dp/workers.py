"""DP compute off the request-serving process: a bounded pool of low-priority worker processes.

A DP query's engine work (DuckDB over the bounded Parquet, then the mechanisms) is CPU-bound and
holds the GIL for long stretches; run in the API process it slows every other request. The
service (:mod:`lab.dp.service`) therefore builds a :class:`Job` — plain, picklable inputs read in a
short read transaction — and hands it to :meth:`Workers.run`, which computes it in a separate
process and returns the noisy values. Nothing is charged or written until the caller commits the
result, so a worker that fails or crashes costs the caller nothing.

Workers run at a lower CPU priority (``nice``) than the API process, so light requests keep their
latency while heavy ones compute. They fork from a ``forkserver`` that imported the DP modules once,
so a pool (one per API app) starts in milliseconds rather than re-importing DuckDB and diffprivlib.
A crashed worker (out of memory, killed) breaks the pool; the pool is rebuilt and the request fails
with :class:`~lab.errors.Unavailable` (503).

>>> inline(pow, 2, 10)
1024
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from lab.dp.plan import QueryPlan, TrainPlan
from lab.dp.release import AggRelease, Value
from lab.errors import Unavailable

T = TypeVar("T")

#: ``nice`` increment of worker processes: the API process is scheduled first.
NICENESS = 10


class Offload(Protocol):
    """Runs ``fn(*args)`` somewhere (in this thread, or in a worker process) and returns its value."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> T: ...


def inline(fn: Callable[..., T], /, *args: Any) -> T:
    """The trivial :class:`Offload`: compute here (tests with seeded noise, the CLI, benches)."""
    return fn(*args)


@dataclass(frozen=True)
class Source:
    """Where a job's rows come from: the verified Parquet of a version and its contribution bound."""

    cache_dir: Path
    salt: str
    parquet: Path
    sha256: str
    entity_key: str
    columns: list[str]
    rows_per_entity: int
    cohort: pa.Array | None = None

    def bounded(self) -> Path:
        """The Parquet file with at most ``rows_per_entity`` rows per entity (cached per version)."""
        from lab.dp.engine import DuckEngine

        engine = DuckEngine.shared(self.cache_dir, self.salt)
        return engine.bounded(self.parquet, self.sha256, self.entity_key, self.columns, self.rows_per_entity)


def query_job(
    source: Source, plan: QueryPlan, rng: np.random.RandomState | None = None
) -> tuple[list[Value], list[AggRelease]]:
    """Exact aggregates of ``plan`` over ``source``, noised; runs in a worker (nothing charged here)."""
    from lab.dp.engine import DuckEngine
    from lab.dp.release import describe, release

    exact = DuckEngine.shared(source.cache_dir, source.salt).aggregate(plan, source.bounded(), source.cohort)
    return release(plan, exact, rng), describe(plan)


def training_job(
    source: Source, plan: TrainPlan, max_rows: int, shown_rows: int, rng: np.random.RandomState | None = None
) -> dict[str, Any]:
    """Rows of ``plan`` over ``source`` and the fitted DP model's parameters; runs in a worker."""
    from lab.dp.engine import DuckEngine
    from lab.dp.training import fit

    engine = DuckEngine.shared(source.cache_dir, source.salt)
    x, y = engine.training_rows(plan, source.bounded(), source.cohort, max_rows, shown_rows)
    return fit(plan, x, y, rng)


def _lower_priority() -> None:
    os.nice(NICENESS)


#: Imported once by the fork server, so a new worker starts in milliseconds with the engine loaded.
PRELOAD = ["lab.dp.workers", "lab.dp.engine", "lab.dp.release", "lab.dp.training"]


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver``: workers fork from a single-threaded server process that preloaded the DP
    modules (never from the threaded API process); ``spawn`` where there is no fork."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class Workers:
    """A pool of ``size`` DP worker processes (spawned on first use; rebuilt after a crash)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.size, mp_context=_context(), initializer=_lower_priority
                )
            return self._pool

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(*args)`` in a worker process; :class:`Unavailable` if the worker died."""
        pool = self._executor()
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise Unavailable(
                "a DP worker process died; nothing was charged — run the request again"
            ) from None

    def close(self) -> None:
        """Stop the workers (the next call starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
