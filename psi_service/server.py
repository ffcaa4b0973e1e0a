"""The PSI service: sessions, setups, request processing (intersection and cardinality modes).

A run is one **session** (single use, bound to its caller, project, dataset version, column, mode,
declared size, key epoch and the cached setup it was issued with):

1. ``create_session`` — :func:`~lab.projects.access.authorize` (membership, project state, grant,
   policy mode, client-set size bounds, quota), then the cached setup for the size bucket (built
   on first use) and a fresh 16-byte nonce;
2. ``artifact`` — the setup (or, in cohort mode, the lab's request) for the client to download;
3. ``submit_request`` — the client's encrypted set, in one or more parts, each an envelope carrying
   the session's nonce. When the last part arrives the lab re-encrypts everything (in parallel),
   sorts the answer in cardinality mode (so it cannot be mapped back to items), then
   ``commit_result`` charges the quota unit, writes the derived record and its ledger entry and
   closes the session — one transaction, before the response leaves.

The EC work runs **outside** any database transaction (on SQLite a transaction holds the write lock):
the session is claimed (``open`` → ``processing``) in a short transaction, computed, then access
is authorized again and the result committed in a second one. A failure in between marks the
session ``failed`` and charges nothing. Replays (a part or a final request sent twice, a body
with another session's nonce, a session of another project) are refused with 4xx problems.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lab.catalog.service import Catalog, DatasetVersion
from lab.db.base import utcnow
from lab.errors import BadRequest, Conflict, Forbidden, LabError, NotFound, PayloadTooLarge
from lab.identity import Principal
from lab.projects.access import Access, authorize, commit_result
from lab.runtime import Runtime
from psi_service import parallel
from psi_service.config import PsiSettings, get_psi_settings
from psi_service.keys import KeyRing
from psi_service.models import PsiArtifactRow, PsiSessionRow
from psi_service.protocol import (
    MODES,
    POINT_BYTES,
    Frame,
    ProtocolError,
    build_response,
    decode,
    encode,
    parse_request,
)
from psi_service.setups import Artifact, SetupCache
from psi_service.structures import size_bucket

ENVELOPE_OVERHEAD = 4096


@dataclass(frozen=True)
class SessionInfo:
    """What the client needs to run a session (the nonce is shown once, at creation)."""

    id: str
    project: str
    dataset: str
    version: int
    column: str
    mode: str
    declared_size: int
    client_bound: int
    epoch: int
    status: str
    expires_at: dt.datetime
    part_items: int
    max_body_bytes: int
    artifact_sha256: str
    artifact_bytes: int
    data_structure: str
    fpr: str
    lab_set_size: int | None = None
    nonce: str | None = None
    record_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The answer to one uploaded part: more parts expected, or the final response envelope."""

    received: int
    parts: int
    body: bytes | None = None
    record_id: str | None = None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def digest_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PsiService:
    """PSI operations over one runtime (each method manages its own transactions)."""

    def __init__(self, runtime: Runtime, config: PsiSettings | None = None) -> None:
        self.rt = runtime
        self.cfg = config or get_psi_settings()
        self.keys = KeyRing(runtime)
        self.cache = SetupCache(runtime, self.cfg, self.keys)

    @property
    def max_body_bytes(self) -> int:
        """Largest envelope accepted: one full part (or a cohort upload) plus framing."""
        return min(
            self.rt.settings.max_request_bytes, self.cfg.part_items * (POINT_BYTES + 3) + ENVELOPE_OVERHEAD
        )

    # -- access ----------------------------------------------------------------------------------
    def _authorize(
        self, s: Session, principal: Principal, project: str, dataset: str, mode: str, column: str, size: int
    ) -> Access:
        if mode not in MODES:
            raise BadRequest(f"unknown PSI mode {mode!r}; one of {', '.join(MODES)}")
        if size < 1:
            raise BadRequest("the client set must hold at least one item")
        params: dict[str, Any] = {"mode": mode, "column": column, "set_size": size, "units": 1}
        access = authorize(s, principal, project, dataset, "psi", mode, params)
        if mode == "cohort":
            psi = access.policy.channels.psi
            assert psi is not None
            access = authorize(
                s, principal, project, dataset, "psi", mode, params | {"epsilon": str(psi.cohort_epsilon)}
            )
        return access

    def _pinned(self, s: Session, access: Access, version: int) -> Access:
        """``access`` for the dataset version the session was issued on."""
        if access.dataset.version == version:
            return access
        pinned: DatasetVersion = Catalog(s, None, None).get(access.dataset.dataset, version)
        return dataclasses.replace(access, dataset=pinned)

    # -- sessions --------------------------------------------------------------------------------
    def create_session(
        self, principal: Principal, project: str, dataset: str, column: str, mode: str, size: int
    ) -> SessionInfo:
        """Authorize a run and issue its session, building the setup on first use."""
        with self.rt.transaction() as s:
            version = self._authorize(s, principal, project, dataset, mode, column, size).dataset
        epoch = self.keys.active(principal.name)
        bound = size_bucket(size, self.cfg.min_bucket)
        if mode == "cohort":
            art = self.cache.lab_request(version, column, epoch)
        else:
            art = self.cache.setup(version, column, epoch, bound)
        nonce = secrets.token_bytes(16)
        now = utcnow()
        row = PsiSessionRow(
            id="psis_" + uuid.uuid4().hex,
            project_id=project,
            principal=principal.name,
            dataset_id=dataset,
            dataset_version=version.version,
            column=column,
            mode=mode,
            declared_size=size,
            client_bound=bound,
            epoch=epoch,
            artifact_id=art.id,
            nonce_sha256=digest_hex(nonce),
            status="open",
            parts=0,
            parts_received=[],
            items_received=0,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=self.cfg.session_ttl_seconds),
            detail="",
        )
        with self.rt.transaction() as s:
            s.add(row)
        return self._info(row, art, nonce=base64.urlsafe_b64encode(nonce).decode())

    def _info(self, row: PsiSessionRow, art: Artifact, nonce: str | None = None) -> SessionInfo:
        return SessionInfo(
            id=row.id,
            project=row.project_id,
            dataset=row.dataset_id,
            version=row.dataset_version,
            column=row.column,
            mode=row.mode,
            declared_size=row.declared_size,
            client_bound=row.client_bound,
            epoch=row.epoch,
            status=row.status,
            expires_at=_aware(row.expires_at),
            part_items=self.cfg.part_items,
            max_body_bytes=self.max_body_bytes,
            artifact_sha256=art.stored.sha256,
            artifact_bytes=art.stored.size,
            data_structure=art.data_structure if row.mode != "cohort" else "gcs",
            fpr=repr(self.cfg.fpr) if row.mode == "cohort" else art.fpr,
            lab_set_size=art.server_size if row.mode == "cohort" else None,
            nonce=nonce,
            record_id=row.record_id,
        )

    def _session(
        self, s: Session, principal: Principal, session_id: str, *, lock: bool = False
    ) -> PsiSessionRow:
        row = s.get(PsiSessionRow, session_id, with_for_update=lock)
        if row is None:
            raise NotFound(f"no PSI session {session_id}")
        if row.principal != principal.name:
            raise Forbidden(f"PSI session {session_id} belongs to another caller")
        return row

    def _artifact(self, s: Session, artifact_id: str) -> Artifact:
        art = s.get(PsiArtifactRow, artifact_id)
        if art is None:
            raise Conflict("the setup of this session was rotated away; start a new session")
        return Artifact.of(art)

    def session(self, principal: Principal, session_id: str) -> SessionInfo:
        """A session's state (its nonce is not shown again)."""
        with self.rt.transaction() as s:
            row = self._session(s, principal, session_id)
            return self._info(row, self._artifact(s, row.artifact_id))

    def artifact(self, principal: Principal, session_id: str) -> bytes:
        """The envelope carrying the session's setup (or the lab's request, in cohort mode)."""
        with self.rt.transaction() as s:
            row = self._session(s, principal, session_id)
            self._usable(row)
            self._authorize(
                s, principal, row.project_id, row.dataset_id, row.mode, row.column, row.declared_size
            )
            art = self._artifact(s, row.artifact_id)
        data = self.cache.read(art)
        frame = Frame(
            session=row.id,
            project=row.project_id,
            dataset=row.dataset_id,
            column=row.column,
            mode=row.mode,
            declared_size=row.declared_size,
        )
        if row.mode == "cohort":
            frame.request = data
        else:
            frame.setup = data
        return encode(frame)

    # -- checks ----------------------------------------------------------------------------------
    def _usable(self, row: PsiSessionRow) -> None:
        if row.status == "done":
            raise Conflict(f"PSI session {row.id} was already used (replay refused)", session_status="done")
        if row.status != "open":
            raise Conflict(
                f"PSI session {row.id} is {row.status}; start a new session", session_status=row.status
            )
        if _aware(row.expires_at) <= utcnow():
            raise Conflict(f"PSI session {row.id} expired; start a new session", session_status="expired")

    def check_frame(self, row: PsiSessionRow, frame: Frame) -> None:
        """The envelope must belong to this session: id, project, nonce, mode, dataset, column, size."""
        if frame.session != row.id:
            raise ProtocolError("the message names another PSI session")
        if frame.project != row.project_id:
            raise Forbidden(
                f"PSI session {row.id} belongs to another project; requests cannot cross projects"
            )
        if not hmac.compare_digest(digest_hex(frame.nonce), row.nonce_sha256):
            raise ProtocolError(
                "the message does not carry this session's nonce (replayed from another session?)"
            )
        self._usable(row)
        mismatch = [
            name
            for name, mine, theirs in (
                ("mode", row.mode, frame.mode),
                ("dataset", row.dataset_id, frame.dataset),
                ("column", row.column, frame.column),
                ("declared_size", row.declared_size, frame.declared_size),
            )
            if mine != theirs
        ]
        if mismatch:
            raise ProtocolError(f"the message disagrees with its session on {', '.join(mismatch)}")

    def _fail(self, session_id: str, reason: str) -> None:
        with self.rt.transaction() as s:
            row = s.get(PsiSessionRow, session_id, with_for_update=True)
            if row is not None and row.status == "processing":
                row.status, row.detail, row.finished_at = "failed", reason[:500], utcnow()

    # -- intersection / cardinality ----------------------------------------------------------------
    def submit_request(self, principal: Principal, session_id: str, body: bytes) -> Outcome:
        """Accept one part of the client's request; answer when the last part is in."""
        frame = decode(body, max_bytes=self.max_body_bytes)
        with self.rt.transaction() as s:
            row = self._session(s, principal, session_id, lock=True)
            self.check_frame(row, frame)
            if row.mode == "cohort":
                raise ProtocolError("a cohort session takes the operator's setup and response, not a request")
            parts = row.parts or frame.parts
            if frame.parts != parts or not 0 <= frame.part < parts or parts < 1:
                raise ProtocolError(
                    f"part {frame.part} of {frame.parts} does not fit a request of {parts} parts"
                )
            received = list(row.parts_received or [])
            if any(p["part"] == frame.part for p in received):
                raise Conflict(
                    f"part {frame.part} of PSI session {row.id} was already received (replay refused)"
                )
            elements = parse_request(frame.request, reveal=row.mode == "intersection")
            if len(elements) > self.cfg.part_items:
                raise PayloadTooLarge(
                    f"a part holds at most {self.cfg.part_items} items, got {len(elements)}"
                )
            total = row.items_received + len(elements)
            last = len(received) + 1 == parts
            if total > row.declared_size or (last and total != row.declared_size):
                raise ProtocolError(
                    f"the request holds {total} items, the session declared {row.declared_size} (truncated?)"
                )
            self._authorize(
                s, principal, row.project_id, row.dataset_id, row.mode, row.column, row.declared_size
            )
            if not last:
                prefix = f"projects/{row.project_id}/psi/sessions/{row.id}"
                obj = self.rt.store.put_bytes(self.rt.store.cfg.bucket_work, prefix, frame.request)
                received.append({"part": frame.part, "key": obj.key, "sha256": obj.sha256, "size": obj.size})
                row.parts, row.parts_received, row.items_received = parts, received, total
                return Outcome(received=len(received), parts=parts)
            row.parts, row.status, row.items_received = parts, "processing", total
            art = self._artifact(s, row.artifact_id)
        try:
            response = self._respond(row, received, frame.part, elements)
        except LabError as exc:
            self._fail(row.id, exc.detail)
            raise
        except Exception:
            self._fail(row.id, "internal error")
            raise
        try:
            record_id = self._commit(principal, row.id, response, art)
        except LabError as exc:
            self._fail(row.id, exc.detail)
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
        self, row: PsiSessionRow, received: list[dict[str, Any]], part: int, last: list[bytes]
    ) -> bytes:
        from lab.storage import StoredObject

        by_part: dict[int, list[bytes]] = {part: last}
        for p in received:
            data = self.rt.store.get_bytes(
                StoredObject(self.rt.store.cfg.bucket_work, p["key"], p["sha256"], p["size"])
            )
            by_part[p["part"]] = parse_request(data, reveal=row.mode == "intersection")
        elements = [e for i in sorted(by_part) for e in by_part[i]]
        if len(set(elements)) != len(elements):
            raise ProtocolError("the request repeats encrypted elements across parts")
        with self.rt.transaction() as s:
            version = Catalog(s, None, None).get(row.dataset_id, row.dataset_version)
        key = self.cache.server_key(version, row.column, row.epoch)
        reveal = row.mode == "intersection"
        try:
            chunks = parallel.run_chunked(
                parallel.process_request_chunk,
                elements,
                key,
                reveal,
                workers=self.cfg.effective_workers,
                min_items=self.cfg.parallel_min_items,
                timeout=self.cfg.worker_timeout_seconds,
            )
        except parallel.WorkerFailed as exc:
            raise ProtocolError(f"the request was refused: {exc.reason}") from None
        out = [e for chunk in chunks for e in chunk]
        if not reveal:
            out.sort()  # hide which response element answers which request element
        return build_response(out)

    def _commit(self, principal: Principal, session_id: str, response: bytes, art: Artifact) -> str:
        with self.rt.transaction() as s:
            row = self._session(s, principal, session_id, lock=True)
            access = self._authorize(
                s, principal, row.project_id, row.dataset_id, row.mode, row.column, row.declared_size
            )
            record = commit_result(
                s,
                self.rt.ledger(s),
                self._pinned(s, access, row.dataset_version),
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
                self.rt.store.client.remove_object(self.rt.store.cfg.bucket_work, p["key"])
            return record.id
