"""Cohort mode: roles reversed — the lab is the PSI client over its own column.

1. The lab keeps one **base** request per (dataset version, column, key epoch): its column (padded
   with dummies on non-open data) hashed to P-256 and raised to a cached key ``a0`` — never sent.
   Each session re-randomizes it: a fresh exponent ``r`` and a secret permutation, both derived
   from the epoch's master secret and the session id (HKDF, so nothing per session is stored but
   the request itself). The operator receives ``C[j] = base[π(j)]^r``: unlinkable across sessions,
   in an order that says nothing about the identifiers. The session tells it ``lab_set_size``.
2. The operator's notebook plays the PSI server through the client library: it builds a
   ``ServerSetup`` over its own set with its key ``k``, answers ``D[j] = k·C[j]`` and proves it
   with a batched DLEQ proof (:mod:`psi_service.dleq`, RFC 9497 section 2.2) for ``Y = k·G``.
3. The lab refuses repeated answer elements and verifies the proof (in isolated workers: operator
   bytes never reach the API process's library calls); only then does it unblind with
   ``(a0·r)^-1``, test each ``k·H(x)`` against the setup, map the matches back through ``π`` to
   entity keys, and — in one transaction — charge the policy's ``cohort_epsilon`` to the project's
   DP budget on the dataset and a quota unit, write the derived record and its ledger entry, and
   store the cohort server-side.

Why this holds against a malicious operator: the proof fixes one ``k`` for every answer element,
so resident ``x`` is in the cohort iff ``k·H(x)`` passes the setup's filter — a predicate of ``x``
alone that the operator fixed without learning anything about the column (the request is
DDH-blinded, shuffled and fresh). Whatever the setup holds (its own list, random points, an
all-ones Bloom filter), adding or removing one resident changes the cohort by at most one: the
sensitivity that the noisy size and every DP query on the cohort are charged for. The setup itself
needs no proof: any filter is such a predicate.

The operator receives the cohort id and a DP-noised size (the two-sided geometric mechanism of
``lab.mechanisms``, sensitivity 1), never membership. Because the noisy size is paid from the DP budget,
cohort mode needs a ``dp`` grant (with budget) on the dataset, besides the ``psi`` grant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from lab.artifacts.cohorts import save_cohort
from lab.budgets import Budget
from lab.catalog.service import CatalogReader, DatasetVersion
from lab.db.base import utcnow
from lab.errors import IntegrityError, LabError
from lab.identity import Principal
from lab.ledger.entries import canonical_json
from lab.mechanisms import GeometricCount
from lab.projects.access import commit_result
from psi_service import dleq, parallel
from psi_service.keys import P256_ORDER, derive_key
from psi_service.protocol import (
    ProtocolError,
    build_request,
    check_setup,
    decode,
    parse_request,
    parse_response,
)
from psi_service.server import PsiService, session_request
from psi_service.setups import Artifact


class InvalidCohortProof(ProtocolError):
    """The operator's cohort answer does not carry a valid proof that it is the lab's request
    raised to one secret key."""

    code, title = "psi-invalid-proof", "Invalid PSI cohort proof"


CONFIDENCE = 0.95


@dataclass(frozen=True)
class CohortResult:
    """What the operator learns from a cohort run."""

    cohort_id: str
    noisy_size: int
    epsilon: str
    error_bound_95: int
    expires_at: dt.datetime
    record_id: str
    dataset: str
    version: int
    column: str


def _mechanism(epsilon: Decimal) -> GeometricCount:
    """The cohort size's mechanism: DP's two-sided geometric count, sensitivity 1 (one resident)."""
    return GeometricCount(float(epsilon), sensitivity=1)


def geometric_bound(epsilon: Decimal, confidence: float = CONFIDENCE) -> int:
    """Smallest ``t`` with ``P(|Z| >= t+1) <= 1 - confidence`` for the cohort size's noise ``Z``.

    >>> geometric_bound(Decimal("0.1")), geometric_bound(Decimal("1"))
    (30, 3)
    """
    return int(_mechanism(epsilon).bound(confidence))


def noisy_count(true_count: int, epsilon: Decimal) -> int:
    """The cohort size released to the operator: geometric noise (``lab.mechanisms``), clamped at 0."""
    noisy = _mechanism(epsilon).randomise(np.array([true_count]), rng=None)
    return max(0, int(noisy[0]))


def _session_secrets(
    service: PsiService, version: DatasetVersion, column: str, epoch: int, session_id: str
) -> tuple[int, bytes]:
    """The session's re-randomizing exponent ``r`` and shuffle seed (HKDF of the epoch master)."""
    master = service.keys.master(epoch)
    scoped = f"{column}|{session_id}"
    r = derive_key(master, "cohort-session", version.dataset, version.version, scoped)
    seed = derive_key(master, "cohort-shuffle", version.dataset, version.version, scoped)
    return int.from_bytes(r, "big"), seed


def permutation(seed: bytes, n: int) -> list[int]:
    """A secret uniformly random permutation of ``range(n)``: indices sorted by HMAC-SHA256(seed, i).

    >>> sorted(permutation(b"k", 5)) == list(range(5)), permutation(b"k", 5) == permutation(b"k", 5)
    (True, True)
    """
    return sorted(range(n), key=lambda i: hmac.new(seed, i.to_bytes(8, "big"), hashlib.sha256).digest())


def issue_request(
    service: PsiService,
    version: DatasetVersion,
    column: str,
    epoch: int,
    session_id: str,
    project: str,
    base: Artifact,
) -> dict[str, object]:
    """Store the session's request (``base[π(j)]^r``); returns its reference for the session row."""
    elements = parse_request(service.cache.read(base), reveal=True)
    r, seed = _session_secrets(service, version, column, epoch, session_id)
    order = permutation(seed, len(elements))
    try:
        chunks = parallel.run_chunked(
            parallel.process_request_chunk,
            [elements[i] for i in order],
            r.to_bytes(32, "big"),
            True,
            workers=service.cfg.effective_workers,
            min_items=service.cfg.parallel_min_items,
            timeout=service.cfg.worker_timeout_seconds,
        )
    except parallel.WorkerFailed as exc:
        raise ProtocolError(f"the cohort request could not be built: {exc.reason}") from None
    data = build_request([e for c in chunks for e in c], reveal=True)
    obj = service.rt.store.put_bytes(
        service.rt.store.cfg.bucket_work, f"projects/{project}/psi/sessions/{session_id}/lab-request", data
    )
    return {
        "kind": "lab-request",
        "bucket": obj.bucket,
        "key": obj.key,
        "sha256": obj.sha256,
        "size": obj.size,
    }


def verify_answer(
    service: PsiService, proof: dleq.Proof, request: list[bytes], response: list[bytes]
) -> None:
    """Refuse unless ``proof`` shows ``response[j] = k·request[j]`` for one ``k`` (isolated workers)."""
    spans = dleq.batches(len(request))
    if len(request) != len(response) or len(spans) != len(proof.batches):
        raise InvalidCohortProof("the proof does not cover the answer")
    for (a, b), (c, s) in zip(spans, proof.batches, strict=True):
        items = [(i - a, request[i], response[i]) for i in range(a, b)]
        try:
            parts = parallel.run_chunked(
                parallel.dleq_chunk,
                items,
                proof.public_key,
                True,
                workers=service.cfg.effective_workers,
                min_items=service.cfg.parallel_min_items,
                timeout=service.cfg.worker_timeout_seconds,
                isolate=True,
            )
            m, z = dleq.add_partials(parts, with_z=True)
        except (parallel.WorkerFailed, dleq.InvalidProof) as exc:
            raise InvalidCohortProof(f"the cohort answer was refused: {exc}") from None
        assert z is not None
        if not dleq.verify_batch(proof.public_key, m, z, c, s):
            raise InvalidCohortProof(
                "the cohort answer is not the lab's request raised to one key (DLEQ proof refused)"
            )


def finish_cohort(
    service: PsiService, principal: Principal, project: str, session_id: str, body: bytes
) -> CohortResult:
    """Intersect the operator's setup and response with the lab's request and store the cohort
    (session ``session_id`` of ``project``)."""
    frame = decode(body, max_bytes=service.rt.settings.max_request_bytes)
    with service.rt.transaction() as s:
        row = service._session(s, principal, project, session_id, lock=True)
        service.check_frame(row, frame)
        if row.mode != "cohort":
            raise ProtocolError(f"a {row.mode} session takes a request, not a cohort upload")
        check_setup(frame.setup)
        elements = parse_response(frame.response, distinct=True)
        try:
            proof = dleq.decode(frame.proof)
        except dleq.InvalidProof as exc:
            raise InvalidCohortProof(f"the cohort answer must carry a DLEQ proof: {exc}") from None
        art = service._artifact(s, row.artifact_id)
        issued = session_request(row)
        if len(elements) != art.server_size:
            raise ProtocolError(
                f"the response answers {len(elements)} elements, the lab's request had {art.server_size} "
                "(truncated?)"
            )
        service._authorize(
            s, principal, row.project_id, row.dataset_id, "cohort", row.column, row.declared_size
        )
        row.status = "processing"
        version = CatalogReader(s).get(row.dataset_id, row.dataset_version)
    try:
        request = parse_request(service.rt.store.get_bytes(issued), reveal=True)
        verify_answer(service, proof, request, elements)
        r, seed = _session_secrets(service, version, row.column, row.epoch, row.id)
        a0 = int.from_bytes(service.cache.cohort_key(version, row.column, row.epoch), "big")
        key = (a0 * r % P256_ORDER).to_bytes(32, "big")
        try:
            masks = parallel.run_chunked(
                parallel.intersect_chunk,
                elements,
                key,
                frame.setup,
                workers=service.cfg.effective_workers,
                min_items=service.cfg.parallel_min_items,
                timeout=service.cfg.worker_timeout_seconds,
                tail=(True,),
                isolate=True,
            )
        except parallel.WorkerFailed as exc:
            raise ProtocolError(f"the operator's setup or response was refused: {exc.reason}") from None
        mask = np.concatenate([np.frombuffer(m, dtype=np.uint8) for m in masks])  # type: ignore[arg-type]
        norm, keys = service.cache.column(version, row.column)
        if norm.digest != art.items_sha256:
            raise IntegrityError("the dataset column no longer matches the cached cohort request")
        order = permutation(seed, len(request))
        matched = [order[int(j)] for j in np.nonzero(mask)[0]]
        # base indices past the real values are padding
        entity_keys = sorted({k for i in matched if i < len(norm.values) for k in keys[i]})
    except LabError as exc:
        service._fail(row.id, exc.detail)
        raise
    except Exception:
        service._fail(row.id, "internal error")
        raise
    try:
        result = _commit_cohort(service, principal, project, row.id, entity_keys)
    except LabError as exc:
        service._fail(row.id, exc.detail)
        raise
    service.rt.store.client.remove_object(issued.bucket, issued.key)  # the request served its session
    return result


def _commit_cohort(
    service: PsiService, principal: Principal, project: str, session_id: str, entity_keys: list[str]
) -> CohortResult:
    with service.rt.transaction() as s:
        row = service._session(s, principal, project, session_id, lock=True)
        access = service._authorize(
            s, principal, row.project_id, row.dataset_id, "cohort", row.column, row.declared_size
        )
        access = service._pinned(s, access, row.dataset_version)
        psi = access.policy.channels.psi
        assert psi is not None
        epsilon = psi.cohort_epsilon
        noisy = noisy_count(len(entity_keys), epsilon)
        bound = geometric_bound(epsilon)
        cohort_id = "co_" + uuid.uuid4().hex
        released = {"cohort": cohort_id, "noisy_size": noisy}
        record = commit_result(
            s,
            service.rt.ledger(s),
            access,
            cost=Budget.of(epsilon),
            units=1,
            parameters={
                "mode": "cohort",
                "column": row.column,
                "client_size": row.declared_size,
                "key_epoch": row.epoch,
                "session": row.id,
                "cohort": cohort_id,
                "noise": {"mechanism": "geometric", "epsilon": str(epsilon), "error_bound_95": bound},
            },
            result_digest=hashlib.sha256(canonical_json(released)).hexdigest(),
        )
        ttl = dt.timedelta(days=service.cfg.cohort_ttl_days)
        if access.project.ends_at is not None:
            ttl = min(ttl, access.project.ends_at - utcnow())
        cohort = save_cohort(
            s,
            service.rt.store,
            project_id=row.project_id,
            dataset_id=row.dataset_id,
            dataset_version=row.dataset_version,
            column=row.column,
            keys=entity_keys,
            created_by=principal.name,
            record_id=record.id,
            ttl=ttl,
            cohort_id=cohort_id,
        )
        row.status, row.record_id, row.finished_at = "done", record.id, utcnow()
        return CohortResult(
            cohort_id=cohort.id,
            noisy_size=noisy,
            epsilon=str(epsilon),
            error_bound_95=bound,
            expires_at=cohort.expires_at,
            record_id=record.id,
            dataset=row.dataset_id,
            version=row.dataset_version,
            column=row.column,
        )
