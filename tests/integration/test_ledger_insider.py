"""The insider: whoever holds the database and the at-rest key rewrites history. The witnesses catch it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from lab.cli.main import app as cli
from lab.ledger import checkpoints
from lab.products.anchoring import anchor
from lab.runtime import Runtime
from lab.settings import get_settings
from lab.shared import merkle, standalone
from lab.shared.certificates import build_certificate, verify_certificate
from lab.shared.standalone import trusted_log_keys
from tests.integration._witnesses import ORIGIN, cosigner, log_vkey, witnesses


def _append(runtime: Runtime, n: int, kind: str = "project.transition") -> list[int]:
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        return [
            ledger.append(kind, {"project": "p1", "grant": {"epsilon": "1.0"}, "n": i}, actor="bureau1").index
            for i in range(n)
        ]


def _approve(runtime: Runtime, number: str) -> dict[str, Any]:
    """A product approval entry and its certificate, built and anchored by the API's own functions."""
    body = {"registration_number": number, "action": "approved", "product": "P1", "lineage": []}
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        entry = ledger.append("product.transition", body, actor="bureau1")
        cert = build_certificate(ledger.inclusion(entry.index), [])
    return cert


def _anchor(runtime: Runtime, cert: dict[str, Any]) -> dict[str, Any]:
    with runtime.transaction() as s:
        out = anchor(s, runtime.ledger(s), cert, ORIGIN, runtime.settings.ledger.quorum)
    return json.loads(json.dumps(out))


def _rewrite(
    runtime: Runtime, index: int, erase: tuple[str, ...] = ("ledger_checkpoints", "ledger_cosignatures")
) -> None:
    """What the insider does: change entry ``index``, recompute every later leaf and root and the log
    state, re-sign a fresh tree head with the lab's own key and rewrite the remembered heads and
    checkpoints (and drop the cosignatures that would no longer verify)."""
    with runtime.engine.begin() as conn:
        rows = conn.execute(text("SELECT idx, body FROM ledger_entries ORDER BY idx")).all()
        frontier = merkle.Frontier()
        for idx, body in rows:
            if idx == index:
                body = body.replace('"epsilon":"1.0"', '"epsilon":"99.0"')
            frontier.append(merkle.leaf_hash(body.encode()))
            conn.execute(
                text("UPDATE ledger_entries SET body=:b, leaf_hash=:l, root_after=:r WHERE idx=:i"),
                {"b": body, "l": merkle.leaf_hash(body.encode()).hex(), "r": frontier.root().hex(), "i": idx},
            )
        conn.execute(
            text("UPDATE ledger_state SET frontier=:f WHERE id=1"), {"f": json.dumps(frontier.to_hex())}
        )
        for table in ("ledger_tree_heads", *erase):
            conn.execute(text(f"DELETE FROM {table}"))
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        ledger.head()
        checkpoints.current(ledger, ORIGIN)
        assert ledger.verify().ok  # the lab's own verification sees nothing


@pytest.fixture
def cli_env(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    s = runtime.settings
    monkeypatch.setenv("LAB_DATABASE_URL", s.db_url)
    monkeypatch.setenv("LAB_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("LAB_SECRET_KEY", s.secret_key.get_secret_value())
    monkeypatch.setenv("LAB_LEDGER__ORIGIN", ORIGIN)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_rewrite_by_the_insider_is_caught_by_the_witnesses(
    runtime: Runtime, tmp_path: Path, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _append(runtime, 12)
    old_cert = _approve(runtime, "CMDL-2026-000001")
    _append(runtime, 8)
    with witnesses(runtime, tmp_path) as ws:
        cs = cosigner(runtime, ws)
        try:
            assert all(v.startswith("cosigned size 21") for v in cs.run_once().values())
            old_cert = _anchor(runtime, old_cert)
            log_keys = trusted_log_keys([log_vkey(runtime)])
            wkeys = [w.vkey for w in ws]
            assert verify_certificate(old_cert, trusted_keys=log_keys, witnesses=wkeys).ok
            urls = [x for w in ws for x in ("--witness", w.url)]
            res = CliRunner().invoke(cli, ["ledger", "verify", *urls])
            assert res.exit_code == 0, res.output
            trust = ["--log-key", log_vkey(runtime), *(x for w in ws for x in ("--witness", w.vkey))]
            # offline, with standalone.py: a witnessed inclusion proof, and the log against the witnesses
            proof = tmp_path / "proof.json"
            res = CliRunner().invoke(cli, ["ledger", "proof", "7", "--witnessed", "--out", str(proof)])
            assert res.exit_code == 0, res.output
            assert standalone.main([str(proof), *trust]) == 0
            bundle = tmp_path / "audit.json"
            assert (
                CliRunner().invoke(cli, ["ledger", "audit-bundle", *urls, "--out", str(bundle)]).exit_code
                == 0
            )
            assert standalone.main([str(bundle), *trust]) == 0

            _rewrite(runtime, 7)
            _append(runtime, 3)  # the log goes on over the rewritten history

            res = CliRunner().invoke(cli, ["ledger", "verify", *urls])
            assert res.exit_code == 1
            for w in ws:
                name = w.witness.signer.name
                assert (
                    f"the log does not match the checkpoint witness {name} cosigned at size 21" in res.output
                )
            assert "REWRITTEN" in res.output
            assert (
                CliRunner().invoke(cli, ["ledger", "audit-bundle", *urls, "--out", str(bundle)]).exit_code
                == 0
            )
            assert standalone.main([str(bundle), *trust]) == 1
            assert "REWRITTEN" in capsys.readouterr().out
            # with a witness key alone (no URL) the lab's stored copy is all there is, and it is gone
            res = CliRunner().invoke(cli, ["ledger", "verify", "--witness", ws[0].vkey])
            assert res.exit_code == 1 and "has cosigned no checkpoint" in res.output  # the insider erased it
            assert "no URL given" in res.output  # and the verifier is told to ask the witness itself

            # the witnesses refuse the rewritten checkpoint and keep the conflicting pair
            outcome = cs.run_once()
            assert all(v.startswith("HTTP 422") for v in outcome.values()), outcome
            for w in ws:
                (ev,) = w.witness.state.evidence(ORIGIN)
                assert "\n21\n" in ev.held_note and "\n24\n" in ev.submitted_note
                assert ev.held_note.split("\n")[2] != _root_line(runtime, 21)
                assert w.witness.state.held(ORIGIN).size == 21  # type: ignore[union-attr]
            # the witness's operator reads the evidence with the witness's own command
            res = CliRunner().invoke(cli, ["witness", "evidence", "--state", str(tmp_path / "witness0")])
            assert res.exit_code == 1, res.output
            (kept,) = json.loads(res.output)
            assert (
                kept["origin"] == ORIGIN
                and "\n21\n" in kept["held_note"]
                and "\n24\n" in kept["submitted_note"]
            )
            assert kept["request"].startswith("old 21\n")

            # the older certificate still verifies against the witnesses; one issued now cannot
            assert verify_certificate(old_cert, trusted_keys=log_keys, witnesses=wkeys).ok
            new_cert = _anchor(runtime, _approve(runtime, "CMDL-2026-000002"))
            cs.run_once()
            new_cert = _anchor(runtime, new_cert)
            r = verify_certificate(new_cert, trusted_keys=log_keys, witnesses=wkeys)
            assert not r.ok and "cosigned by 0 of the trusted witnesses, 2 needed" in (r.reason or ""), (
                r.reason
            )
            assert verify_certificate(new_cert, trusted_keys=log_keys).ok  # the lab's key alone is fooled
            for cert, code in ((old_cert, 0), (new_cert, 1)):
                path = tmp_path / "cert.json"
                path.write_text(json.dumps(cert))
                res = CliRunner().invoke(cli, ["products", "verify", str(path), *trust])
                assert res.exit_code == code, res.output
        finally:
            cs.stop()


def _root_line(runtime: Runtime, size: int) -> str:
    with runtime.transaction() as s:
        leaves = [
            bytes.fromhex(h)
            for h in s.execute(text("SELECT leaf_hash FROM ledger_entries ORDER BY idx")).scalars()
        ]
    import base64

    return base64.b64encode(merkle.root_of(leaves[:size])).decode()


def test_the_lab_s_own_cosigned_history_narrows_the_rewrite_to_the_entry(
    runtime: Runtime, tmp_path: Path, cli_env: None
) -> None:
    """An insider who leaves the stored cosignatures (they cannot re-sign them) is pinned to the entry."""
    with witnesses(runtime, tmp_path, n=1) as ws:
        cs = cosigner(runtime, ws)
        try:
            for n in (7, 1, 5):  # cosigned checkpoints at sizes 7, 8 and 13
                _append(runtime, n)
                assert next(iter(cs.run_once().values())).startswith("cosigned size")
            _rewrite(runtime, 7, erase=())
            res = CliRunner().invoke(cli, ["ledger", "verify", "--witness", ws[0].url])
            assert res.exit_code == 1 and "entry 7 was rewritten" in res.output, res.output
        finally:
            cs.stop()
