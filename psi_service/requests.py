"""Intersection and cardinality modes: the client's request, in parts, answered when complete.

The last part triggers the work: the session is claimed (``open`` → ``processing``) in a short
transaction, the lab re-encrypts every element with the session's server key (in parallel; the
answer is sorted in cardinality mode so that it cannot be mapped back to items), then access is
authorized again and ``commit_result`` charges the quota unit, writes the derived record and its
ledger entry and closes the session — one transaction, before the response is returned. Any failure
in between marks the session ``failed`` and charges nothing.
"""

from __future__ import annotations

from typing import Any

from lab.catalog.service import CatalogReader
from lab.db.base import utcnow
from lab.errors import Conflict, LabError, PayloadTooLarge
from lab.identity import Principal
from lab.projects.access import commit_result
from lab.storage import StoredObject
from psi_service import parallel
from psi_service.models import PsiSessionRow
from psi_service.protocol import Frame, ProtocolError, build_response, decode, encode, parse_request
from psi_service.server import Outcome, PsiService, digest_hex
from psi_service.setups import Artifact


def submit_request(
    service: PsiService, principal: Principal, project: str, session_id: str, body: bytes
) -> Outcome:
    """Accept one part of the client's request for session ``session_id`` of ``project``; answer
    when the last part is in."""
    frame = decode(body, max_bytes=service.max_body_bytes)
    with service.rt.transaction() as s:
        row = service._session(s, principal, project, session_id, lock=True)
        service.check_frame(row, frame)
        if row.mode == "cohort":
            raise ProtocolError("a cohort session takes the operator's setup and response, not a request")
        parts = row.parts or frame.parts
        if frame.parts != parts or not 0 <= frame.part < parts or parts < 1:
            raise ProtocolError(f"part {frame.part} of {frame.parts} does not fit a request of {parts} parts")
        received = list(row.parts_received or [])
        if any(p["part"] == frame.part for p in received):
            raise Conflict(f"part {frame.part} of PSI session {row.id} was already received (replay refused)")
        elements = parse_request(frame.request, reveal=row.mode == "intersection")
        if len(elements) > service.cfg.part_items:
            raise PayloadTooLarge(f"a part holds at most {service.cfg.part_items} items, got {len(elements)}")
        total = row.items_received + len(elements)
        last = len(received) + 1 == parts
        if total > row.declared_size or (last and total != row.declared_size):
            raise ProtocolError(
                f"the request holds {total} items, the session declared {row.declared_size} (truncated?)"
            )
        service._authorize(
            s, principal, row.project_id, row.dataset_id, row.mode, row.column, row.declared_size
        )
        if not last:
            prefix = f"projects/{row.project_id}/psi/sessions/{row.id}"
            obj = service.rt.store.put_bytes(service.rt.store.cfg.bucket_work, prefix, frame.request)
            received.append({"part": frame.part, "key": obj.key, "sha256": obj.sha256, "size": obj.size})
            row.parts, row.parts_received, row.items_received = parts, received, total
            return Outcome(received=len(received), parts=parts)
        row.parts, row.status, row.items_received = parts, "processing", total
        art = service._artifact(s, row.artifact_id)
    try:
        response = _respond(service, row, received, frame.part, elements)
    except LabError as exc:
        service._fail(row.id, exc.detail)
        raise
    except Exception:
        service._fail(row.id, "internal error")
        raise
    try:
        record_id = _commit(service, principal, project, row.id, response, art)
    except LabError as exc:
        service._fail(row.id, exc.detail)
        raise
    out = Frame(
        session=row.id,
        project=row.project_id,
        dataset=row.dataset_id,
        column=row.column,
        mode=row.mode,
        declared_size=row.declared_size,
        part=parts - 1,
        parts=parts,
        response=response,
    )
    return Outcome(received=parts, parts=parts, body=encode(out), record_id=record_id)


def _respond(
    service: PsiService, row: PsiSessionRow, received: list[dict[str, Any]], part: int, last: list[bytes]
) -> bytes:

    by_part: dict[int, list[bytes]] = {part: last}
    for p in received:
        data = service.rt.store.get_bytes(
            StoredObject(service.rt.store.cfg.bucket_work, p["key"], p["sha256"], p["size"])
        )
        by_part[p["part"]] = parse_request(data, reveal=row.mode == "intersection")
    elements = [e for i in sorted(by_part) for e in by_part[i]]
    if len(set(elements)) != len(elements):
        raise ProtocolError("the request repeats encrypted elements across parts")
    with service.rt.transaction() as s:
        version = CatalogReader(s).get(row.dataset_id, row.dataset_version)
    key = service.cache.server_key(version, row.column, row.epoch)
    reveal = row.mode == "intersection"
    try:
        chunks = parallel.run_chunked(
            parallel.process_request_chunk,
            elements,
            key,
            reveal,
            workers=service.cfg.effective_workers,
            min_items=service.cfg.parallel_min_items,
            timeout=service.cfg.worker_timeout_seconds,
        )
    except parallel.WorkerFailed as exc:
        raise ProtocolError(f"the request was refused: {exc.reason}") from None
    out = [e for chunk in chunks for e in chunk]
    if not reveal:
        out.sort()  # hide which response element answers which request element
    return build_response(out)


def _commit(
    service: PsiService, principal: Principal, project: str, session_id: str, response: bytes, art: Artifact
) -> str:
    with service.rt.transaction() as s:
        row = service._session(s, principal, project, session_id, lock=True)
        access = service._authorize(
            s, principal, row.project_id, row.dataset_id, row.mode, row.column, row.declared_size
        )
        record = commit_result(
            s,
            service.rt.ledger(s),
            service._pinned(s, access, row.dataset_version),
            units=1,
            parameters={
                "mode": row.mode,
                "column": row.column,
                "client_size": row.declared_size,
                "client_bound": row.client_bound,
                "data_structure": art.data_structure,
                "fpr": art.fpr,
                "key_epoch": row.epoch,
                "setup_sha256": art.stored.sha256,
                "session": row.id,
                "parts": row.parts,
            },
            result_digest=digest_hex(response),
        )
        row.status, row.record_id, row.finished_at = "done", record.id, utcnow()
        for p in row.parts_received or []:
            service.rt.store.client.remove_object(service.rt.store.cfg.bucket_work, p["key"])
        return record.id
