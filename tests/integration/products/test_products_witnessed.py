"""A certificate fetched from the API carries the checkpoint its proofs are against: log-signed until
a quorum of witnesses cosigns one covering it, then re-anchored to that cosigned checkpoint, which
``lab products verify`` checks with witness keys the verifier gives."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from lab.cli.main import app as cli
from lab.client import Client
from lab.runtime import Runtime
from lab.shared.certificates import verify_certificate
from lab.shared.standalone import trusted_log_keys
from tests.integration._witnesses import ORIGIN, cosigner, log_vkey, witnesses
from tests.integration.products.conftest import Records
from tests.integration.products.test_products_e2e import _register
from witness.note import COSIGNATURE_V1, Signer

pytestmark = [pytest.mark.integration, pytest.mark.hub]


def test_the_api_certificate_is_anchored_to_the_witnessed_checkpoint(
    runtime: Runtime, records: Records, as_user: Callable[..., Client], tmp_path: Path
) -> None:
    alice, bureau = as_user("alice", ["operator"]), as_user("bureau1", ["bureau"])
    prod = _register(alice, records)
    with witnesses(runtime, tmp_path) as ws:
        cs = cosigner(runtime, ws)  # the API now reads these ledger settings (origin, quorum 2 of 2)
        try:
            bureau.products.review(prod.id, "approve", reason="ok")
            keys = trusted_log_keys([log_vkey(runtime, ORIGIN)])
            wkeys = [w.vkey for w in ws]

            before = alice.products.certificate(prod.id)  # nothing cosigned yet: the log's checkpoint
            assert before["ledger"]["checkpoint"].count("\n\u2014 ") == 1
            assert verify_certificate(before, trusted_keys=keys).ok
            r = verify_certificate(before, trusted_keys=keys, witnesses=wkeys)
            assert not r.ok and "cosigned by 0 of the trusted witnesses, 2 needed" in (r.reason or "")

            assert all(v.startswith("cosigned size") for v in cs.run_once().values())
            cert = alice.products.certificate(prod.id)
            assert cert["ledger"]["checkpoint"].count("\n\u2014 ") == 3  # the log's and two cosignatures
            assert alice.products.certificate(prod.id) == cert  # stored once anchored
            path = tmp_path / "cert.json"
            path.write_text(json.dumps(cert, ensure_ascii=False))
            trust = ["--log-key", log_vkey(runtime, ORIGIN), *(x for k in wkeys for x in ("--witness", k))]
            res = CliRunner().invoke(
                cli, ["products", "verify", str(path), "--artifact", str(records.csv), *trust]
            )
            assert res.exit_code == 0 and "cosigned by 2 trusted witness key(s)" in res.output, res.output
            # a witness key the certificate was not cosigned by is not satisfied by the others
            stranger = Signer("witness.test/stranger", COSIGNATURE_V1, Ed25519PrivateKey.generate())
            res = CliRunner().invoke(
                cli, ["products", "verify", str(path), *trust, "--witness", stranger.verifier.vkey]
            )
            assert res.exit_code == 1 and "2 of the trusted witnesses, 3 needed" in res.output, res.output
        finally:
            cs.stop()
