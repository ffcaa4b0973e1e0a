"""No orphaned artifacts: a submission whose write fails leaves nothing in the products bucket (real
SeaweedFS); what a crash leaves under ``pending/`` is promoted or deleted when the API starts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from lab.api.main import create_app
from lab.identity import Principal
from lab.products import service, staging
from lab.products.models import ProductRow, ProductVersionRow
from lab.products.schemas import ProductOut, ProductSubmission
from lab.runtime import Runtime
from lab.storage import StoredObject
from tests.integration.products.conftest import Records

pytestmark = [pytest.mark.integration]
ALICE = Principal.from_groups("alice", ["operator"])


def _submit(runtime: Runtime, records: Records, tmp_path: Path) -> ProductOut:
    with records.csv.open("rb") as f:
        art = service.spool(f, tmp_path, 1 << 20, records.csv.name, "text/csv")
    meta = ProductSubmission(
        project=records.project,
        name="各镇报告",  # type: ignore[arg-type]
        type="report",  # type: ignore[arg-type]
        derived_from=[records.dp],
    )
    return service.submit(runtime, ALICE, meta, art)


def _keys(runtime: Runtime) -> list[str]:
    return sorted(runtime.store.list_keys(runtime.store.cfg.bucket_products, ""))


@pytest.fixture
def failing_commit() -> Iterator[None]:
    """Every commit that would write a product version fails, as a lost database would."""

    def fail(session: Session) -> None:
        if any(isinstance(o, ProductVersionRow) for o in session.identity_map.values()):
            raise OperationalError("COMMIT", {}, Exception("injected commit failure"))

    event.listen(Session, "before_commit", fail)
    yield
    event.remove(Session, "before_commit", fail)


def test_a_failed_commit_leaves_no_object(
    runtime: Runtime, records: Records, tmp_path: Path, failing_commit: None
) -> None:
    with pytest.raises(OperationalError, match="injected"):
        _submit(runtime, records, tmp_path)
    assert _keys(runtime) == []
    with runtime.transaction() as s:
        assert s.scalar(select(func.count()).select_from(ProductRow)) == 0


def test_a_committed_version_has_its_final_object_and_nothing_pending(
    runtime: Runtime, records: Records, tmp_path: Path
) -> None:
    out = _submit(runtime, records, tmp_path)
    sha = out.latest.artifact.sha256
    assert _keys(runtime) == [staging.final_key(sha)]
    again = _submit(runtime, records, tmp_path)  # the same content twice: one object
    assert again.id != out.id and _keys(runtime) == [staging.final_key(sha)]
    bucket = runtime.store.cfg.bucket_products
    obj = StoredObject(bucket, staging.final_key(sha), sha, out.latest.artifact.size)
    assert runtime.store.get_bytes(obj) == records.csv.read_bytes()


def test_the_sweep_finishes_or_undoes_what_a_crash_left(
    runtime: Runtime, records: Records, tmp_path: Path
) -> None:
    store, bucket = runtime.store, runtime.store.cfg.bucket_products
    sha = _submit(runtime, records, tmp_path).latest.artifact.sha256
    # a crash after the commit, before the promotion: the pending copy exists, the final one not
    store.copy(bucket, staging.final_key(sha), f"pending/crashed/{sha}")
    store.delete(bucket, staging.final_key(sha))
    # a crash before the commit, and an orphan the old code left under the final prefix
    stray = store.put_bytes(bucket, "pending/lost", b"never committed")
    orphan = store.put_bytes(bucket, "products/ab", b"an orphan of an older version of the lab")

    with TestClient(create_app(runtime=runtime)):  # the API's start runs the sweep (1 h grace)
        pass
    assert _keys(runtime) == sorted([staging.final_key(sha), stray.key, orphan.key])

    report = staging.sweep(runtime, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    assert sorted(report.deleted) == sorted([stray.key, orphan.key]) and report.promoted == []
    assert _keys(runtime) == [staging.final_key(sha)]
