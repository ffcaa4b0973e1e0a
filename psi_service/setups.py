"""The setup cache: each PSI artifact is computed once, in parallel, and kept in object storage.

Artifacts of one (dataset version, column, key epoch), in the work bucket under ``psi/setups/``:

* ``encrypted-set`` — the server column's EC-encrypted elements (the expensive part: one P-256
  scalar multiplication per distinct identifier, spread over all cores), **sealed** with the lab key;
* ``setup`` — the ``ServerSetup`` for one client-size bucket (GCS or Bloom filter, built from the
  encrypted set in seconds, byte-identical to what openmined-psi would build); clients download it;
* ``lab-request`` — cohort mode: the lab's own ``Request`` over its column (the lab is the PSI client).

The index rows (``psi_setups``) are unique per (kind, dataset, version, column, epoch, bucket); two
processes that race to build the same artifact both succeed and one row wins.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lab.catalog.service import CatalogFetcher, DatasetVersion
from lab.db.base import utcnow
from lab.errors import BadRequest, Unavailable
from lab.ledger.signing import seal, unseal
from lab.mechanisms import GeometricCount, keyed_rng
from lab.runtime import Runtime
from lab.settings import PsiSettings
from lab.storage import StoredObject
from psi_service import parallel
from psi_service.keys import KeyRing, derive_key
from psi_service.models import PsiArtifactRow
from psi_service.normalize import Normalized, from_canonical
from psi_service.protocol import POINT_BYTES, build_request
from psi_service.structures import build_setup

_locks: dict[tuple[object, ...], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(key: tuple[object, ...]) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


@dataclass(frozen=True)
class Artifact:
    """A cached PSI artifact as the service sees it."""

    id: str
    kind: str
    dataset: str
    version: int
    column: str
    epoch: int
    client_bound: int
    data_structure: str
    fpr: str
    server_size: int
    items_sha256: str
    stored: StoredObject
    sealed: bool
    build_seconds: float
    workers: int

    @classmethod
    def of(cls, row: PsiArtifactRow) -> Artifact:
        return cls(
            row.id,
            row.kind,
            row.dataset_id,
            row.dataset_version,
            row.column,
            row.epoch,
            row.client_bound,
            row.data_structure,
            row.fpr,
            row.server_size,
            row.items_sha256,
            StoredObject(row.bucket, row.object_key, row.sha256, row.size_bytes),
            row.sealed,
            float(row.build_seconds),
            row.workers,
        )


class SetupCache:
    """Get-or-build for PSI artifacts."""

    def __init__(self, runtime: Runtime, config: PsiSettings, keys: KeyRing | None = None) -> None:
        self.rt, self.cfg = runtime, config
        self.keys = keys or KeyRing(runtime)
        self._fresh: dict[str, bytes] = {}  # encrypted sets built by this instance, not re-read

    # -- the column ----------------------------------------------------------------------------
    def column(self, version: DatasetVersion, column: str) -> tuple[Normalized, list[list[str]]]:
        """The column's distinct normalized identifiers (sorted) and the entity keys of each."""
        spec = version.policy.column(column)
        if spec.normalization is None:
            raise BadRequest(f"column {column!r} is not an identifier column")
        path = CatalogFetcher(self.rt.store).fetch(version, self.rt.cache_dir)
        key = version.policy.entity_key
        table = pq.read_table(path, columns=[column, key])
        canon: list[list[str | None]] = parallel.run_chunked(
            parallel.normalize_chunk,
            table.column(column).to_pylist(),
            spec.normalization.value,
            workers=self.cfg.effective_workers,
            min_items=max(self.cfg.parallel_min_items, 50_000),
            timeout=self.cfg.worker_timeout_seconds,
        )
        return from_canonical([v for chunk in canon for v in chunk], table.column(key).to_pylist())

    # -- index ---------------------------------------------------------------------------------
    def _find(
        self, kind: str, version: DatasetVersion, column: str, epoch: int, bound: int
    ) -> Artifact | None:
        with self.rt.transaction() as s:
            row = s.execute(
                select(PsiArtifactRow).where(
                    PsiArtifactRow.kind == kind,
                    PsiArtifactRow.dataset_id == version.dataset,
                    PsiArtifactRow.dataset_version == version.version,
                    PsiArtifactRow.column == column,
                    PsiArtifactRow.epoch == epoch,
                    PsiArtifactRow.client_bound == bound,
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            if kind == "setup" and row.fpr != repr(self.cfg.fpr):  # configuration changed: rebuild
                s.delete(row)
                return None
            return Artifact.of(row)

    def _save(self, art: Artifact) -> Artifact:
        try:
            with self.rt.transaction() as s:
                s.add(
                    PsiArtifactRow(
                        id=art.id,
                        kind=art.kind,
                        dataset_id=art.dataset,
                        dataset_version=art.version,
                        column=art.column,
                        epoch=art.epoch,
                        client_bound=art.client_bound,
                        data_structure=art.data_structure,
                        fpr=art.fpr,
                        server_size=art.server_size,
                        items_sha256=art.items_sha256,
                        bucket=art.stored.bucket,
                        object_key=art.stored.key,
                        sha256=art.stored.sha256,
                        size_bytes=art.stored.size,
                        sealed=art.sealed,
                        build_seconds=f"{art.build_seconds:.3f}",
                        workers=art.workers,
                        created_at=utcnow(),
                    )
                )
            return art
        except IntegrityError:  # built concurrently elsewhere: use the winner
            with self.rt.transaction() as s:
                row = s.execute(
                    select(PsiArtifactRow).where(
                        PsiArtifactRow.kind == art.kind,
                        PsiArtifactRow.dataset_id == art.dataset,
                        PsiArtifactRow.dataset_version == art.version,
                        PsiArtifactRow.column == art.column,
                        PsiArtifactRow.epoch == art.epoch,
                        PsiArtifactRow.client_bound == art.client_bound,
                    )
                ).scalar_one()
                return Artifact.of(row)

    def _put(self, kind: str, version: DatasetVersion, column: str, epoch: int, data: bytes) -> StoredObject:
        prefix = f"psi/setups/{version.dataset}/v{version.version}/{column}/e{epoch}/{kind}"
        return self.rt.store.put_bytes(self.rt.store.cfg.bucket_work, prefix, data)

    def _context(self, version: DatasetVersion, column: str, epoch: int) -> bytes:
        return f"lab-psi-encrypted-set|{version.dataset}|{version.version}|{column}|{epoch}".encode()

    def read(self, art: Artifact) -> bytes:
        """The artifact's bytes (digest-verified; unsealed if sealed)."""
        data = self.rt.store.get_bytes(art.stored)
        if art.sealed:
            data = unseal(
                self.rt.settings.encryption_key,
                data,
                f"lab-psi-encrypted-set|{art.dataset}|{art.version}|{art.column}|{art.epoch}".encode(),
            )
        return data

    def _run(self, fn: Callable[..., list[bytes]], items: list[str], *args: object) -> list[bytes]:
        try:
            chunks: list[list[bytes]] = parallel.run_chunked(
                fn,
                items,
                *args,
                workers=self.cfg.effective_workers,
                min_items=self.cfg.parallel_min_items,
                timeout=self.cfg.worker_timeout_seconds,
            )
        except parallel.WorkerFailed as exc:
            raise Unavailable(f"building a PSI artifact failed: {exc.reason}") from None
        return [e for chunk in chunks for e in chunk]

    # -- builders ------------------------------------------------------------------------------
    def encrypted_set(self, version: DatasetVersion, column: str, epoch: int) -> Artifact:
        """The column's encrypted elements, built once per (version, column, epoch)."""
        key = ("encrypted-set", version.dataset, version.version, column, epoch, 0)
        with _lock_for(key):
            found = self._find("encrypted-set", version, column, epoch, 0)
            if found:
                return found
            t0 = time.perf_counter()
            norm, _ = self.column(version, column)
            scalar = derive_key(self.keys.master(epoch), "server", version.dataset, version.version, column)
            items = norm.values + padding(self.rt.settings.encryption_key, version, column)
            elements = sorted(self._run(parallel.encrypt_server_chunk, items, scalar))
            blob = b"".join(elements)
            assert len(blob) == POINT_BYTES * len(elements)
            sealed = seal(self.rt.settings.encryption_key, blob, self._context(version, column, epoch))
            stored = self._put("encrypted-set", version, column, epoch, sealed)
            seconds = time.perf_counter() - t0
            mine = "pss_" + uuid.uuid4().hex
            art = self._save(
                Artifact(
                    mine, "encrypted-set", version.dataset, version.version, column,
                    epoch, 0, "raw", "0", len(elements), norm.digest, stored, True, seconds,
                    self.cfg.effective_workers if len(elements) >= self.cfg.parallel_min_items else 1,
                )
            )  # fmt: skip
            if art.id == mine:
                self._fresh[art.id] = blob
            return art

    def setup(self, version: DatasetVersion, column: str, epoch: int, bound: int) -> Artifact:
        """The ``ServerSetup`` for clients of at most ``bound`` items."""
        key = ("setup", version.dataset, version.version, column, epoch, bound)
        with _lock_for(key):
            found = self._find("setup", version, column, epoch, bound)
            if found:
                return found
            enc = self.encrypted_set(version, column, epoch)
            blob = self._fresh.pop(enc.id, None) or self.read(enc)
            t0 = time.perf_counter()
            elements = [blob[i : i + POINT_BYTES] for i in range(0, len(blob), POINT_BYTES)]
            data, kind = build_setup(elements, self.cfg.fpr, bound)
            stored = self._put("setup", version, column, epoch, data)
            return self._save(
                Artifact(
                    "pss_" + uuid.uuid4().hex, "setup", version.dataset, version.version, column, epoch,
                    bound, kind, repr(self.cfg.fpr), len(elements), enc.items_sha256, stored, False,
                    enc.build_seconds + time.perf_counter() - t0, enc.workers,
                )
            )  # fmt: skip

    def lab_request(self, version: DatasetVersion, column: str, epoch: int) -> Artifact:
        """Cohort mode: the lab's ``Request`` (reveal=True) over its column, in sorted-value order."""
        key = ("lab-request", version.dataset, version.version, column, epoch, 0)
        with _lock_for(key):
            found = self._find("lab-request", version, column, epoch, 0)
            if found:
                return found
            norm, _ = self.column(version, column)
            scalar = self.cohort_key(version, column, epoch)
            t0 = time.perf_counter()
            items = norm.values + padding(self.rt.settings.encryption_key, version, column)  # padding last
            elements = self._run(parallel.create_request_chunk, items, scalar, True)
            seconds = time.perf_counter() - t0
            stored = self._put("lab-request", version, column, epoch, build_request(elements, reveal=True))
            return self._save(
                Artifact(
                    "pss_" + uuid.uuid4().hex, "lab-request", version.dataset, version.version, column,
                    epoch, 0, "request", "0", len(elements), norm.digest, stored, False, seconds,
                    self.cfg.effective_workers if len(elements) >= self.cfg.parallel_min_items else 1,
                )
            )  # fmt: skip

    def server_key(self, version: DatasetVersion, column: str, epoch: int) -> bytes:
        return derive_key(self.keys.master(epoch), "server", version.dataset, version.version, column)

    def cohort_key(self, version: DatasetVersion, column: str, epoch: int) -> bytes:
        return derive_key(self.keys.master(epoch), "cohort-client", version.dataset, version.version, column)


#: Non-open columns are padded with ``PAD_OFFSET + Z`` dummies, ``Z`` two-sided geometric at
#: ``PAD_EPSILON`` (sensitivity one identifier), as the catalog's size (:mod:`lab.catalog.visibility`).
PAD_EPSILON = 0.1
PAD_OFFSET = 1024  # P(Z < -PAD_OFFSET) = e^-102.4 / (1 + α): the clamp at 0 is a δ of about 1e-45


def padding_count(key: bytes, version: DatasetVersion, column: str) -> int:
    """How many dummies hide the size of ``column`` of a non-open ``version`` (0 for open data).

    ECDH-PSI shows the operator the number of elements the lab sends (the cohort request) or holds
    (a setup), i.e. the column's distinct identifiers plus this padding: ``PAD_OFFSET + Z`` is a
    ``PAD_EPSILON``-DP release of that count for one identifier added or removed. The draw is keyed
    by the lab's secret and (dataset, version, column), so every artifact of that column — every key
    epoch, the setup and the cohort request — repeats the same count and nothing can be averaged.
    (A uniform count drawn per artifact, as before, was no DP release: a draw of 0 showed the exact
    size, and the minimum over key epochs converged to it.)

    >>> from types import SimpleNamespace as NS
    >>> v = NS(dataset="population", version=3, policy=NS(is_open=False))
    >>> a, b = padding_count(b"k", v, "phone"), padding_count(b"k", v, "resident_id")
    >>> a == padding_count(b"k", v, "phone"), a != b
    (True, True)
    >>> padding_count(b"k", NS(dataset="x", version=1, policy=NS(is_open=True)), "uscc")
    0
    """
    if version.policy.is_open:
        return 0
    rng = keyed_rng(key, f"lab.psi.padding:{version.dataset}:{version.version}:{column}")
    z = int(GeometricCount(PAD_EPSILON, 1).randomise(np.array([0]), rng)[0])
    return max(0, PAD_OFFSET + z)


def padding(key: bytes, version: DatasetVersion, column: str) -> list[str]:
    """The dummy items of :func:`padding_count`; each carries 128 random bits, so no operator item
    can match one."""
    return ["\x00pad:" + secrets.token_hex(16) for _ in range(padding_count(key, version, column))]
