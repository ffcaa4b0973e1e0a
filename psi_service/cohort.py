"""Cohort mode: roles reversed — the lab is the PSI client over its own column.

1. At session creation the lab issues its ``Request`` over the column (cached per dataset version,
   column and key epoch; encrypted under a per-epoch cohort-client key; padded with dummies on
   non-open data). The session tells the operator how many elements it holds (``lab_set_size``).
2. The operator's notebook plays the PSI server through the client library: it builds a
   ``ServerSetup`` over its own set (FPR from the session, sized for ``lab_set_size`` queries) and
   answers the lab's request with its own key; both go back in one envelope.
3. The lab intersects (in an isolated worker: operator bytes never reach the API process's
   library calls), maps the matched identifiers to entity keys, and — in one transaction —
   charges the policy's ``cohort_epsilon`` to the project's DP budget on the dataset and a quota
   unit, writes the derived record and its ledger entry, and stores the cohort server-side.

The operator receives the cohort id and a DP-noised size (two-sided geometric mechanism from
diffprivlib, sensitivity 1), never membership. Because the noisy size is paid from the DP budget,
cohort mode needs a ``dp`` grant (with budget) on the dataset, besides the ``psi`` grant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from lab.artifacts.cohorts import save_cohort
from lab.budgets import Budget
from lab.catalog.service import Catalog
from lab.db.base import utcnow
from lab.errors import IntegrityError, LabError
from lab.identity import Principal
from lab.ledger.entries import canonical_json
from lab.projects.access import commit_result
from psi_service import parallel
from psi_service.protocol import ProtocolError, check_setup, decode, parse_response
from psi_service.server import PsiService, _aware

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


def geometric_bound(epsilon: Decimal, confidence: float = CONFIDENCE) -> int:
    """Smallest ``t`` with ``P(|Z| >= t+1) <= 1 - confidence`` for two-sided geometric noise ``Z``.

    ``P(|Z| >= k) = 2 α^k / (1 + α)`` with ``α = exp(-ε)`` (sensitivity 1), so ``|Z| <= t`` with
    probability at least ``confidence``.

    >>> geometric_bound(Decimal("0.1")), geometric_bound(Decimal("1"))
    (30, 3)
    """
    alpha = math.exp(-float(epsilon))
    k = math.ceil(math.log((1 - confidence) * (1 + alpha) / 2) / math.log(alpha))
    return max(0, k - 1)


def noisy_count(true_count: int, epsilon: Decimal) -> int:
    """The cohort size released to the operator: geometric noise (diffprivlib), clamped at 0."""
    from diffprivlib.mechanisms import Geometric

    noisy = Geometric(epsilon=float(epsilon), sensitivity=1).randomise(int(true_count))
    return max(0, int(noisy))


def finish_cohort(service: PsiService, principal: Principal, session_id: str, body: bytes) -> CohortResult:
    """Intersect the operator's setup and response with the lab's request and store the cohort."""
    frame = decode(body, max_bytes=service.rt.settings.max_request_bytes)
    with service.rt.transaction() as s:
        row = service._session(s, principal, session_id, lock=True)
        service.check_frame(row, frame)
        if row.mode != "cohort":
            raise ProtocolError(f"a {row.mode} session takes a request, not a cohort upload")
        check_setup(frame.setup)
        elements = parse_response(frame.response)
        art = service._artifact(s, row.artifact_id)
        if len(elements) != art.server_size:
            raise ProtocolError(
                f"the response answers {len(elements)} elements, the lab's request had {art.server_size} "
                "(truncated?)"
            )
        service._authorize(
            s, principal, row.project_id, row.dataset_id, "cohort", row.column, row.declared_size
        )
        row.status = "processing"
        version = Catalog(s, None, None).get(row.dataset_id, row.dataset_version)
    try:
        key = service.cache.cohort_key(version, row.column, row.epoch)
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
        matched = np.nonzero(mask[: len(norm.values)])[0]  # indices past the real values are padding
        entity_keys = sorted({k for i in matched for k in keys[int(i)]})
    except LabError as exc:
        service._fail(row.id, exc.detail)
        raise
    except Exception:
        service._fail(row.id, "internal error")
        raise
    try:
        return _commit_cohort(service, principal, row.id, entity_keys)
    except LabError as exc:
        service._fail(row.id, exc.detail)
        raise


def _commit_cohort(
    service: PsiService, principal: Principal, session_id: str, entity_keys: list[str]
) -> CohortResult:
    with service.rt.transaction() as s:
        row = service._session(s, principal, session_id, lock=True)
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
            ttl = min(ttl, _aware(access.project.ends_at) - utcnow())
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
            expires_at=_aware(cohort.expires_at),
            record_id=record.id,
            dataset=row.dataset_id,
            version=row.dataset_version,
            column=row.column,
        )
