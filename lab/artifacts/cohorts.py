"""Store and load PSI cohorts: the matched entity keys of one dataset version, kept server-side.

The keys are written as a one-column Parquet object (column ``key``) under
``projects/<project>/cohorts/`` in the work bucket, content-addressed; the row keeps the exact
size, which is never released (operators see a DP-noised size). Disposal deletes both.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.artifacts.models import CohortRow
from lab.db.base import utcnow
from lab.errors import NotFound
from lab.storage import ObjectStore, StoredObject


def work_prefix(project_id: str) -> str:
    """Where a project's working objects live in the work bucket."""
    return f"projects/{project_id}"


def save_cohort(
    session: Session,
    store: ObjectStore,
    *,
    project_id: str,
    dataset_id: str,
    dataset_version: int,
    column: str,
    keys: Iterable[str],
    created_by: str,
    record_id: str,
    ttl: dt.timedelta,
    cohort_id: str | None = None,
) -> CohortRow:
    """Write the cohort's keys to the work bucket and its row to the database (caller commits)."""
    values = sorted(set(keys))
    buf = io.BytesIO()
    pq.write_table(pa.table({"key": pa.array(values, pa.string())}), buf, compression="zstd")
    obj = store.put_bytes(store.cfg.bucket_work, f"{work_prefix(project_id)}/cohorts", buf.getvalue())
    now = utcnow()
    row = CohortRow(
        id=cohort_id or "co_" + uuid.uuid4().hex,
        project_id=project_id,
        dataset_id=dataset_id,
        dataset_version=dataset_version,
        column=column,
        size=len(values),
        bucket=obj.bucket,
        object_key=obj.key,
        sha256=obj.sha256,
        size_bytes=obj.size,
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
        record_id=record_id,
    )
    session.add(row)
    session.flush()
    return row


def get_cohort(session: Session, project_id: str, cohort_id: str) -> CohortRow:
    """A cohort of ``project_id`` (another project's cohort is reported as not found)."""
    row = session.execute(
        select(CohortRow).where(CohortRow.id == cohort_id, CohortRow.project_id == project_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no cohort {cohort_id} in project {project_id}")
    if row.expires_at <= utcnow():
        raise NotFound(f"cohort {cohort_id} expired on {row.expires_at.date()}")
    return row


def load_cohort_keys(store: ObjectStore, row: CohortRow) -> pa.Array:
    """The cohort's entity keys (verified against the stored digest)."""
    data = store.get_bytes(StoredObject(row.bucket, row.object_key, row.sha256, row.size_bytes))
    return pq.read_table(io.BytesIO(data)).column("key").combine_chunks()
