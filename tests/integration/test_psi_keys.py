"""PSI key epochs (sealed at rest, rotation, destruction), the CLI, and disposal of PSI working data."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select
from typer.testing import CliRunner

from lab.ledger.models import LedgerEntryRow
from lab.ledger.signing import unseal
from lab.projects.models import ProjectRow, ProjectStatus
from psi_service.keys import KeyRing
from psi_service.models import PsiArtifactRow, PsiKeyEpochRow, PsiSessionRow
from psi_service.protocol import MEDIA_TYPE, POINT_BYTES, Frame, build_request, encode
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._psi import column, grants, import_psi_sample, lab_client, operator_list

pytestmark = [pytest.mark.integration, pytest.mark.hub]
SCALE = 3000


@pytest.fixture
def env(api: Any, runtime: Any, hub: HubHandle) -> dict[str, Any]:
    import_psi_sample(runtime, SCALE, ("enterprise_registry",))
    pid = active_project(
        runtime, grants({"enterprise_registry": ["intersection", "cardinality"]}), members=["alice"]
    )
    uscc, _ = column(SCALE, "enterprise_registry", "uscc", "enterprise_id")
    items, expected = operator_list(uscc, "uscc", n=120, inside=50, invalid=0)
    token = hub.token_for("alice", ["operator"])
    return {
        "project": pid,
        "client": lab_client(api, token).use(pid),
        "items": items,
        "expected": expected,
        "token": token,
    }


def run(env: dict[str, Any]) -> Any:
    return env["client"].psi.intersect(
        env["items"], dataset="enterprise_registry", column="uscc", mode="cardinality"
    )


def test_epoch_keys_and_encrypted_sets_are_sealed_with_the_lab_key(env: dict[str, Any], runtime: Any) -> None:
    assert run(env).size == len(env["expected"])
    with runtime.transaction() as s:
        epoch = s.execute(select(PsiKeyEpochRow)).scalar_one()
        enc = s.execute(select(PsiArtifactRow).where(PsiArtifactRow.kind == "encrypted-set")).scalar_one()
    assert epoch.status == "active" and epoch.sealed_key is not None
    master = unseal(runtime.settings.encryption_key, epoch.sealed_key, b"lab-psi-epoch|1")
    assert len(master) == 32 and master not in epoch.sealed_key
    with pytest.raises(InvalidTag):
        unseal(bytes(32), epoch.sealed_key, b"lab-psi-epoch|1")
    stored = runtime.store.client.get_object(enc.bucket, enc.object_key).read()
    assert enc.sealed and len(stored) == 12 + POINT_BYTES * enc.server_size + 16


def test_rotation_starts_a_new_epoch_and_purge_destroys_the_old_one(
    env: dict[str, Any], runtime: Any, api: Any
) -> None:
    assert run(env).size == len(env["expected"])
    size = len(env["items"]) - 3  # distinct items
    body = {"dataset": "enterprise_registry", "column": "uscc", "mode": "cardinality", "size": size}
    headers = {"Authorization": f"token {env['token']}"}
    sessions = f"/api/v1/projects/{env['project']}/psi/sessions"
    pending = api.post(sessions, json=body, headers=headers).json()  # opened under epoch 1
    ring = KeyRing(runtime)
    assert ring.rotate("bureau1") == (1, 2)
    after = api.post(sessions, json=body, headers=headers).json()
    assert pending["epoch"] == 1 and after["epoch"] == 2
    assert pending["artifact_sha256"] != after["artifact_sha256"]
    assert run(env).size == len(env["expected"])  # works under the new epoch
    assert ring.purge("bureau1", dt.timedelta(0)) == [1]
    with runtime.transaction() as s:
        rows = {r.epoch: r for r in s.execute(select(PsiKeyEpochRow)).scalars()}
        old = s.execute(select(PsiArtifactRow).where(PsiArtifactRow.epoch == 1)).scalars().all()
        entries = [
            json.loads(e.body)["body"]
            for e in s.execute(select(LedgerEntryRow).where(LedgerEntryRow.kind == "psi.key_epoch")).scalars()
        ]
    assert rows[1].status == "destroyed" and rows[1].sealed_key is None and rows[2].status == "active"
    assert old == []
    assert [(e["epoch"], e["action"]) for e in entries] == [(1, "create"), (2, "create"), (1, "destroy")]
    assert entries[1]["retired"] == 1
    # the session opened under the destroyed epoch can no longer be used
    from psi_service import operator
    from psi_service.normalize import normalize_items

    values = normalize_items(env["items"], "uscc").values
    elements = operator.encrypt_items(operator.new_client_key(False), values, reveal=False)
    frame = Frame(
        session=pending["id"], nonce=base64.urlsafe_b64decode(pending["nonce"]), project=env["project"],
        dataset="enterprise_registry", column="uscc", mode="cardinality", declared_size=size, parts=1,
        request=build_request(elements, reveal=False),
    )  # fmt: skip
    r = api.post(
        f"{sessions}/{pending['id']}/request",
        content=encode(frame),
        headers={**headers, "Content-Type": MEDIA_TYPE},
    )
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert "rotated away" in r.json()["detail"]


def test_cli_rotates_and_lists_epochs(
    env: dict[str, Any], runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lab.cli.main import app
    from lab.settings import get_settings

    assert run(env).size == len(env["expected"])  # epoch 1 is created on first use
    s = runtime.settings
    for name, value in {
        "LAB_DATABASE_URL": s.db_url,
        "LAB_DATA_DIR": str(s.data_dir),
        "LAB_SECRET_KEY": s.secret_key.get_secret_value(),
        "LAB_S3__ENDPOINT": s.s3.endpoint,
        "LAB_S3__ACCESS_KEY": s.s3.access_key,
        "LAB_S3__SECRET_KEY": s.s3.secret_key.get_secret_value(),
        "LAB_S3__BUCKET_WORK": s.s3.bucket_work,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["psi", "rotate-key", "--actor", "bureau1"])
        assert out.exit_code == 0, out.output
        assert "epoch 2 is active" in out.output and "epoch 1 retired" in out.output
        listed = runner.invoke(app, ["psi", "epochs"])
        assert "epoch 1    retired" in listed.output and "epoch 2    active" in listed.output
    finally:
        get_settings.cache_clear()


def test_disposal_deletes_psi_sessions_and_stored_parts(env: dict[str, Any], runtime: Any, api: Any) -> None:
    from lab.projects.disposal import dispose

    assert run(env).size == len(env["expected"])
    # an abandoned chunked upload: one part stored, the rest never sent
    size = len(env["items"]) - 3
    headers = {"Authorization": f"token {env['token']}"}
    body = {"dataset": "enterprise_registry", "column": "uscc", "mode": "cardinality", "size": size}
    sessions = f"/api/v1/projects/{env['project']}/psi/sessions"
    info = api.post(sessions, json=body, headers=headers).json()
    from psi_service import operator

    elements = operator.encrypt_items(
        operator.new_client_key(False), [f"x{i}" for i in range(10)], reveal=False
    )
    frame = Frame(
        session=info["id"], nonce=base64.urlsafe_b64decode(info["nonce"]), project=env["project"],
        dataset="enterprise_registry", column="uscc", mode="cardinality", declared_size=size, part=0, parts=3,
        request=build_request(elements, reveal=False),
    )  # fmt: skip
    r = api.post(
        f"{sessions}/{info['id']}/request",
        content=encode(frame),
        headers={**headers, "Content-Type": MEDIA_TYPE},
    )
    assert r.status_code == 202 and r.json() == {"session": info["id"], "received": 1, "parts": 3}
    work = runtime.store.cfg.bucket_work
    assert len(runtime.store.list_keys(work, f"projects/{env['project']}/psi/")) == 1
    with runtime.transaction() as s:
        s.get(ProjectRow, env["project"]).status = ProjectStatus.ended.value
    report = dispose(runtime, env["project"])
    assert report is not None and report.disposers["psi.sessions"] == {"sessions": 2, "objects": 1}
    with runtime.transaction() as s:
        assert (
            s.execute(select(PsiSessionRow).where(PsiSessionRow.project_id == env["project"])).first() is None
        )
        assert (
            s.execute(select(PsiArtifactRow)).first() is not None
        )  # setups belong to the dataset, not the project
    assert runtime.store.list_keys(work, f"projects/{env['project']}/psi/") == []
