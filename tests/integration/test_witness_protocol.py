"""The witness against the C2SP tlog-witness text, over real HTTP (and a real restarted process)."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.shared import merkle
from lab.storage.seaweed import free_port_block
from witness.core import Witness, origin_hash
from witness.note import COSIGNATURE_V1, ED25519, Checkpoint, Signer, Verifier, open_note
from witness.server import serve_in_thread

ORIGIN = "lab.test/ledger"


class Log:
    """A tiny honest log: leaves, signed checkpoints, consistency proofs (the lab's own Merkle code)."""

    def __init__(self, origin: str = ORIGIN) -> None:
        self.signer = Signer(origin, ED25519, Ed25519PrivateKey.generate())
        self.leaves: list[bytes] = []

    def grow(self, n: int) -> None:
        self.leaves += [merkle.leaf_hash(f"entry {len(self.leaves) + i}".encode()) for i in range(n)]

    def note(self, size: int | None = None, root: bytes | None = None) -> str:
        size = len(self.leaves) if size is None else size
        text = Checkpoint(self.signer.name, size, root or merkle.root_of(self.leaves[:size])).text()
        return text + "\n" + self.signer.sign_line(text)

    def body(
        self, old: int, size: int | None = None, proof: list[bytes] | None = None, note: str | None = None
    ) -> bytes:
        size = len(self.leaves) if size is None else size
        if proof is None:
            proof = merkle.consistency_proof(self.leaves[:size], old) if 0 < old < size else []
        lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
        return ("".join(x + "\n" for x in lines) + "\n" + (note or self.note(size))).encode()


@pytest.fixture
def log() -> Log:
    lg = Log()
    lg.grow(10)
    return lg


@pytest.fixture
def witness(tmp_path: Path, log: Log) -> Iterator[tuple[Witness, str]]:
    w = Witness.open(tmp_path / "w", "witness.test/w1", [log.signer.verifier.vkey])
    server = serve_in_thread(w)
    yield w, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/add-checkpoint", content=body, timeout=10)


def test_first_checkpoint_is_cosigned_with_a_valid_cosignature_v1(
    witness: tuple[Witness, str], log: Log
) -> None:
    w, url = witness
    r = post(url, log.body(0))
    assert r.status_code == 200, r.text
    assert r.text.startswith("\u2014 witness.test/w1 ") and r.text.endswith("\n")
    note = log.note()
    _, good = open_note(note.split("\n\n")[0] + "\n\n" + r.text, [w.signer.verifier])
    assert good[w.signer.verifier] > time.time() - 60
    # monitoring: GET <sha256 hex origin>/checkpoint carries the log's and the witness's signatures
    m = httpx.get(f"{url}/{origin_hash(ORIGIN)}/checkpoint")
    assert m.status_code == 200
    open_note(m.text, [w.signer.verifier])
    open_note(m.text, [log.signer.verifier])
    assert httpx.get(f"{url}/{hashlib.sha256(b'other').hexdigest()}/checkpoint").status_code == 404


def test_stale_old_size_gets_409_with_the_witness_size(witness: tuple[Witness, str], log: Log) -> None:
    _, url = witness
    assert post(url, log.body(0)).status_code == 200
    log.grow(5)
    r = post(url, log.body(3))  # the witness holds 10, not 3
    assert r.status_code == 409
    assert r.headers["content-type"] == "text/x.tlog.size" and r.text == "10\n"
    assert post(url, log.body(10)).status_code == 200  # with the right old size and proof


def test_bad_consistency_proof_is_refused_with_422_and_kept_as_evidence(
    witness: tuple[Witness, str], log: Log
) -> None:
    w, url = witness
    assert post(url, log.body(0)).status_code == 200
    log.grow(6)
    good = merkle.consistency_proof(log.leaves, 10)
    bad = [good[0][::-1], *good[1:]]
    assert post(url, log.body(10, proof=bad)).status_code == 422
    assert post(url, log.body(10, proof=[])).status_code == 422
    # a forked log (entry 3 rewritten, same key) has no consistency proof from what was cosigned
    forked = list(log.leaves)
    forked[3] = merkle.leaf_hash(b"rewritten")
    fork_note = log.note(16, merkle.root_of(forked))
    r = post(url, log.body(10, proof=merkle.consistency_proof(forked, 10), note=fork_note))
    assert r.status_code == 422
    ev = w.state.evidence(ORIGIN)
    assert len(ev) == 3 and ev[-1].submitted_note == fork_note and "\n10\n" in ev[-1].held_note
    assert w.state.held(ORIGIN).size == 10  # type: ignore[union-attr]


def test_same_size_different_root_is_422(witness: tuple[Witness, str], log: Log) -> None:
    w, url = witness
    assert post(url, log.body(0)).status_code == 200
    r = post(url, log.body(10, note=log.note(10, hashlib.sha256(b"x").digest())))
    assert r.status_code == 422 and len(w.state.evidence()) == 1


def test_unknown_origin_404_and_untrusted_or_bad_signatures_403(
    witness: tuple[Witness, str], log: Log
) -> None:
    _, url = witness
    stranger = Log("other.test/log")
    stranger.grow(3)
    assert post(url, stranger.body(0)).status_code == 404
    impostor = Log(ORIGIN)  # right origin, a fresh key the witness does not trust
    impostor.grow(3)
    assert post(url, impostor.body(0)).status_code == 403
    note = log.note()
    tampered = note.replace("\n10\n", "\n11\n", 1)  # a known key's signature that no longer verifies
    assert post(url, log.body(0, note=tampered)).status_code == 403


def test_malformed_requests_are_400_and_size_rules_422(witness: tuple[Witness, str], log: Log) -> None:
    _, url = witness
    assert post(url, b"old 01\n\n" + log.note().encode()).status_code == 400
    assert post(url, b"garbage").status_code == 400
    assert post(url, log.body(11, size=10, proof=[])).status_code == 400  # old size above checkpoint size
    assert post(url, log.body(0, proof=[hashlib.sha256(b"x").digest()])).status_code == 422
    assert post(url, log.body(0, size=0, note=log.note(0, hashlib.sha256(b"x").digest()))).status_code == 422
    assert post(url, log.body(0, size=0)).status_code == 200  # the empty tree, properly


def test_a_cosigned_empty_tree_grows_without_a_proof(tmp_path: Path) -> None:
    """A fresh lab's first checkpoint is the empty tree; the empty tree is a prefix of every tree, so
    the next submission (old 0, no proof lines) is cosigned, not taken for a fork."""
    empty = Log()
    w = Witness.open(tmp_path / "w0", "witness.test/w0", [empty.signer.verifier.vkey])
    server = serve_in_thread(w)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        assert post(url, empty.body(0)).status_code == 200
        assert w.state.held(ORIGIN).size == 0  # type: ignore[union-attr]
        empty.grow(5)
        r = post(url, empty.body(0))
        assert r.status_code == 200, r.text
        assert w.state.held(ORIGIN).size == 5 and w.state.evidence() == []  # type: ignore[union-attr]
        empty.grow(2)
        assert post(url, empty.body(5)).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_concurrent_submissions_serialize(witness: tuple[Witness, str], log: Log) -> None:
    w, url = witness
    assert post(url, log.body(0)).status_code == 200
    bodies = []
    for _ in range(8):
        log.grow(3)
        bodies.append(log.body(10))  # all claim the witness holds 10
    with ThreadPoolExecutor(8) as pool:
        codes = sorted(r.status_code for r in pool.map(lambda b: post(url, b), bodies))
    assert codes.count(200) == 1 and codes.count(409) == 7
    held = w.state.held(ORIGIN)
    assert held is not None and held.size in range(13, 35, 3)


def test_a_restarted_witness_process_keeps_its_key_and_state(tmp_path: Path, log: Log) -> None:
    port = free_port_block(1, 40000, 45000)
    state = tmp_path / "w"
    cmd = [
        sys.executable,
        "-m",
        "witness",
        "serve",
        "--state",
        str(state),
        "--name",
        "witness.test/w2",
        "--log",
        log.signer.verifier.vkey,
        "--port",
        str(port),
    ]

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/vkey", timeout=1)
                return p
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("witness did not start")

    p = start()
    try:
        url = f"http://127.0.0.1:{port}"
        vkey = httpx.get(f"{url}/vkey").text.strip()
        assert Verifier.from_vkey(vkey).sig_type == COSIGNATURE_V1
        assert post(url, log.body(0)).status_code == 200
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)
    p = start()
    try:
        assert httpx.get(f"{url}/vkey").text.strip() == vkey
        log.grow(4)
        r = post(url, log.body(0))
        assert r.status_code == 409 and r.text == "10\n"
        assert post(url, log.body(10)).status_code == 200
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)
