"""The ledger page warns when witnesses fall behind, not while the newest entries wait for a round."""

from __future__ import annotations

import datetime as dt

from lab.ledger.cosign import WitnessStatus, grace_seconds, quorum_met, quorum_pending
from lab.settings import LedgerSettings

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def w(size: int, ok_ago: float | None, error: str | None = None, log: int = 100) -> WitnessStatus:
    at = None if ok_ago is None else NOW - dt.timedelta(seconds=ok_ago)
    return WitnessStatus("w", "http://w", "vkey", size, log - size, at, error)


def test_a_busy_log_is_pending_an_outage_is_missing() -> None:
    grace = grace_seconds(LedgerSettings())
    assert grace == 30.0  # three rounds of 5 s plus a 5 s timeout
    current = [w(100, 1), w(100, 1)]
    assert quorum_met(current, 2, 100) and not quorum_pending(current, 2, 100, grace, NOW)
    busy = [w(97, 2), w(98, 1)]  # cosigned moments ago; three entries since
    assert not quorum_met(busy, 2, 100) and quorum_pending(busy, 2, 100, grace, NOW)
    down = [w(98, 1), w(40, 2, "unreachable: connection refused")]  # an error since its last cosignature
    assert not quorum_pending(down, 2, 100, grace, NOW)
    stale = [w(98, 1), w(40, grace + 1)]  # silent for longer than the grace
    assert not quorum_pending(stale, 2, 100, grace, NOW)
    never = [w(98, 1), w(0, None)]
    assert not quorum_pending(never, 2, 100, grace, NOW)
    assert quorum_pending([w(98, 1), w(40, None, "HTTP 422")], 1, 100, grace, NOW)  # 1 of 2 suffices
