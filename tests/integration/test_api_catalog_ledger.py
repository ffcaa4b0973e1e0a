"""The API with real Hub tokens: authentication, roles, catalog, dummy rows, ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from lab.api.deps import SessionDep
from lab.db.base import utcnow
from lab.ledger.models import LedgerEntryRow
from tests.conftest import HubHandle
from tests.integration.test_catalog_import import POLICY, write_health_csv

pytestmark = [pytest.mark.integration, pytest.mark.hub]
PREFIX = "/services/lab-api"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


@pytest.fixture
def imported(api: Any, hub: HubHandle, tmp_path: Path) -> dict[str, Any]:
    steward = hub.token_for("steward1", ["steward"])
    path = write_health_csv(tmp_path / "h.csv", 40)
    with (
        path.open("rb") as data,
        (Path(__file__).parents[2] / "policies" / "health_visits.yaml").open("rb") as pol,
    ):
        r = api.post(
            "/api/v1/catalog/import",
            headers=auth(steward),
            files={"data": ("h.csv", data, "text/csv"), "policy": ("p.yaml", pol, "application/yaml")},
        )
    assert r.status_code == 201, r.text
    return {"entry": r.json(), "csv": path}


def test_requests_without_a_token_get_401_problem(api: Any) -> None:
    for path in ("/api/v1/catalog", "/api/v1/ledger/head", f"{PREFIX}/api/v1/catalog"):
        r = api.get(path)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["status"] == 401 and body["code"] == "unauthenticated" and "token" in body["detail"]


def test_invalid_token_is_refused(api: Any) -> None:
    r = api.get("/api/v1/catalog", headers=auth("not-a-real-token"))
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


def test_user_without_lab_role_is_refused(api: Any, hub: HubHandle) -> None:
    r = api.get("/api/v1/catalog", headers=auth(hub.token_for("visitor")))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_operator_cannot_import(api: Any, hub: HubHandle, tmp_path: Path) -> None:
    path = write_health_csv(tmp_path / "h.csv", 5)
    with path.open("rb") as data:
        r = api.post(
            "/api/v1/catalog/import",
            headers=auth(hub.token_for("alice", ["operator"])),
            files={"data": ("h.csv", data), "policy": ("p.yaml", b"dataset: x")},
        )
    assert r.status_code == 403 and "steward" in r.json()["detail"]


def test_catalog_lists_entries_through_the_hub_prefix(
    api: Any, hub: HubHandle, imported: dict[str, Any]
) -> None:
    tok = hub.token_for("alice", ["operator"])
    r = api.get(f"{PREFIX}/api/v1/catalog", headers=auth(tok))
    assert r.status_code == 200
    [entry] = r.json()
    assert entry["id"] == "health_visits" and entry["open"] == "non-open"
    assert entry["row_count_exact"] is False and entry["row_count"] % 10 == 0  # noisy for operators (40 rows)
    assert set(entry["title"]) == {"zh", "en"}
    schema = api.get("/api/v1/catalog/health_visits/schema", headers=auth(tok)).json()
    assert schema["entity_key"] == "person_id"
    assert {c["name"] for c in schema["columns"]} == {c.name for c in POLICY.columns}
    missing = api.get("/api/v1/catalog/nope", headers=auth(tok))
    assert missing.status_code == 404 and missing.json()["code"] == "dataset-not-found"


def test_dummy_rows_follow_the_schema_and_never_equal_real_rows(
    api: Any, hub: HubHandle, imported: dict[str, Any], tmp_path: Path
) -> None:
    tok = hub.token_for("alice", ["operator"])
    r = api.get("/api/v1/catalog/health_visits/dummy", params={"n": 200}, headers=auth(tok))
    assert r.status_code == 200
    body = r.json()
    assert body["dummy"] is True and len(body["rows"]) == 200
    import csv

    with Path(imported["csv"]).open(encoding="utf-8") as f:
        real_rows = list(csv.DictReader(f))
    real_ids = {row["resident_id"] for row in real_rows}
    real_keys = {row["person_id"] for row in real_rows}
    for row in body["rows"]:
        assert row["resident_id"] not in real_ids and row["person_id"] not in real_keys
        assert row["town"] in POLICY.column("town").domain  # type: ignore[operator]
        lo, hi = POLICY.column("visits").bounds  # type: ignore[misc]
        assert lo <= row["visits"] <= hi
    assert (
        api.get("/api/v1/catalog/health_visits/dummy", params={"n": 100000}, headers=auth(tok)).status_code
        == 422
    )


def test_ledger_head_proof_and_verify_roles(api: Any, hub: HubHandle, imported: dict[str, Any]) -> None:
    from lab.shared.standalone import verify_inclusion_document

    op = hub.token_for("alice", ["operator"])
    head = api.get("/api/v1/ledger/head", headers=auth(op)).json()
    assert head["size"] >= 1
    idx = imported["entry"]["ledger_index"]
    proof = api.get(f"/api/v1/ledger/proof/inclusion/{idx}", headers=auth(op)).json()
    keys = api.get("/api/v1/ledger/keys", headers=auth(op)).json()
    assert verify_inclusion_document(proof, keys)[0]
    assert not verify_inclusion_document(proof, None)[0]  # fails closed without the verifier's key
    assert api.post("/api/v1/ledger/verify", headers=auth(op)).status_code == 403
    r = api.post("/api/v1/ledger/verify", headers=auth(hub.token_for("auditor1", ["auditor"])))
    assert r.status_code == 200 and r.json()["ok"] is True
    bad = api.get("/api/v1/ledger/proof/inclusion/999", headers=auth(op))
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_refused_before_reading(api: Any, hub: HubHandle) -> None:
    tok = hub.token_for("steward1", ["steward"])
    limit = api.app.state.runtime.settings.max_request_bytes
    r = api.post(
        "/api/v1/catalog/import", headers={**auth(tok), "content-length": str(limit + 1)}, content=b"x"
    )
    assert r.status_code == 413


def test_openapi_is_served(api: Any) -> None:
    spec = api.get("/openapi.json").json()
    assert "/api/v1/catalog" in spec["paths"] and "/api/v1/ledger/head" in spec["paths"]


def test_session_commits_before_the_response_is_sent(api: Any) -> None:
    """A route's transaction commits before its response leaves: a commit that fails is never a 200."""
    runtime = api.app.state.runtime
    with runtime.transaction() as s:
        existing = runtime.ledger(s).append("derived.record", {"probe": 0}, actor="t")
    router = APIRouter()

    @router.post("/test-only/conflicting-write")
    def _write(session: SessionDep) -> dict[str, str]:
        # violates the primary key only when the transaction is flushed at commit
        session.add(
            LedgerEntryRow(
                idx=existing.index,
                kind="derived.record",
                body="{}",
                leaf_hash="0" * 64,
                root_after="0" * 64,
                created_at=utcnow(),
            )
        )
        return {"released": "a result that must not leave without its commit"}

    api.app.include_router(router)
    r = TestClient(api.app, raise_server_exceptions=False).post("/test-only/conflicting-write")
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert "released" not in r.text


def test_a_token_without_access_to_the_lab_service_is_refused(api: Any, hub: HubHandle) -> None:
    hub.user("narrow", ["operator"])
    r = hub.http.post(
        "users/narrow/tokens", json={"note": "narrow", "scopes": ["read:users:name!user=narrow"]}
    )
    r.raise_for_status()
    resp = api.get("/api/v1/catalog", headers=auth(r.json()["token"]))
    assert resp.status_code == 403 and "access:services" in resp.json()["detail"]


def test_the_checkpoint_is_public_and_names_the_configured_origin(
    api: Any, hub: HubHandle, runtime: Any
) -> None:
    import base64

    from lab.shared.standalone import trusted_log_keys, verify_checkpoint
    from witness.note import Checkpoint, Verifier, open_note

    origin = "lab.chongming.example/ledger"
    runtime.settings.ledger = runtime.settings.ledger.model_copy(update={"origin": origin})
    with runtime.transaction() as s:
        for i in range(3):
            runtime.ledger(s).append("psi.key_epoch", {"epoch": i}, actor="sweep")
    vkey = api.get("/api/v1/ledger/vkey")  # no token
    assert vkey.status_code == 200
    log_key = Verifier.from_vkey(vkey.text.strip())
    assert log_key.name == origin
    head = api.get("/api/v1/ledger/head", headers=auth(hub.token_for("alice", ["operator"]))).json()
    for path in ("/api/v1/ledger/checkpoint", f"{PREFIX}/api/v1/ledger/checkpoint"):
        r = api.get(path)  # no token, directly and through the Hub's prefix
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
        text, _ = open_note(r.text, [log_key])
        cp = Checkpoint.parse(text)
        assert text == f"{origin}\n{head['size']}\n{base64.b64encode(cp.root).decode()}\n"
        assert cp.root.hex() == head["root_hash"]
        assert verify_checkpoint(r.text, trusted_log_keys([log_key.vkey]))[0]
    assert base64.b64decode(head["public_key"]) == log_key.public  # one key signs both forms
