"""``lab up``: two local witnesses, each its own process with its own key and state directory.

They stand in for the independent parties of a real deployment (a data responsible unit, the
district big-data center): each trusts the lab's log key, keeps its own SQLite state under
``<data_dir>/witnesses/<name>`` and cosigns over the C2SP tlog-witness protocol. The lab API gets
them in ``LAB_LEDGER__WITNESSES`` and gathers their cosignatures in the background.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lab.settings import Settings

NAMES = ("witness-a", "witness-b")


@dataclass
class LocalWitnesses:
    """The running witness processes and the environment that points the lab API at them."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for p in self.processes:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for p in self.processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                os.killpg(p.pid, signal.SIGKILL)


def log_vkey(settings: Settings) -> str:
    """The lab log's verifier key (the database must be migrated)."""
    from lab.ledger import checkpoints
    from lab.runtime import Runtime

    rt = Runtime(settings)
    try:
        with rt.transaction() as s:
            return checkpoints.log_verifier(rt.ledger(s), settings.ledger.origin).vkey
    finally:
        rt.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_witnesses(
    settings: Settings, data_dir: Path, first_port: int, timeout: float = 30
) -> LocalWitnesses:
    """Start the demo's witnesses on ``first_port`` and the next port (free ports elsewhere if those
    are taken); wait until they answer."""
    vkey = log_vkey(settings)
    if not (_port_free(first_port) and _port_free(first_port + 1)):
        from lab.storage.seaweed import free_port_block

        first_port = free_port_block(2, 50000, 55000)
    out = LocalWitnesses()
    configs = []
    for i, name in enumerate(NAMES):
        state = data_dir / "witnesses" / name
        state.mkdir(parents=True, exist_ok=True)
        port = first_port + i
        log = (state / "witness.log").open("ab")
        out.processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "witness",
                    "serve",
                    "--state",
                    str(state),
                    "--name",
                    f"{name}.lab.local",
                    "--log",
                    vkey,
                    "--port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        url = f"http://127.0.0.1:{port}"
        configs.append({"url": url, "vkey": _wait_vkey(url, out.processes[-1], timeout)})
    out.env = {
        "LAB_LEDGER__WITNESSES": json.dumps(configs),
        "LAB_LEDGER__QUORUM": os.environ.get("LAB_LEDGER__QUORUM", str(len(configs))),
    }
    return out


def _wait_vkey(url: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"witness at {url} exited ({process.returncode})")
        try:
            r = httpx.get(f"{url}/vkey", timeout=2)
            if r.status_code == 200:
                return r.text.strip()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"witness at {url} did not start within {timeout:.0f} s")
