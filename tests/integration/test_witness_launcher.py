"""``lab up``'s witnesses: two separate processes with their own keys and state, and the lab's settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from lab.launcher.witnesses import start_witnesses
from lab.ledger.cosign import Cosigner
from lab.runtime import Runtime
from lab.settings import Settings
from lab.storage.seaweed import free_port_block


def test_demo_witnesses_run_as_processes_and_cosign(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.transaction() as s:
        runtime.ledger(s).append("psi.key_epoch", {"epoch": 1}, actor="sweep")
    port = free_port_block(2, 45000, 50000)
    ws = start_witnesses(runtime.settings, tmp_path, port)
    try:
        assert len(set(ws.pids)) == 2 and os.getpid() not in ws.pids
        for k, v in ws.env.items():
            monkeypatch.setenv(k, v)
        cfg = Settings().ledger  # the API process reads exactly this environment
        assert [w.url for w in cfg.witnesses] == [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
        assert len({w.vkey for w in cfg.witnesses}) == 2 and cfg.quorum == 2
        assert (tmp_path / "witnesses" / "witness-a" / "witness.key").exists()
        assert (tmp_path / "witnesses" / "witness-b" / "witness.sqlite").exists()
        cs = Cosigner(runtime.sessions, runtime.settings.encryption_key, cfg)
        try:
            outcome = cs.run_once()
            assert sorted(outcome.values()) == ["cosigned size 1", "cosigned size 1"], outcome
            assert sorted(cs.run_once().values()) == ["up to date", "up to date"]
            # the lab forgets what the witnesses hold: a 409 tells it, and it resubmits from there
            with runtime.transaction() as s:
                s.execute(text("DELETE FROM ledger_witnesses"))
                runtime.ledger(s).append("psi.key_epoch", {"epoch": 2}, actor="sweep")
            assert sorted(cs.run_once().values()) == ["cosigned size 2", "cosigned size 2"]
        finally:
            cs.stop()
    finally:
        ws.stop()
    assert all(p.poll() is not None for p in ws.processes)
