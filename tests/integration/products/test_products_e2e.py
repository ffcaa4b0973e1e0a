"""End to end: DP + PSI records -> product -> checks -> approval -> certificate verified offline;
tampered artifact, certificate and ledger rows fail with a clear reason; revocation shows."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from lab.cli.main import app as cli
from lab.client import Client, Conflict, Forbidden
from lab.runtime import Runtime
from lab.shared.certificates import verify_certificate
from tests.integration.products.conftest import Records, dp_record

pytestmark = [pytest.mark.integration, pytest.mark.hub]


def _register(alice: Client, records: Records, **kw: Any) -> Any:
    return alice.products.register(
        name={"zh": "乡镇就诊与企业匹配报告", "en": "Town visits and enterprise matches"},
        type="report",
        artifact=records.csv,
        derived_from=[records.dp, records.psi],
        project=records.project,
        description="Noisy visit counts per town with matched enterprises",
        scenario="Planning rural clinic outreach",
        **kw,
    )


def _status_doc(api: TestClient, cert: dict[str, Any]) -> dict[str, Any]:
    r = api.get(
        f"/api/v1/registry/{cert['registration_number']}/status",
        params={"since": cert["ledger"]["tree_size"]},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_end_to_end_registration_review_and_offline_certificate(
    runtime: Runtime, api: TestClient, records: Records, as_user: Callable[..., Client], tmp_path: Path
) -> None:
    alice = as_user("alice", ["operator"])
    bureau = as_user("bureau1", ["bureau"])
    prod = _register(alice, records)
    assert prod.status == "pending" and prod.registration_number is None
    latest = prod.latest
    assert latest["status"] == "in_review" and latest["checks_passed"], latest["checks"]
    assert [c["name"] for c in latest["checks"]] == [
        "lineage",
        "artifact_digest",
        "identifiers",
        "small_counts",
        "coverage",
    ]
    assert all(c["status"] == "pass" for c in latest["checks"])
    assert latest["derived_from"] == [records.dp, records.psi]

    queue = bureau.products.queue()
    assert list(queue["product"]) == [prod.id]
    detail = bureau.products.get(prod.id)
    assert [i["channel"] for i in detail["lineage"]] == ["dp", "psi"]
    assert detail["lineage"][0]["datasets"][0]["id"] == "health_visits"
    assert [e["action"] for e in detail["events"]] == ["submitted"]

    approved = bureau.products.review(prod.id, "approve", reason="meets the scenario")
    assert approved.status == "registered"
    assert re.fullmatch(r"CMDL-20\d\d-000001", approved.registration_number)
    assert bureau.products.queue().empty

    cert_path = tmp_path / "cert.json"
    cert = alice.products.certificate(prod.id, save=cert_path)
    stmt = cert["statement"]
    assert cert["registration_number"] == approved.registration_number and cert["approver"] == "bureau1"
    assert stmt["artifact"]["sha256"] == latest["artifact"]["sha256"]
    assert [i["record"] for i in stmt["lineage"]] == [records.dp, records.psi]
    assert stmt["name"]["en"] == "Town visits and enterprise matches"

    report = alice.products.verify(cert, artifact=records.csv)
    assert report.ok and report.status == "valid", report.reason
    online = alice.products.verify(cert, online=True)
    assert online.ok and online.revoked is False, online.reason

    runner = CliRunner()
    vkey = alice.ledger.vkey()
    res = runner.invoke(cli, ["products", "verify", str(cert_path), "--artifact", str(records.csv)])
    assert res.exit_code == 1 and "no trusted log key" in res.output  # fails closed without the key
    res = runner.invoke(
        cli, ["products", "verify", str(cert_path), "--artifact", str(records.csv), "--log-key", vkey]
    )
    assert res.exit_code == 0, res.output
    assert "VALID: " + approved.registration_number in res.output

    # public lookup: no token, non-sensitive metadata only
    pub = api.get(f"/api/v1/registry/{approved.registration_number}")
    assert pub.status_code == 200
    body = pub.json()
    assert body["status"] == "registered" and body["name"]["zh"] == "乡镇就诊与企业匹配报告"
    assert body["artifact_sha256"] == stmt["artifact"]["sha256"]
    assert not {"lineage", "derived_from", "project", "submitted_by", "checks"} & set(body)
    assert alice.products.lookup(approved.registration_number)["status"] == "registered"

    # the records API lists the lineage records for the member and the bureau
    mine = alice.records.list(records.project)
    assert set(mine["id"]) == {records.dp, records.psi}
    assert set(bureau.records.list(channel="dp")["id"]) == {records.dp}


def test_tampering_is_detected_with_a_clear_reason(
    runtime: Runtime, api: TestClient, records: Records, as_user: Callable[..., Client], tmp_path: Path
) -> None:
    alice, bureau = as_user("alice", ["operator"]), as_user("bureau1", ["bureau"])
    prod = _register(alice, records)
    bureau.products.review(prod.id, "approve")
    cert = alice.products.certificate(prod.id)
    keys, vkey = alice.ledger.log_keys(), alice.ledger.vkey()

    # a tampered artifact
    bad = tmp_path / "altered.csv"
    bad.write_text(records.csv.read_text(encoding="utf-8").replace("41", "14"), encoding="utf-8")
    r = verify_certificate(cert, artifact=bad, trusted_keys=keys)
    assert not r.ok and "SHA-256" in (r.reason or "") and "altered" in (r.reason or "")
    res = CliRunner().invoke(
        cli,
        ["products", "verify", _save(tmp_path / "c.json", cert), "--artifact", str(bad), "--log-key", vkey],
    )
    assert res.exit_code == 1 and "INVALID" in res.output

    # a tampered certificate: a field, the signed entry, the proof, the signature
    forged = copy.deepcopy(cert)
    forged["statement"]["name"]["en"] = "Something else"
    r = verify_certificate(forged, trusted_keys=keys)
    assert not r.ok and "statement.name.en does not match the signed ledger entry" in (r.reason or "")
    forged = copy.deepcopy(cert)
    forged["ledger"]["entry"]["body"]["artifact"]["sha256"] = "0" * 64
    forged["statement"]["artifact"]["sha256"] = "0" * 64
    r = verify_certificate(forged, trusted_keys=keys)
    assert not r.ok and "entry content does not match its leaf hash" in (r.reason or "")
    forged = copy.deepcopy(cert)
    sig = forged["ledger"]["tree_head"]["signature"]
    forged["ledger"]["tree_head"]["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    r = verify_certificate(forged, trusted_keys=keys)
    assert not r.ok and "signature is invalid" in (r.reason or "")
    forged = copy.deepcopy(cert)
    forged["lineage_proofs"][1]["entry"]["body"]["result_sha256"] = "f" * 64
    r = verify_certificate(forged, trusted_keys=keys)
    assert not r.ok and records.psi in (r.reason or "")

    # a tampered ledger row: the approval entry's stored content changed
    index = cert["ledger"]["index"]
    with runtime.engine.begin() as conn:
        body = conn.execute(text("SELECT body FROM ledger_entries WHERE idx = :i"), {"i": index}).scalar_one()
        conn.execute(
            text("UPDATE ledger_entries SET body = :b WHERE idx = :i"),
            {"b": body.replace("Town visits", "Town visitz"), "i": index},
        )
    assert verify_certificate(cert, trusted_keys=keys).ok  # offline, the certificate alone still proves it
    r = verify_certificate(cert, status=_status_doc(api, cert), trusted_keys=keys)
    assert not r.ok and f"ledger entry {index} (the product's approval) was changed" in (r.reason or "")

    # a rewritten log: a lineage record's entry replaced together with its leaf hash
    dp_index = cert["statement"]["lineage"][0]["ledger_index"]
    with runtime.engine.begin() as conn:
        conn.execute(
            text("UPDATE ledger_entries SET leaf_hash = :h WHERE idx = :i"), {"h": "ab" * 32, "i": dp_index}
        )
    r = verify_certificate(cert, status=_status_doc(api, cert), trusted_keys=keys)
    assert not r.ok and "the log was rewritten" in (r.reason or ""), r.reason
    dp_record(runtime, records.project, epsilon="0.1")  # the log grows: a new head over the rewritten leaves
    r = verify_certificate(cert, status=_status_doc(api, cert), trusted_keys=keys)
    assert not r.ok and "the ledger was rewritten: the current tree" in (r.reason or ""), r.reason


def _save(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc, ensure_ascii=False))
    return str(path)


def test_revocation_shows_against_the_current_log(
    api: TestClient, records: Records, as_user: Callable[..., Client], tmp_path: Path
) -> None:
    alice, bureau = as_user("alice", ["operator"]), as_user("bureau1", ["bureau"])
    prod = _register(alice, records)
    bureau.products.review(prod.id, "approve")
    cert = alice.products.certificate(prod.id)
    number = cert["registration_number"]
    before = tmp_path / "status-before.json"
    before.write_text(json.dumps(_status_doc(api, cert)))

    with pytest.raises(Forbidden, match="bureau"):
        alice.products.revoke(prod.id, reason="mine")
    out = bureau.products.revoke(prod.id, reason="lineage dataset withdrawn by its responsible unit")
    assert out.status == "revoked"

    keys = alice.ledger.log_keys()
    assert verify_certificate(cert, trusted_keys=keys).ok  # offline alone: still a valid attestation
    r = alice.products.verify(cert, online=True)
    assert r.ok and r.revoked and r.status == "revoked"
    assert r.revocation and r.revocation["by"] == "bureau1" and "withdrawn" in r.revocation["reason"]

    cert_file = _save(tmp_path / "cert.json", cert)
    after = tmp_path / "status-after.json"
    after.write_text(json.dumps(_status_doc(api, cert)))
    vkey = alice.ledger.vkey()
    res = CliRunner().invoke(
        cli, ["products", "verify", cert_file, "--ledger-head", str(after), "--log-key", vkey]
    )
    assert res.exit_code == 3 and "REVOKED" in res.output, res.output
    res = CliRunner().invoke(
        cli, ["products", "verify", cert_file, "--ledger-head", str(before), "--log-key", vkey]
    )
    assert res.exit_code == 0, res.output  # the older status document predates the revocation

    pub = api.get(f"/api/v1/registry/{number}").json()
    assert pub["status"] == "revoked" and pub["revoke_reason"].startswith("lineage dataset")
    with pytest.raises(Conflict, match="revoked"):
        bureau.products.review(prod.id, "approve")
    with pytest.raises(Conflict, match="revoked"):
        alice.products.new_version(prod.id, "x", "report", [records.dp], artifact=records.csv)
