"""The DP worker processes: errors come back typed, a crash is a 503 and the pool recovers, and the
workers run below the API process's priority."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lab.dp.workers import NICENESS, Workers
from lab.errors import InvalidQuery, Unavailable

pytestmark = pytest.mark.integration


def _refuse(field: str) -> None:
    raise InvalidQuery("the engine refused this", field=field)


def _die() -> None:
    os._exit(3)  # a worker killed mid-query (out of memory, a signal)


def _niceness() -> int:
    return os.nice(0)


@pytest.fixture
def workers() -> Iterator[Workers]:
    pool = Workers(1)
    yield pool
    pool.close()


def test_a_lab_error_in_a_worker_reaches_the_caller_with_its_type_and_fields(workers: Workers) -> None:
    with pytest.raises(InvalidQuery) as caught:
        workers(_refuse, "quantiles")
    assert caught.value.status == 400 and caught.value.extra == {"field": "quantiles"}


def test_a_crashed_worker_is_a_503_and_the_next_request_gets_a_fresh_pool(workers: Workers) -> None:
    with pytest.raises(Unavailable, match="nothing was charged"):
        workers(_die)
    assert workers(pow, 3, 4) == 81


def test_workers_run_below_the_api_process_priority(workers: Workers) -> None:
    assert workers(_niceness) == min(os.nice(0) + NICENESS, 19)
