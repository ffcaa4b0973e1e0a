"""A witness that hangs or is down never blocks appends or a channel's result; the bureau is warned; it
catches up later."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lab.dp import service as dp_service
from lab.dp.spec import QuerySpec
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from lab.web import auth
from tests.conftest import HubHandle
from tests.integration._dp import ALICE, dp_project, import_dp_sample
from tests.integration._witnesses import ORIGIN, Running, ledger_settings, witnesses
from witness.server import make_server

pytestmark = [pytest.mark.integration, pytest.mark.hub]
P = "/services/lab-api"


class Hanging:
    """Accepts connections on a port and never answers (a witness that hangs)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() so the port is released
        self.sock.close()


def _append(runtime: Runtime, n: int) -> None:
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        for i in range(n):
            ledger.append("derived.record", {"project": "p", "record": f"r{i}"}, actor="alice")


def _status(api: TestClient) -> dict[str, Any]:
    r = api.get(f"{P}/api/v1/ledger/witnesses")  # public: no token
    assert r.status_code == 200
    return dict(r.json())


@pytest.fixture
def lab(runtime: Runtime, hub: HubHandle, tmp_path: Path) -> Iterator[tuple[TestClient, list[Running]]]:
    from lab.api.main import create_app

    import_dp_sample(runtime, ("population",))  # a channel to run while a witness hangs
    _append(runtime, 3)
    with witnesses(runtime, tmp_path) as ws:
        runtime.settings.hub = hub.settings
        runtime._hub = None
        runtime.settings.ledger = ledger_settings(ws, quorum=2, seconds=0.3)
        ws[1].stop()  # the second witness goes down before the lab starts
        with TestClient(create_app(runtime=runtime)) as client:
            yield client, ws


def test_a_hanging_witness_blocks_no_append_warns_and_catches_up(
    lab: tuple[TestClient, list[Running]], runtime: Runtime, hub: HubHandle
) -> None:
    api, ws = lab
    port = ws[1].server.server_port
    hang = Hanging(port)
    try:
        _append(runtime, 2)
        assert hang.accepted.wait(10), "the cosigner never tried the hanging witness"
        # the cosigner is now stuck waiting on the witness: appends and channel results go on regardless
        for _ in range(5):
            _append(runtime, 10)
        project = dp_project(runtime, ("population",))
        t0 = time.monotonic()
        spec = QuerySpec.model_validate(
            {"dataset": "population", "select": [{"agg": "count"}], "epsilon": "0.5"}
        )
        out = dp_service.query(runtime, ALICE, project, spec).model_dump()
        assert out["record_id"] and time.monotonic() - t0 < 30  # the witness timeout is 2 s, the hang endless
        with runtime.transaction() as s:
            record = s.get(DerivedRecordRow, out["record_id"])
            assert (
                record is not None and runtime.ledger(s).entry(record.ledger_index).kind == "derived.record"
            )
            n = runtime.ledger(s).size()
        deadline = time.monotonic() + 15
        while _status(api)["witnesses"][0]["size"] != n and time.monotonic() < deadline:
            time.sleep(0.2)
        st = _status(api)
        assert st["size"] == n and st["quorum"] == 2 and st["quorum_met"] is False
        assert st["quorum_pending"] is False  # an outage, not a busy log: the bureau is warned
        w0, w1 = st["witnesses"]
        assert w0["size"] == n and w0["lag"] == 0
        assert w1["size"] == 0 and w1["lag"] == n

        # the bureau's ledger page warns
        session = auth.WebSession.new(hub.token_for("bureau1", ["bureau"]), "bureau1")
        api.cookies.set(auth.SESSION_COOKIE, session.cookie(runtime.settings))
        page = api.get(f"{P}/ui/ledger")
        assert page.status_code == 200 and 'id="quorum-warning"' in page.text
        assert ws[1].witness.signer.name in page.text
    finally:
        hang.close()

    # the witness comes back: it is caught up with one consistency proof, nothing lost
    ws[1].server = make_server(ws[1].witness, "127.0.0.1", port)
    threading.Thread(target=ws[1].server.serve_forever, daemon=True).start()
    _append(runtime, 1)
    deadline = time.monotonic() + 20
    while not _status(api)["quorum_met"] and time.monotonic() < deadline:
        time.sleep(0.2)
    st = _status(api)
    assert st["quorum_met"] is True and [w["size"] for w in st["witnesses"]] == [n + 1, n + 1], st
    assert ws[1].witness.state.held(ORIGIN).size == n + 1  # type: ignore[union-attr]
    cp = api.get(f"{P}/api/v1/ledger/checkpoint/witnessed")
    assert (
        cp.status_code == 200 and cp.text.startswith(f"{ORIGIN}\n{n + 1}\n") and cp.text.count("\u2014 ") == 3
    )
    page = api.get(f"{P}/ui/ledger")
    assert 'id="quorum-warning"' not in page.text
