"""Public CKKS contexts: accept (checked in the worker), store per project and operator, dispose.

A context is accepted only if, as parsed by an isolated worker, it

* holds **no secret key** (``is_private()`` and ``has_secret_key()`` both false),
* uses exactly one of the approved parameter sets (:mod:`he_compute.params`) — which all meet
  128-bit security — with the approved scale, and CKKS,
* is no larger than that set's ``max_context_bytes`` (Galois keys are not needed by any
  operation and would exceed it).

Accepted bytes are stored content-addressed under ``projects/<project>/he/contexts/`` in the
work bucket; :func:`dispose_project` deletes them when the project ends.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from he_compute import params
from he_compute.models import HeContextRow
from he_compute.worker import WorkerPool
from lab.db.base import utcnow
from lab.errors import BadRequest, NotFound, PayloadTooLarge
from lab.storage import ObjectStore, StoredObject


class ContextRejected(BadRequest):
    code, title = "he-context-rejected", "Context rejected"


def he_prefix(project_id: str) -> str:
    """Where a project's HE objects live in the work bucket."""
    return f"projects/{project_id}/he"


def check_context(pool: WorkerPool, param_set: str, data: bytes) -> dict[str, Any]:
    """Inspect ``data`` in a worker; return its facts or raise :class:`ContextRejected`."""
    declared = params.get(param_set)
    if len(data) > declared.max_context_bytes:
        raise PayloadTooLarge(
            f"a {param_set} context is at most {declared.max_context_bytes} bytes (got {len(data)}); "
            "generate relinearization keys only, no Galois keys",
            max_bytes=declared.max_context_bytes,
        )
    reply, _ = pool.run({"op": "inspect"}, [data])
    f: dict[str, Any] = dict(reply["facts"])
    if f.get("is_private") or f.get("has_secret_key"):
        raise ContextRejected(
            "the context carries a secret key; upload ctx.serialize(save_secret_key=False) — "
            "the secret key never leaves the operator"
        )
    if f.get("scheme") != "SCHEME_TYPE.CKKS":
        raise ContextRejected("only CKKS contexts are accepted")
    bits = [int(b) for b in f["coeff_mod_bit_sizes"]]
    matched = params.match(int(f["poly_modulus_degree"]), bits, float(f["scale_bits"]))
    if matched.name != declared.name:
        raise ContextRejected(f"the context uses {matched.name}, not the declared {param_set}")
    return f


def register_context(
    session: Session,
    store: ObjectStore,
    pool: WorkerPool,
    *,
    project_id: str,
    owner: str,
    param_set: str,
    data: bytes,
    facts: dict[str, Any] | None = None,
) -> HeContextRow:
    """Check (unless ``facts`` from :func:`check_context` are given) and store a context.

    Idempotent per project, owner and content; the caller commits.
    """
    facts = facts if facts is not None else check_context(pool, param_set, data)
    sha = hashlib.sha256(data).hexdigest()
    existing = session.execute(
        select(HeContextRow).where(
            HeContextRow.project_id == project_id,
            HeContextRow.owner == owner,
            HeContextRow.sha256 == sha,
            HeContextRow.deleted_at.is_(None),
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    obj = store.put_bytes(store.cfg.bucket_work, f"{he_prefix(project_id)}/contexts", data)
    row = HeContextRow(
        id="hc_" + uuid.uuid4().hex,
        project_id=project_id,
        owner=owner,
        param_set=param_set,
        sha256=obj.sha256,
        size_bytes=obj.size,
        bucket=obj.bucket,
        object_key=obj.key,
        has_relin_keys=bool(facts.get("has_relin_keys")),
        has_galois_keys=bool(facts.get("has_galois_keys")),
        created_at=utcnow(),
        deleted_at=None,
    )
    session.add(row)
    session.flush()
    return row


def get_context(session: Session, project_id: str, owner: str, context_id: str) -> HeContextRow:
    """A live context of ``owner`` in ``project_id`` (anyone else's is reported as not found)."""
    row = session.execute(
        select(HeContextRow).where(
            HeContextRow.id == context_id,
            HeContextRow.project_id == project_id,
            HeContextRow.owner == owner,
            HeContextRow.deleted_at.is_(None),
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no HE context {context_id} of {owner} in project {project_id}")
    return row


def list_contexts(session: Session, project_id: str, owner: str | None = None) -> list[HeContextRow]:
    q = select(HeContextRow).where(HeContextRow.project_id == project_id, HeContextRow.deleted_at.is_(None))
    if owner is not None:
        q = q.where(HeContextRow.owner == owner)
    return list(session.execute(q.order_by(HeContextRow.created_at)).scalars())


def delete_context(session: Session, store: ObjectStore, row: HeContextRow) -> None:
    """Delete a context's bytes (unless another live row shares them) and stamp the row."""
    row.deleted_at = utcnow()
    session.flush()
    shared = session.execute(
        select(HeContextRow.id).where(
            HeContextRow.object_key == row.object_key,
            HeContextRow.bucket == row.bucket,
            HeContextRow.deleted_at.is_(None),
        )
    ).first()
    if shared is None:
        store.delete_prefix(row.bucket, row.object_key)
    _CACHE.drop(row.sha256)


def dispose_project(session: Session, store: ObjectStore, project_id: str) -> dict[str, int]:
    """Delete every HE object of a project (contexts) and stamp their rows; caller commits."""
    rows = list(
        session.execute(
            select(HeContextRow).where(
                HeContextRow.project_id == project_id, HeContextRow.deleted_at.is_(None)
            )
        ).scalars()
    )
    now = utcnow()
    for row in rows:
        row.deleted_at = now
        _CACHE.drop(row.sha256)
    deleted = store.delete_prefix(store.cfg.bucket_work, he_prefix(project_id) + "/")
    session.flush()
    return {"contexts": len(rows), "objects": len(deleted)}


class _ContextCache:
    """Context bytes recently read from the store, by SHA-256 (bounded by total bytes)."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.max_bytes = max_bytes

    def get(self, store: ObjectStore, row: HeContextRow) -> bytes:
        with self._lock:
            if row.sha256 in self._items:
                self._items.move_to_end(row.sha256)
                return self._items[row.sha256]
        data = store.get_bytes(StoredObject(row.bucket, row.object_key, row.sha256, row.size_bytes))
        with self._lock:
            self._items[row.sha256] = data
            while sum(map(len, self._items.values())) > self.max_bytes and len(self._items) > 1:
                self._items.popitem(last=False)
        return data

    def drop(self, sha: str) -> None:
        with self._lock:
            self._items.pop(sha, None)


_CACHE = _ContextCache()


def load_context_bytes(store: ObjectStore, row: HeContextRow) -> bytes:
    """The stored context's bytes (verified against its digest; cached in memory)."""
    return _CACHE.get(store, row)
