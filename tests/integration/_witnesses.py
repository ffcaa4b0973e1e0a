"""Helpers for witness tests: real witnesses on real ports, and a lab configured to use them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from lab.ledger import checkpoints
from lab.ledger.cosign import Cosigner
from lab.runtime import Runtime
from lab.settings import LedgerSettings, WitnessConfig
from witness.core import Witness
from witness.server import make_server, serve_in_thread

ORIGIN = "lab.test/ledger"


@dataclass
class Running:
    witness: Witness
    server: ThreadingHTTPServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def vkey(self) -> str:
        return self.witness.vkey

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def restart(self) -> None:
        """Serve again on the same port with the same state (after :meth:`stop`)."""
        self.server = make_server(self.witness, "127.0.0.1", self.server.server_port)
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def log_vkey(runtime: Runtime, origin: str = ORIGIN) -> str:
    with runtime.transaction() as s:
        return checkpoints.log_verifier(runtime.ledger(s), origin).vkey


@contextmanager
def witnesses(runtime: Runtime, tmp: Path, n: int = 2) -> Iterator[list[Running]]:
    """``n`` witnesses trusting this lab's log key, each with its own state directory."""
    vkey = log_vkey(runtime)
    out = []
    for i in range(n):
        w = Witness.open(tmp / f"witness{i}", f"witness.test/w{i}", [vkey])
        out.append(Running(w, serve_in_thread(w)))
    try:
        yield out
    finally:
        for r in out:
            r.stop()


def ledger_settings(ws: list[Running], quorum: int | None = None, seconds: float = 5.0) -> LedgerSettings:
    return LedgerSettings(
        origin=ORIGIN,
        witnesses=[WitnessConfig(url=w.url, vkey=w.vkey) for w in ws],
        quorum=len(ws) if quorum is None else quorum,
        cosign_seconds=seconds,
        witness_timeout_seconds=2,
    )


def cosigner(
    runtime: Runtime, ws: list[Running], quorum: int | None = None, seconds: float = 5.0
) -> Cosigner:
    runtime.settings.ledger = ledger_settings(ws, quorum, seconds)
    return Cosigner(runtime.sessions, runtime.settings.encryption_key, runtime.settings.ledger)
