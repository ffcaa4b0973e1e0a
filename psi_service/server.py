"""The PSI service: sessions, their setups and the checks every upload passes.

A run is one **session** (single use, bound to its caller, project, dataset version, column, mode,
declared size, key epoch and the cached setup it was issued with):

1. ``create_session`` — :func:`~lab.projects.access.authorize` (membership, project state, grant,
   policy mode, client-set size bounds, quota), then the cached setup for the size bucket (built
   on first use) and a fresh 16-byte nonce;
2. ``artifact`` — the setup (or, in cohort mode, the lab's request) for the client to download;
3. the upload — :func:`psi_service.requests.submit_request` (intersection, cardinality) or
   :func:`psi_service.cohort.finish_cohort` (cohort): envelopes carrying the session's nonce, answered
   and charged (``commit_result``, one transaction) before the response leaves.

The EC work runs **outside** any database transaction (on SQLite a transaction holds the write lock):
the session is claimed (``open`` → ``processing``) in a short transaction, computed, then access
is authorized again and the result committed in a second one. A failure in between marks the
session ``failed`` and charges nothing. Replays (a part or a final request sent twice, a body
with another session's nonce) are refused with 4xx problems.

Every session is addressed under its project (the API's ``/api/v1/projects/{project}/psi/…``):
a session of another project answers exactly as one that does not exist, and an envelope naming
another project than its session's is refused (:class:`~lab.errors.ProjectMismatch`).
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

from lab.catalog.service import CatalogReader, DatasetVersion
from lab.db.base import utcnow
from lab.errors import BadRequest, Conflict, NotFound, ProjectMismatch
from lab.identity import Principal
from lab.projects.access import Access, Ask, authorize
from lab.runtime import Runtime
from lab.settings import PsiSettings
from lab.storage import StoredObject
from psi_service.access import PsiParams, check_params
from psi_service.keys import KeyRing
from psi_service.models import PsiArtifactRow, PsiSessionRow
from psi_service.protocol import MODES, POINT_BYTES, Frame, ProtocolError, encode
from psi_service.setups import Artifact, SetupCache
from psi_service.structures import choose_structure, size_bucket

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


def session_request(row: PsiSessionRow) -> StoredObject:
    """Cohort mode: where the session's own request (fresh key, shuffled) is kept."""
    found = [p for p in row.parts_received or [] if p.get("kind") == "lab-request"]
    if row.mode != "cohort" or len(found) != 1:
        raise Conflict(f"PSI session {row.id} has no cohort request; start a new session")
    p = found[0]
    return StoredObject(p["bucket"], p["key"], p["sha256"], p["size"])


def digest_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PsiService:
    """PSI operations over one runtime (each method manages its own transactions)."""

    def __init__(self, runtime: Runtime, config: PsiSettings | None = None) -> None:
        self.rt = runtime
        self.cfg = config or runtime.settings.psi
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
        params = PsiParams(mode, column, size)
        access = authorize(
            s, principal, project, dataset, "psi", mode, Ask(units=1), check=check_params, params=params
        )
        if mode == "cohort":  # the cohort's noisy size is a DP release: its ε must fit too
            psi = access.policy.channels.psi
            assert psi is not None
            cohort = Ask.spend(psi.cohort_epsilon, units=1)
            access = authorize(
                s, principal, project, dataset, "psi", mode, cohort, check=check_params, params=params
            )
        return access

    def _pinned(self, s: Session, access: Access, version: int) -> Access:
        """``access`` for the dataset version the session was issued on."""
        if access.dataset.version == version:
            return access
        pinned: DatasetVersion = CatalogReader(s).get(access.dataset.dataset, version)
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
        session_id = "psis_" + uuid.uuid4().hex
        issued: list[dict[str, Any]] = []
        if mode == "cohort":
            from psi_service.cohort import issue_request

            art = self.cache.lab_request(version, column, epoch)
            issued.append(issue_request(self, version, column, epoch, session_id, project, art))
        else:
            art = self.cache.setup(version, column, epoch, bound)
        nonce = secrets.token_bytes(16)
        now = utcnow()
        row = PsiSessionRow(
            id=session_id,
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
            parts_received=issued,  # cohort: the session's own request (fresh key, shuffled)
            items_received=0,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=self.cfg.session_ttl_seconds),
            detail="",
        )
        with self.rt.transaction() as s:
            s.add(row)
        return self._info(row, art, nonce=base64.urlsafe_b64encode(nonce).decode())

    def _info(self, row: PsiSessionRow, art: Artifact, nonce: str | None = None) -> SessionInfo:
        stored = art.stored
        if row.mode == "cohort":
            stored = session_request(row)
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
            expires_at=row.expires_at,
            part_items=self.cfg.part_items,
            max_body_bytes=self.max_body_bytes,
            artifact_sha256=stored.sha256,
            artifact_bytes=stored.size,
            data_structure=(
                art.data_structure
                if row.mode != "cohort"  # cohort: what the operator's setup should use
                else choose_structure(self.cfg.fpr, max(1, art.server_size), row.declared_size)
            ),
            fpr=repr(self.cfg.fpr) if row.mode == "cohort" else art.fpr,
            lab_set_size=art.server_size if row.mode == "cohort" else None,
            nonce=nonce,
            record_id=row.record_id,
        )

    def _session(
        self, s: Session, principal: Principal, project: str, session_id: str, *, lock: bool = False
    ) -> PsiSessionRow:
        """The caller's session ``session_id`` of ``project``: another project's or another caller's
        is reported exactly as one that does not exist."""
        row = s.get(PsiSessionRow, session_id, with_for_update=lock)
        if row is None or row.project_id != project or row.principal != principal.name:
            raise NotFound(f"no PSI session {session_id} of yours in project {project}")
        return row

    def _artifact(self, s: Session, artifact_id: str) -> Artifact:
        art = s.get(PsiArtifactRow, artifact_id)
        if art is None:
            raise Conflict("the setup of this session was rotated away; start a new session")
        return Artifact.of(art)

    def session(self, principal: Principal, project: str, session_id: str) -> SessionInfo:
        """A session's state (its nonce is not shown again)."""
        with self.rt.transaction() as s:
            row = self._session(s, principal, project, session_id)
            return self._info(row, self._artifact(s, row.artifact_id))

    def artifact(self, principal: Principal, project: str, session_id: str) -> bytes:
        """The envelope carrying the session's setup (or the lab's request, in cohort mode)."""
        with self.rt.transaction() as s:
            row = self._session(s, principal, project, session_id)
            self._usable(row)
            self._authorize(
                s, principal, row.project_id, row.dataset_id, row.mode, row.column, row.declared_size
            )
            art = self._artifact(s, row.artifact_id)
        data = self.rt.store.get_bytes(session_request(row)) if row.mode == "cohort" else self.cache.read(art)
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
        if row.expires_at <= utcnow():
            raise Conflict(f"PSI session {row.id} expired; start a new session", session_status="expired")

    def check_frame(self, row: PsiSessionRow, frame: Frame) -> None:
        """The envelope must belong to this session: id, project, nonce, mode, dataset, column, size."""
        if frame.session != row.id:
            raise ProtocolError("the message names another PSI session")
        if frame.project != row.project_id:
            raise ProjectMismatch(
                f"the message names project {frame.project!r}, PSI session {row.id} is of "
                f"{row.project_id!r}; requests cannot cross projects"
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
