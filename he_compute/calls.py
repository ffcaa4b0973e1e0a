"""Multi-part HE calls: a call larger than one request body is opened, sent in parts, committed once.

A one-shot call (:func:`he_compute.service.run`) carries every ciphertext in one body, which the API
bounds by ``max_request_bytes``. A larger call (a bank scoring 100k applicants) goes

1. :func:`open_call` — the checks of a plan (authorization pre-check for *all* the call's records,
   the caller's context, the circuit); the call is stored (``he_calls``) with its layout: ``parts``
   of at most ``part_batches`` batches, each part fitting one request body;
2. :func:`run_part` — one part's ciphertexts, read and evaluated in the worker pool exactly like a
   one-shot call; its result ciphertexts are kept in the work bucket and **not returned**, and
   nothing is charged. A part may be sent again (the last one counts); parts may arrive in any order
   and concurrently. A failing part raises its typed problem carrying ``part`` and leaves the rest;
3. :func:`commit_call` — once every part is in, one transaction authorizes again, claims the call,
   charges its records once and writes one derived record and ledger entry; then the result
   ciphertexts of all parts are returned, in order. A call commits at most once.

Nothing leaves before the charge, so a call abandoned after any number of parts (or failing in
one) charges nothing and returns nothing. The derived record's ``input_sha256`` is the SHA-256 of
the parts' input digests (hex, in order); ``result_sha256`` is computed as for a one-shot call.
Open calls expire after :data:`CALL_TTL`; their objects live under the project's HE prefix
(``calls/<id>/``) and are deleted at commit and abandonment, for expired calls when their owner opens
the next one, and with the project at disposal.

Open calls are capped per caller (across projects) and per project
(:class:`~lab.settings.HeSettings` ``max_open_calls_per_caller``/``_per_project``): past
either, :func:`open_call` refuses with :class:`TooManyOpenCalls` (429, ``Retry-After`` = seconds
until the first blocking call expires) before the call is stored, so no part of it can be written.
A committed, abandoned or expired call frees its slot. The count and the insert run in one
transaction serialized per caller and per project (``BEGIN IMMEDIATE`` on SQLite, advisory
transaction locks on PostgreSQL), so concurrent opens cannot overshoot the caps.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import math
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from he_compute import contexts, frames, service
from he_compute.models import HeCallRow
from he_compute.worker import WorkerPool
from lab.db.base import utcnow
from lab.errors import BadRequest, Busy, Conflict, LabError, NotFound
from lab.identity import Principal
from lab.runtime import Runtime
from lab.settings import HeSettings
from lab.storage import StoredObject

CALL_TTL = dt.timedelta(hours=1)


class TooManyOpenCalls(Busy):
    """The caller or the project holds the most open multi-part calls allowed; carries ``retry_after``."""

    code, title = "he-open-calls", "Too many open HE calls"


def _prefix(project_id: str, call_id: str) -> str:
    return f"{contexts.he_prefix(project_id)}/calls/{call_id}"


def _load(
    session: Session, principal: Principal, project_id: str, call_id: str, *, lock: bool = False
) -> HeCallRow:
    """The caller's open, unexpired call in ``project_id`` (another operator's or another project's
    call is reported exactly as one that does not exist)."""
    q = select(HeCallRow).where(HeCallRow.id == call_id)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)
    row = session.execute(q).scalar_one_or_none()
    if row is None or row.owner != principal.name or row.project_id != project_id:
        raise NotFound(f"no HE call {call_id!r} of yours in project {project_id}")
    if row.status != "open":
        raise Conflict(f"the HE call {call_id} is {row.status}")
    if row.expires_at < utcnow():
        raise Conflict(f"the HE call {call_id} expired; open a new one")
    return row


def _spec(row: HeCallRow) -> tuple[service.Op, service.ScopedCall]:
    op: service.Op = "score" if row.operation == "score" else "lookup"
    return op, service.ScopedCall.model_validate({**row.spec, "project": row.project_id})


def _prepare(runtime: Runtime, principal: Principal, row: HeCallRow, *, context: bool) -> tuple[Any, bytes]:
    """Authorize again (pre-check) and plan; the material must still be the one the call opened with."""
    op, spec = _spec(row)
    prep, ctx = service.prepare(runtime, principal, op, spec, context=context)
    if prep.row_public["id"] != row.material_id:
        raise Conflict(
            f"the {prep.kind} {spec.model or spec.table!r} changed during the call; open a new one"
        )
    return prep, ctx


class PartReceived(TypedDict):
    """A part evaluated and kept: its batches, and which of the call's ``parts`` are in (sorted)."""

    call: str
    part: int
    batches: int
    received: list[int]
    parts: int


@dataclass(frozen=True)
class OpenedCall:
    """An open multi-part call: its summary (with ``parts`` and ``part_batches``), id and expiry.
    :meth:`header` is the JSON answer."""

    summary: service.CallSummary
    call: str
    expires_at: str

    def header(self) -> dict[str, Any]:
        return {**self.summary.header(), "call": self.call, "expires_at": self.expires_at}


def open_call(
    runtime: Runtime, principal: Principal, op: service.Op, spec: service.ScopedCall, *, limits: HeSettings
) -> OpenedCall:
    """Check a call like a plan and store it; its summary has ``parts`` and ``part_batches``.

    Refused with :class:`TooManyOpenCalls` while the caller or the project is at its cap of open calls.
    """
    if spec.records > limits.max_records:
        raise BadRequest(f"one call carries at most {limits.max_records} records")
    prep, _ = service.prepare(runtime, principal, op, spec, context=False)
    summary = prep.summary(runtime.settings.max_request_bytes)
    _sweep(runtime, principal, spec.project)
    now = utcnow()
    row = HeCallRow(
        id="hx_" + uuid.uuid4().hex,
        project_id=spec.project,
        owner=principal.name,
        operation=op,
        spec=spec.model_dump(),
        material_id=prep.row_public["id"],
        batches=prep.batches,
        part_batches=summary.part_batches,
        parts={},
        status="open",
        created_at=now,
        expires_at=now + CALL_TTL,
        record_id=None,
    )
    with runtime.transaction() as s:
        _admit(s, principal.name, spec.project, limits)
        s.add(row)
    return OpenedCall(summary, row.id, row.expires_at.isoformat())


def _admit(session: Session, owner: str, project_id: str, limits: HeSettings) -> None:
    """Refuse a new call while ``owner`` or ``project_id`` holds its cap of open, unexpired calls."""
    if session.get_bind().dialect.name == "postgresql":
        for scope in (f"owner:{owner}", f"project:{project_id}"):  # always this order: no deadlock
            key = int.from_bytes(
                hashlib.sha256(f"he-calls:{scope}".encode()).digest()[:8], "big", signed=True
            )
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    now = utcnow()
    live = (HeCallRow.status == "open", HeCallRow.expires_at >= now)
    for who, where, cap in (
        (f"you ({owner}) already hold", HeCallRow.owner == owner, limits.max_open_calls_per_caller),
        (
            f"project {project_id} already holds",
            HeCallRow.project_id == project_id,
            limits.max_open_calls_per_project,
        ),
    ):
        expiries = [e for e in session.execute(select(HeCallRow.expires_at).where(where, *live)).scalars()]
        if len(expiries) >= cap:
            wait = max(1, math.ceil((min(expiries) - now).total_seconds()))
            raise TooManyOpenCalls(
                f"{who} {len(expiries)} open HE calls, the most allowed ({cap}); commit or abandon one "
                f"(DELETE /api/v1/projects/{{project}}/he/calls/{{id}}), or retry in {wait} s when the "
                "oldest expires",
                retry_after=wait,
                open_calls=len(expiries),
                limit=cap,
            )


async def run_part(
    runtime: Runtime,
    pool: WorkerPool,
    principal: Principal,
    project_id: str,
    call_id: str,
    part: int,
    body: AsyncIterator[bytes],
) -> PartReceived:
    """Evaluate part ``part`` of a call of ``project_id`` and keep its results server-side; charges
    nothing."""
    reader = frames.StreamReader(body, max_total=1 << 62, max_blob_bytes=0)
    parts = 0
    try:
        with runtime.transaction() as s:
            row = _load(s, principal, project_id, call_id)
            s.expunge(row)
        parts = -(-row.batches // row.part_batches)
        if not 0 <= part < parts:
            raise BadRequest(f"the call has parts 0..{parts - 1}")
        header, count = await reader.start()
        if header.get("call", call_id) != call_id or header.get("part", part) != part:
            raise BadRequest("the frame header names another call or part")
        prep, ctx_bytes = await asyncio.to_thread(_prepare, runtime, principal, row, context=True)
        batches = range(part * row.part_batches, min((part + 1) * row.part_batches, row.batches))
        if count != len(batches) * prep.width:
            raise BadRequest(
                f"{count} ciphertexts sent; part {part} holds {len(batches)} batches × {prep.width}"
            )
        reader.max_blob_bytes = prep.param.max_ciphertext_bytes
        reader.max_total = reader.consumed + count * (prep.param.max_ciphertext_bytes + 4)
        input_sha, results = await service.evaluate(
            reader, pool, prep, (prep.context_sha, ctx_bytes), batches
        )
    except LabError as exc:
        with contextlib.suppress(Exception):
            await reader.drain()
        exc.detail = f"part {part + 1} of {parts or '?'}: {exc.detail}"
        exc.extra.update(call=call_id, part=part)
        exc.args = (exc.detail,)
        raise
    except Exception:
        with contextlib.suppress(Exception):
            await reader.drain()
        raise
    data = frames.encode({"call": call_id, "part": part}, results)
    stored = await asyncio.to_thread(
        runtime.store.put_bytes,
        runtime.store.cfg.bucket_work,
        f"{_prefix(row.project_id, call_id)}/{part}",
        data,
    )
    received = await asyncio.to_thread(
        _record_part, runtime, principal, project_id, call_id, part, stored, input_sha
    )
    return PartReceived(call=call_id, part=part, batches=len(batches), received=received, parts=parts)


def _record_part(
    runtime: Runtime,
    principal: Principal,
    project_id: str,
    call_id: str,
    part: int,
    stored: StoredObject,
    input_sha: str,
) -> list[int]:
    with runtime.transaction() as s:
        row = _load(s, principal, project_id, call_id, lock=True)
        parts = dict(row.parts)
        old = parts.get(str(part))
        parts[str(part)] = {
            "bucket": stored.bucket, "key": stored.key, "sha256": stored.sha256, "size": stored.size,
            "input_sha256": input_sha,
        }  # fmt: skip
        row.parts = parts
    if old and old["key"] != stored.key:  # a resent part: drop the superseded result
        with contextlib.suppress(Exception):
            runtime.store.client.remove_object(old["bucket"], old["key"])
    return sorted(int(k) for k in parts)


def commit_call(
    runtime: Runtime, principal: Principal, project_id: str, call_id: str
) -> tuple[service.CallAnswer, list[bytes]]:
    """Charge the whole call once and return every part's result ciphertexts (in order)."""
    with runtime.transaction() as s:
        row = _load(s, principal, project_id, call_id)
        s.expunge(row)
    parts = -(-row.batches // row.part_batches)
    missing = [k for k in range(parts) if str(k) not in row.parts]
    if missing:
        raise Conflict(f"the HE call {call_id} lacks parts {missing}; send them first", missing=missing)
    prep, _ = _prepare(runtime, principal, row, context=False)
    blobs: list[bytes] = []
    for k in range(parts):
        p = row.parts[str(k)]
        data = runtime.store.get_bytes(StoredObject(p["bucket"], p["key"], p["sha256"], p["size"]))
        _, out = frames.decode(data, max_blobs=row.part_batches, max_blob_bytes=len(data))
        blobs += out
    if len(blobs) != row.batches:
        raise Conflict(f"the HE call {call_id} holds {len(blobs)} results for {row.batches} batches")
    input_sha = hashlib.sha256(
        "".join(row.parts[str(k)]["input_sha256"] for k in range(parts)).encode()
    ).hexdigest()
    result_sha = frames.BlobDigest.of(blobs)

    def claim(session: Session) -> Callable[[str], None]:
        claimed = _load(
            session, principal, project_id, call_id, lock=True
        )  # a second commit finds it committed
        if claimed.parts != row.parts:
            raise Conflict(f"a part of the HE call {call_id} was resent during the commit; commit again")

        def done(record_id: str) -> None:
            claimed.status, claimed.record_id = "committed", record_id

        return done

    info = service.commit(runtime, principal, prep, input_sha, result_sha, within=claim)
    with contextlib.suppress(Exception):
        runtime.store.delete_prefix(runtime.store.cfg.bucket_work, _prefix(row.project_id, call_id) + "/")
    return service.CallAnswer(
        prep.summary(runtime.settings.max_request_bytes), info, result_sha, call_id
    ), blobs


def abandon_call(runtime: Runtime, principal: Principal, project_id: str, call_id: str) -> None:
    """Drop an open call of ``project_id`` and its stored parts (nothing was charged)."""
    with runtime.transaction() as s:
        row = _load(s, principal, project_id, call_id, lock=True)
        row.status = "abandoned"
    runtime.store.delete_prefix(runtime.store.cfg.bucket_work, _prefix(project_id, call_id) + "/")


def _sweep(runtime: Runtime, principal: Principal, project_id: str) -> None:
    """Delete the objects of the caller's expired open calls in the project (best effort)."""
    with runtime.transaction() as s:
        stale = list(
            s.execute(
                select(HeCallRow).where(
                    HeCallRow.project_id == project_id,
                    HeCallRow.owner == principal.name,
                    HeCallRow.status == "open",
                    HeCallRow.expires_at < utcnow(),
                )
            ).scalars()
        )
        for row in stale:
            row.status = "abandoned"
    for row in stale:
        with contextlib.suppress(Exception):
            runtime.store.delete_prefix(runtime.store.cfg.bucket_work, _prefix(project_id, row.id) + "/")
