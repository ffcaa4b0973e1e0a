"""Admission control: heavy DP work runs in a bounded pool, light requests stay fast.

Heavy requests (DP queries, previews, table releases, training) are admitted per caller, per project
and overall, by count and by an estimated cost (:func:`lab.dp.plan.estimated_cost`: cells ×
aggregations × rows). Past a limit the caller gets :class:`~lab.errors.Busy` (429 with
``Retry-After``) at once, never a queue that grows without bound. Admitted work runs in a
:class:`~concurrent.futures.ThreadPoolExecutor` of ``settings.admission.workers`` threads — apart from
the thread pool that serves every other (light) request — so however many heavy requests arrive,
at most that many compute at a time. Those threads only coordinate: the CPU work runs in as many
low-priority worker processes (:class:`lab.dp.workers.Workers`), so it neither holds the API
process's GIL nor outruns its scheduling. A failing request frees its slot in ``finally``: an error,
whatever its kind, cannot keep capacity from others.

>>> adm = Admission(AdmissionSettings(per_caller=1))
>>> with adm.admit("alice", "p1", 10.0):
...     adm.admit("alice", "p2", 10.0).__enter__()
Traceback (most recent call last):
...
lab.errors.Busy: alice already has 1 heavy request(s) in flight; retry in 5 s
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from lab.dp.workers import Workers
from lab.errors import Busy
from lab.settings import AdmissionSettings

T = TypeVar("T")


class Admission:
    """Counters of heavy work in flight and the pool that runs it (one per API process)."""

    def __init__(self, cfg: AdmissionSettings) -> None:
        self.cfg = cfg
        self.pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="lab-heavy")
        self.workers = Workers(cfg.workers)  # the processes that compute (lab.dp.workers)
        self._lock = threading.Lock()
        self._callers: Counter[str] = Counter()
        self._projects: Counter[str] = Counter()
        self._count = 0
        self._cost = 0.0

    def _refuse(self, why: str) -> Busy:
        return Busy(f"{why}; retry in {self.cfg.retry_after} s", retry_after=self.cfg.retry_after)

    @contextmanager
    def admit(self, caller: str, project: str, cost: float) -> Iterator[None]:
        """Hold a slot for one heavy request, or raise :class:`Busy` (429) at once."""
        cfg = self.cfg
        with self._lock:
            if self._callers[caller] >= cfg.per_caller:
                raise self._refuse(f"{caller} already has {self._callers[caller]} heavy request(s) in flight")
            if self._projects[project] >= cfg.per_project:
                raise self._refuse(f"project {project} already has {self._projects[project]} heavy requests")
            if self._count >= cfg.max_in_flight or (self._count and self._cost + cost > cfg.max_cost):
                raise self._refuse("the lab is busy with heavy queries")
            self._callers[caller] += 1
            self._projects[project] += 1
            self._count += 1
            self._cost += cost
        try:
            yield
        finally:
            with self._lock:
                self._callers[caller] -= 1
                self._projects[project] -= 1
                self._count -= 1
                self._cost -= cost
                self._callers += Counter()  # drop zero counts
                self._projects += Counter()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the heavy pool; the event loop and the light pool stay free."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    def close(self) -> None:
        """Stop the pool's threads and worker processes."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.workers.close()
