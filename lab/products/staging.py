"""Product artifacts in the products bucket: uploaded under a pending key, promoted after the commit.

An upload goes to ``pending/<uuid>/<sha256>``; the version row names the final content-addressed key
``products/<sha[:2]>/<sha256>``. Only once the row is committed is the pending object copied to the
final key (unless that content is there already) and deleted; if the write fails — a refusal, a
lost database, a failed commit — the pending object is deleted. So a final key exists only for
committed versions, and an object under ``pending/`` is either in flight or left by a crash.
:func:`sweep` (run when the API starts) promotes pending objects a committed version refers to and
deletes the rest, and any final object no version refers to, once older than ``grace``.

Usage (needs an object store, so not run here)::

    pending = upload(store, path)
    with staged(store, pending), runtime.transaction() as s: ...   # promoted after the commit
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from lab.db.base import utcnow
from lab.products.models import ProductVersionRow
from lab.runtime import Runtime
from lab.storage import ObjectStore, StoredObject

log = logging.getLogger(__name__)
PENDING = "pending/"
FINAL = "products/"


def final_key(sha256: str) -> str:
    return f"{FINAL}{sha256[:2]}/{sha256}"


def upload(store: ObjectStore, path: Path) -> StoredObject:
    """Upload a file under a fresh pending key (never a key a committed version names)."""
    return store.put_file(store.cfg.bucket_products, f"{PENDING}{uuid.uuid4().hex}", path)


def promote(store: ObjectStore, pending: StoredObject) -> StoredObject:
    """Copy a pending object to its final key (if that content is not there yet), then delete it."""
    final = StoredObject(pending.bucket, final_key(pending.sha256), pending.sha256, pending.size)
    if not store.exists(final.bucket, final.key):
        store.copy(pending.bucket, pending.key, final.key)
    store.delete(pending.bucket, pending.key)
    return final


@contextmanager
def staged(store: ObjectStore, pending: StoredObject | None) -> Iterator[None]:
    """Promote ``pending`` when the block (a committed transaction) succeeds; delete it if it fails.

    A promotion that fails after the commit is logged and left to :func:`sweep`, so a committed
    version is never reported as failed.
    """
    try:
        yield
    except BaseException:
        if pending is not None:
            try:
                store.delete(pending.bucket, pending.key)
            except Exception:  # the sweep deletes it later
                log.warning("could not delete pending artifact %s", pending.key, exc_info=True)
        raise
    if pending is not None:
        try:
            promote(store, pending)
        except Exception:
            log.warning("could not promote artifact %s; the next sweep will", pending.key, exc_info=True)


@dataclass
class SweepReport:
    promoted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def sweep(
    runtime: Runtime, grace: dt.timedelta = dt.timedelta(hours=1), now: dt.datetime | None = None
) -> SweepReport:
    """Finish or undo what a crash left in the products bucket (see the module docstring)."""
    store, bucket = runtime.store, runtime.store.cfg.bucket_products
    cutoff = (now or utcnow()) - grace
    with runtime.transaction() as s:
        q = select(ProductVersionRow.artifact_key).where(ProductVersionRow.artifact_key.is_not(None))
        referenced = set(s.execute(q).scalars())
    report = SweepReport()
    for key, modified in store.list_dated(bucket, PENDING):
        sha = key.rsplit("/", 1)[-1]
        if final_key(sha) in referenced:
            promote(store, StoredObject(bucket, key, sha, 0))
            report.promoted.append(key)
        elif modified < cutoff:
            store.delete(bucket, key)
            report.deleted.append(key)
    for key, modified in store.list_dated(bucket, FINAL):
        if key not in referenced and modified < cutoff:
            store.delete(bucket, key)
            report.deleted.append(key)
    return report
