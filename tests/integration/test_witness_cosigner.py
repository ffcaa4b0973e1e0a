"""The lab's cosigner against real witnesses: a fresh (empty) log, and a log that lost entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from lab.ledger.cosign import witness_status
from lab.runtime import Runtime
from lab.shared import merkle
from tests.integration._witnesses import ORIGIN, cosigner, witnesses

pytestmark = pytest.mark.integration


def _append(runtime: Runtime, n: int) -> None:
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        for i in range(n):
            ledger.append("psi.key_epoch", {"epoch": i}, actor="sweep")


def test_a_fresh_lab_s_empty_checkpoint_then_its_growth_are_cosigned(
    runtime: Runtime, tmp_path: Path
) -> None:
    with witnesses(runtime, tmp_path) as ws:
        cs = cosigner(runtime, ws)
        try:
            assert sorted(cs.run_once().values()) == ["cosigned size 0"] * 2  # `lab up` on a new install
            _append(runtime, 4)
            assert sorted(cs.run_once().values()) == ["cosigned size 4"] * 2
            _append(runtime, 3)
            assert sorted(cs.run_once().values()) == ["cosigned size 7"] * 2
            for w in ws:
                assert w.witness.state.evidence() == []
                assert w.witness.state.held(ORIGIN).size == 7  # type: ignore[union-attr]
        finally:
            cs.stop()


def _truncate(runtime: Runtime, size: int) -> None:
    """An insider deletes the log's tail and resets the log state to match."""
    with runtime.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE idx >= :n"), {"n": size})
        leaves = [
            bytes.fromhex(h)
            for h in conn.execute(text("SELECT leaf_hash FROM ledger_entries ORDER BY idx")).scalars()
        ]
        frontier = merkle.Frontier()
        for h in leaves:
            frontier.append(h)
        conn.execute(
            text("UPDATE ledger_state SET size=:n, frontier=:f WHERE id=1"),
            {"n": size, "f": json.dumps(frontier.to_hex())},
        )
        for table in ("ledger_tree_heads", "ledger_checkpoints", "ledger_cosignatures"):
            conn.execute(text(f"DELETE FROM {table}"))


def test_a_witness_ahead_of_the_log_is_reported_not_taken_for_up_to_date(
    runtime: Runtime, tmp_path: Path
) -> None:
    _append(runtime, 10)
    with witnesses(runtime, tmp_path) as ws:
        cs = cosigner(runtime, ws)
        try:
            assert sorted(cs.run_once().values()) == ["cosigned size 10"] * 2
            _truncate(runtime, 6)
            with runtime.engine.begin() as conn:  # the lab also forgets one witness's size (409 path)
                conn.execute(
                    text("DELETE FROM ledger_witnesses WHERE name = :n"), {"n": ws[1].witness.signer.name}
                )
            outcome = cs.run_once()
            for w in ws:
                said = outcome[w.witness.signer.name]
                assert "size 10 but the log has only 6 entries: entries were removed" in said, outcome
                assert w.witness.state.held(ORIGIN).size == 10  # type: ignore[union-attr]
            with runtime.transaction() as s:
                st = witness_status(s, runtime.settings.ledger, 6)
            assert all(x.last_error and "entries were removed" in x.last_error for x in st), st
        finally:
            cs.stop()
