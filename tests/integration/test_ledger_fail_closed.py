"""Verifiers fail closed: a document signed by a key the verifier did not give is never "valid"."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

import lab.shared.standalone as standalone
from lab.cli.main import app as cli
from lab.ledger import signing
from lab.ledger.entries import canonical_json
from lab.runtime import Runtime
from lab.shared import merkle
from lab.shared.certificates import build_certificate
from tests.integration._witnesses import log_vkey


def _forged_proof(entry: dict[str, Any]) -> dict[str, Any]:
    """A one-entry "log" signed by a fresh key, with the key in the document (as the lab's are)."""
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    leaf = merkle.leaf_hash(canonical_json(entry))
    head = {
        "size": 1,
        "root_hash": leaf.hex(),
        "timestamp_ms": 1764800000000,
        "key_id": hashlib.sha256(pub).hexdigest()[:16],
        "public_key": base64.b64encode(pub).decode(),
    }
    head["signature"] = base64.b64encode(key.sign(signing.tree_head_message(1, leaf, 1764800000000))).decode()
    return {
        "index": 0,
        "tree_size": 1,
        "entry": entry,
        "leaf_hash": leaf.hex(),
        "root_hash": leaf.hex(),
        "audit_path": [],
        "tree_head": head,
    }


APPROVAL = {
    "kind": "product.transition",
    "v": 1,
    "actor": "bureau1",
    "time": "2026-12-01T00:00:00Z",
    "body": {"registration_number": "CMDL-2026-999999", "action": "approved", "lineage": []},
}


@pytest.fixture
def genuine(runtime: Runtime, tmp_path: Path) -> tuple[Path, str]:
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        for i in range(5):
            ledger.append("psi.key_epoch", {"epoch": i}, actor="sweep")
        doc = ledger.inclusion(3)
    path = tmp_path / "genuine.json"
    path.write_text(json.dumps(doc))
    return path, log_vkey(runtime)


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, ensure_ascii=False))
    return path


def test_check_proof_refuses_a_self_signed_forgery(genuine: tuple[Path, str], tmp_path: Path) -> None:
    path, vkey = genuine
    forged = _write(tmp_path, "forged.json", _forged_proof(APPROVAL))
    run = CliRunner().invoke
    res = run(cli, ["ledger", "check-proof", str(forged)])
    assert res.exit_code == 1 and "no trusted log key" in res.output
    res = run(cli, ["ledger", "check-proof", str(forged), "--log-key", vkey])
    assert res.exit_code == 1 and "not a trusted ledger key" in res.output
    res = run(cli, ["ledger", "check-proof", str(path)])
    assert res.exit_code == 1  # even a genuine proof is not "valid" without the verifier's key
    res = run(cli, ["ledger", "check-proof", str(path), "--log-key", vkey])
    assert res.exit_code == 0 and res.output.startswith("ok: entry 3"), res.output
    assert "log's key only" in res.output  # says that the lab's operator is trusted with history


def test_products_verify_refuses_a_self_signed_certificate(genuine: tuple[Path, str], tmp_path: Path) -> None:
    _, vkey = genuine
    cert = _write(tmp_path, "cert.json", build_certificate(_forged_proof(APPROVAL), []))
    run = CliRunner().invoke
    res = run(cli, ["products", "verify", str(cert)])
    assert (
        res.exit_code == 1
        and "no trusted log key" in res.output
        and "VALID" not in res.output.replace("INVALID", "")
    )
    res = run(cli, ["products", "verify", str(cert), "--log-key", vkey])
    assert res.exit_code == 1 and "not a trusted ledger key" in res.output


def test_the_standalone_script_alone_refuses_a_forgery(genuine: tuple[Path, str], tmp_path: Path) -> None:
    path, vkey = genuine
    alone = tmp_path / "auditor"
    alone.mkdir()
    script = shutil.copy(standalone.__file__, alone / "standalone.py")  # copied without the lab
    forged = _write(tmp_path, "forged.json", _forged_proof(APPROVAL))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-I", str(script), *args], capture_output=True, text=True, cwd=alone
        )

    for args in ([str(forged)], [str(forged), "--log-key", vkey], [str(path)]):
        out = run(*args)
        assert out.returncode == 1 and out.stdout.startswith("INVALID"), (args, out.stdout, out.stderr)
    out = run(str(path), "--log-key", vkey)
    assert out.returncode == 0 and out.stdout.startswith("ok: entry 3"), out.stdout + out.stderr
    assert "log's key only" in out.stdout
