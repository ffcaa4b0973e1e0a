"""The HE channel's service: grant check, streamed evaluation in the worker pool, atomic charge.

A ``score`` or ``lookup`` call is one frame (:mod:`he_compute.frames`) whose header is a
:class:`CallSpec` and whose blobs are the operator's ciphertexts, batch after batch (column-packed,
see :mod:`he_compute.ops`). The service

1. reads the header and, in a short transaction, resolves the model or table, runs
   :func:`~lab.projects.access.authorize` (membership, project state, grant incl. the material,
   policy, record quota), finds the caller's own context and plans the circuit;
2. reads the ciphertexts as they arrive and hands each complete batch to the worker pool (at
   most ``2 × workers + 2`` batches and :data:`IN_FLIGHT_BYTES` in flight, so memory stays
   bounded while upload overlaps evaluation);
3. in one transaction authorizes again and calls :func:`~lab.projects.access.commit_result`
   (records charged as quota units, metadata-only parameters, digest of the result ciphertexts);
4. returns the result ciphertexts.

Any failure before step 3 charges nothing. Nothing of the operator's input is stored.
A call whose ciphertexts exceed one request body is sent in parts (:mod:`he_compute.calls`):
same checks and evaluation per part, one charge and one derived record at its commit.

A call belongs to the project of its route (``/api/v1/projects/{project}/he/…``): the header's
``project`` is optional and, if given, must name that one (:func:`scoped`; else
:class:`~lab.errors.ProjectMismatch`). Past the route, the service works on a :class:`ScopedCall`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from he_compute import contexts, frames, material, ops, params
from he_compute.access import HeParams, check_params
from he_compute.worker import WorkerPool
from lab.errors import BadRequest, Conflict, PayloadTooLarge
from lab.identity import Principal
from lab.projects.access import (
    Ask,
    authorize,
    commit_result,
    quota_limit,
    quota_period,
    same_project,
    visible_project,
)
from lab.projects.models import UsageRow
from lab.runtime import Runtime

Op = Literal["score", "lookup"]
#: Ciphertext bytes one call may hold in memory while its batches wait for or sit in workers.
IN_FLIGHT_BYTES = 256 << 20
#: Room left in a request body for the frame's header and framing.
FRAME_OVERHEAD = 64 << 10


class CallSpec(BaseModel):
    """The header of a ``score`` / ``lookup`` frame (and the body of a plan or open request).

    ``project`` may be left out: the route's path names it (if given, it must be the same).
    """

    model_config = ConfigDict(extra="forbid")

    project: str | None = Field(None, min_length=1, max_length=32, description="the path's, if given")
    context: str = Field(min_length=1, max_length=40, description="id of the caller's registered context")
    records: int = Field(ge=1, description="records encrypted in the ciphertexts (quota units)")
    model: str | None = Field(None, max_length=128, description="score: model id or name")
    table: str | None = Field(None, max_length=128, description="lookup: table id or name")
    degree: int | None = Field(None, description="logistic: sigmoid polynomial degree")
    output: Literal["probability", "logit"] = "probability"


class ScopedCall(CallSpec):
    """A :class:`CallSpec` bound to its route's project (what the service works on)."""

    project: str = Field(min_length=1, max_length=32)


def scoped(spec: CallSpec, project: str) -> ScopedCall:
    """``spec`` under the route's ``project``; a ``project`` the spec names must be that one."""
    same_project(project, spec.project, "the HE call")
    return ScopedCall.model_validate({**spec.model_dump(), "project": project})


@dataclass
class Prepared:
    """Everything a call needs after its (pre-)authorization."""

    op: Op
    spec: ScopedCall
    kind: material.Kind
    ref: str  # the identifier the grant lists
    dataset: str
    row_public: dict[str, Any]
    param: params.ParamSet
    context_id: str
    context_sha: str
    plan: ops.Plan

    @property
    def width(self) -> int:
        """Ciphertexts per batch."""
        return self.plan.width

    @property
    def batches(self) -> int:
        return math.ceil(self.spec.records / self.param.slots)

    def batch_size(self, i: int) -> int:
        return min(self.param.slots, self.spec.records - i * self.param.slots)

    def part_batches(self, max_request_bytes: int) -> int:
        """Batches one request body holds at most (ciphertexts at their upper size bound)."""
        per_batch = self.width * (self.param.max_ciphertext_bytes + 4)
        fit = (max_request_bytes - FRAME_OVERHEAD) // per_batch
        if fit < 1:
            raise PayloadTooLarge(
                f"one batch of {self.width} {self.param.name} ciphertexts needs up to {per_batch} bytes; "
                f"a request body is limited to {max_request_bytes}",
                max_bytes=max_request_bytes,
            )
        return int(min(fit, self.batches))

    def summary(self, max_request_bytes: int | None = None) -> CallSummary:
        """What the caller needs to encrypt: layout, order, bounds and the plan's metadata; with
        ``max_request_bytes``, also how many batches fit one request (``part_batches``, ``parts``)."""
        fit = parts = None
        if max_request_bytes is not None:
            fit = self.part_batches(max_request_bytes)
            parts = math.ceil(self.batches / fit)
        return CallSummary(
            operation=self.op,
            project=self.spec.project,
            context=self.context_id,
            param_set=self.param.name,
            records=self.spec.records,
            slots=self.param.slots,
            batches=self.batches,
            ciphertexts_per_batch=self.width,
            kind=self.kind,
            material=self.row_public,
            plan=self.plan,
            part_batches=fit,
            parts=parts,
        )


@dataclass(frozen=True)
class CallSummary:
    """A call's layout and what its caller is told of the material and the plan.

    :meth:`header` is its wire form (a frame's or a plan answer's JSON header): the material sits
    under its kind (``model`` or ``table``) and the plan's metadata (:meth:`ops.ScorePlan.meta`,
    :meth:`ops.LookupPlan.meta`) at the top level.
    """

    operation: Op
    project: str
    context: str
    param_set: str
    records: int
    slots: int
    batches: int
    ciphertexts_per_batch: int
    kind: material.Kind
    material: dict[str, Any]
    plan: ops.Plan
    part_batches: int | None = None
    parts: int | None = None

    def header(self) -> dict[str, Any]:
        layout = {} if self.parts is None else {"part_batches": self.part_batches, "parts": self.parts}
        return {
            "operation": self.operation,
            "project": self.project,
            "context": self.context,
            "param_set": self.param_set,
            "records": self.records,
            "slots": self.slots,
            "batches": self.batches,
            "ciphertexts_per_batch": self.ciphertexts_per_batch,
            **layout,
            self.kind: self.material,
            **self.plan.meta(),
        }


@dataclass(frozen=True)
class CallAnswer:
    """A charged call's answer: its summary, the charge, the results' digest (and, for a
    multi-part call, its id). :meth:`header` is the response frame's header."""

    summary: CallSummary
    charge: Charge
    result_sha256: str
    call: str | None = None

    def header(self) -> dict[str, Any]:
        extra = {} if self.call is None else {"call": self.call}
        return {**self.summary.header(), **self.charge, **extra, "result_sha256": self.result_sha256}


def _kind_ref(op: Op, spec: ScopedCall) -> tuple[material.Kind, str]:
    ref = spec.model if op == "score" else spec.table
    if not ref:
        raise BadRequest(f"{op} needs a {'model' if op == 'score' else 'table'}")
    return ("model" if op == "score" else "table"), ref


def _authorize(session: Any, principal: Principal, op: Op, spec: ScopedCall) -> tuple[Any, Any, str]:
    kind, ref = _kind_ref(op, spec)
    visible_project(session, principal, spec.project)  # a non-member learns nothing of the material
    row = material.resolve(session, kind, spec.project, ref)
    key = material.listed_key(session, kind, spec.project, row)
    access = authorize(
        session,
        principal,
        spec.project,
        row.dataset_id,
        "he",
        op,
        Ask(units=spec.records),
        check=check_params,
        params=HeParams(model=key) if kind == "model" else HeParams(table=key),
    )
    material.check_policy(access.policy, kind, row)
    return row, access, key


def prepare(
    runtime: Runtime, principal: Principal, op: Op, spec: ScopedCall, *, context: bool = True
) -> tuple[Prepared, bytes]:
    """Authorize (pre-check), find the context, plan the circuit; returns the plan and the context
    bytes (empty without ``context``)."""
    kind, _ = _kind_ref(op, spec)
    with runtime.transaction() as s:
        row, _access, key = _authorize(s, principal, op, spec)
        ctx_row = contexts.get_context(s, spec.project, principal.name, spec.context)
        param = params.get(ctx_row.param_set)
        try:
            if op == "score":
                if row.kind not in material.SCORABLE:
                    raise BadRequest(f"models of kind {row.kind!r} cannot be scored homomorphically")
                plan: ops.Plan = ops.score_plan(
                    row.kind,
                    row.params,
                    list(row.features),
                    degree=spec.degree,
                    output=spec.output,
                    levels=param.levels,
                )
                public = material.model_public(row)
            else:
                shape, values, missing = material.table_arrays(row)
                plan = ops.lookup_plan(shape, values, param.levels, missing)
                public = material.table_public(row)
        except ops.PlanError as exc:
            raise BadRequest(str(exc)) from None
        if plan.multiplies and not ctx_row.has_relin_keys:
            raise BadRequest(
                "this operation multiplies ciphertexts: register a context with relinearization keys"
            )
        prep = Prepared(op, spec, kind, key, row.dataset_id, public, param, ctx_row.id, ctx_row.sha256, plan)
    return prep, contexts.load_context_bytes(runtime.store, ctx_row) if context else b""


class Quota(TypedDict):
    """The project's HE record quota on the dataset after a call (``limit`` None: unlimited)."""

    limit: int | None
    used: int


class Charge(TypedDict):
    """What :func:`commit` charged: the derived record, its ledger entry and the quota after it
    (merged into a call's response header after the plan's summary)."""

    record_id: str
    ledger_index: int
    quota: Quota


def _quota(session: Any, access: Any) -> Quota:
    used = session.execute(
        select(UsageRow.used).where(
            UsageRow.project_id == access.project.id,
            UsageRow.dataset_id == access.dataset.dataset,
            UsageRow.channel == "he",
            UsageRow.period == quota_period("he"),
        )
    ).scalar_one_or_none()
    return {"limit": quota_limit(access), "used": int(used or 0)}


def commit(
    runtime: Runtime,
    principal: Principal,
    prep: Prepared,
    input_sha: str,
    result_sha: str,
    *,
    within: Callable[[Any], Callable[[str], None]] | None = None,
) -> Charge:
    """Authorize again and charge, record and log the call — one transaction. ``within(session)``
    runs in it first and returns what runs in it last with the record's id (a multi-part call is
    claimed, then marked committed, there)."""
    with runtime.transaction() as s:
        finish = within(s) if within is not None else None
        row, access, _key = _authorize(s, principal, prep.op, prep.spec)
        if row.id != prep.row_public["id"]:
            raise Conflict(f"the {prep.kind} {row.name!r} changed during the call; retry")
        approx = prep.plan.approximation if isinstance(prep.plan, ops.ScorePlan) else None
        parameters: dict[str, Any] = {
            prep.kind: {"id": row.id, "name": row.name},
            "records": prep.spec.records,
            "batches": prep.batches,
            "param_set": prep.param.name,
            "context_sha256": prep.context_sha,
            "input_sha256": input_sha,
        }
        if approx is not None:
            parameters["sigmoid"] = {"degree": approx.degree, "max_error": f"{approx.max_error:.3e}"}
        record = commit_result(
            s,
            runtime.ledger(s),
            access,
            units=prep.spec.records,
            parameters=parameters,
            result_digest=result_sha,
        )
        info = Charge(record_id=record.id, ledger_index=record.ledger_index, quota=_quota(s, access))
        if finish is not None:
            finish(record.id)
        return info


def plan_call(runtime: Runtime, principal: Principal, op: Op, spec: ScopedCall) -> CallSummary:
    """A dry run: everything :func:`run` would check before reading ciphertexts, and the layout."""
    prep, _ = prepare(runtime, principal, op, spec, context=False)
    return prep.summary(runtime.settings.max_request_bytes)


def parse_spec(header: dict[str, Any]) -> CallSpec:
    try:
        return CallSpec.model_validate(header)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadRequest(
            f"invalid HE call header: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


async def run(
    runtime: Runtime,
    pool: WorkerPool,
    principal: Principal,
    project: str,
    op: Op,
    body: AsyncIterator[bytes],
    *,
    max_records: int,
) -> tuple[CallAnswer, list[bytes]]:
    """Evaluate one streamed call in ``project``; returns its answer and the result ciphertexts."""
    reader = frames.StreamReader(body, max_total=1 << 62, max_blob_bytes=0)
    try:
        header, count = await reader.start()
        spec = scoped(parse_spec(header), project)
        if spec.records > max_records:
            raise BadRequest(f"one call carries at most {max_records} records")
        prep, ctx_bytes = await asyncio.to_thread(prepare, runtime, principal, op, spec)
        if count != prep.batches * prep.width:
            raise BadRequest(
                f"{count} ciphertexts sent; {prep.batches} batches × {prep.width} expected for "
                f"{spec.records} records"
            )
        reader.max_blob_bytes = prep.param.max_ciphertext_bytes
        reader.max_total = reader.consumed + count * (prep.param.max_ciphertext_bytes + 4)
        if reader.total > reader.max_total:
            raise PayloadTooLarge(f"the body exceeds {reader.max_total} bytes for {count} ciphertexts")
        results = await evaluate(reader, pool, prep, (prep.context_sha, ctx_bytes), range(prep.batches))
    except Exception:
        with contextlib.suppress(Exception):
            await reader.drain()
        raise
    input_sha, blobs = results
    info = await asyncio.to_thread(commit, runtime, principal, prep, input_sha, frames.BlobDigest.of(blobs))
    return CallAnswer(prep.summary(), info, frames.BlobDigest.of(blobs)), blobs


async def evaluate(
    reader: frames.StreamReader,
    pool: WorkerPool,
    prep: Prepared,
    context: tuple[str, bytes],
    batches: range,
) -> tuple[str, list[bytes]]:
    """Read the ``batches`` one after another and evaluate them in the pool, a bounded number at a time;
    returns the digest of the input ciphertexts and one result ciphertext per batch."""
    results: list[bytes] = [b""] * len(batches)
    batch_bytes = prep.width * prep.param.max_ciphertext_bytes
    slots = asyncio.Semaphore(max(1, min(2 * pool.size + 2, IN_FLIGHT_BYTES // batch_bytes)))
    digest = frames.BlobDigest()
    hasher = ThreadPoolExecutor(1, thread_name_prefix="he-digest")  # in order, off the event loop
    hashed: list[asyncio.Future[None]] = []
    tasks: list[asyncio.Task[None]] = []
    plan = prep.plan.task()  # once: the worker reads it as JSON

    def absorb(blobs: list[bytes]) -> None:
        for b in blobs:
            digest.update(b)  # hashlib releases the GIL on large buffers

    async def one(i: int, blobs: list[bytes]) -> None:
        try:
            task = {"op": prep.op, "plan": plan, "size": prep.batch_size(batches[i])}
            _, out = await asyncio.to_thread(pool.run, task, blobs, context)
            results[i] = out[0]
        finally:
            slots.release()

    try:
        for i in range(len(batches)):
            blobs = [await reader.blob() for _ in range(prep.width)]
            hashed.append(asyncio.get_running_loop().run_in_executor(hasher, absorb, blobs))
            await slots.acquire()
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            tasks.append(asyncio.create_task(one(i, blobs)))
        await reader.finish()
        await asyncio.gather(*tasks, *hashed)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, *hashed, return_exceptions=True)
        raise
    finally:
        hasher.shutdown(wait=False)
    return digest.hexdigest(), results
