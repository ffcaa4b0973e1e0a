"""The operator's side of the protocol (what ``lab.client`` runs in the notebook), without HTTP.

* intersection / cardinality: the operator is the PSI **client** — :func:`encrypt_items` blinds its
  items under a fresh key, :func:`match` unblinds the lab's response and checks it against the setup;
* cohort: the operator is the PSI **server** — :func:`answer_lab_request` builds a setup over its
  items, re-encrypts the lab's request under a fresh key and proves (batched DLEQ,
  :mod:`psi_service.dleq`) that every answer element is the request element raised to that key.

Work is done in blocks (so a progress bar can follow) and, with ``workers > 1``, spread over worker
processes with the same key (:mod:`psi_service.parallel`). Keys never leave this process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from psi_service import dleq, parallel
from psi_service.protocol import build_response
from psi_service.structures import build_setup

BLOCK = 32_768
Progress = Callable[[int], Any] | None


def _blocks(
    fn: Callable[..., Any],
    items: Sequence[Any],
    *args: Any,
    workers: int,
    progress: Progress,
    tail: tuple[Any, ...] = (),
) -> list[Any]:
    out: list[Any] = []
    block = BLOCK * max(1, workers)
    for start in range(0, len(items), block):
        part = items[start : start + block]
        out.extend(
            parallel.run_chunked(fn, part, *args, workers=workers, min_items=4096, timeout=3600.0, tail=tail)
        )
        if progress is not None:
            progress(len(part))
    return out


def new_client_key(reveal: bool) -> bytes:
    """A fresh PSI client key (stays in the notebook)."""
    import private_set_intersection.python as psi

    key: bytes = psi.client.CreateWithNewKey(reveal).GetPrivateKeyBytes()
    return key


def encrypt_items(
    key: bytes, values: Sequence[str], *, reveal: bool, workers: int = 1, progress: Progress = None
) -> list[bytes]:
    """The client's encrypted elements of ``values``, in order."""
    chunks = _blocks(parallel.create_request_chunk, values, key, reveal, workers=workers, progress=progress)
    return [e for chunk in chunks for e in chunk]


def match(
    key: bytes,
    setup: bytes,
    response: Sequence[bytes],
    *,
    reveal: bool,
    workers: int = 1,
    progress: Progress = None,
) -> np.ndarray | int:
    """Indices of the matching items (``reveal``), or the number of matches."""
    results = _blocks(
        parallel.intersect_chunk, response, key, setup, workers=workers, progress=progress, tail=(reveal,)
    )
    if not reveal:
        return int(sum(results))
    if not results:
        return np.zeros(0, dtype=np.int64)
    mask = np.concatenate([np.frombuffer(m, dtype=np.uint8) for m in results])
    return np.nonzero(mask)[0]


def answer_lab_request(
    values: Sequence[str],
    lab_request: Sequence[bytes],
    *,
    fpr: float,
    workers: int = 1,
    progress: Progress = None,
) -> tuple[bytes, bytes, bytes]:
    """Cohort mode: ``(setup, response, proof)`` — a setup over ``values`` sized for the lab's
    request, the lab's request elements re-encrypted, in order, under a fresh server key, and the
    DLEQ proof that the response is the request raised to that key."""
    import private_set_intersection.python as psi

    key: bytes = psi.server.CreateWithNewKey(True).GetPrivateKeyBytes()
    encrypted = _blocks(parallel.encrypt_server_chunk, values, key, workers=workers, progress=progress)
    setup, _ = build_setup(sorted(e for chunk in encrypted for e in chunk), fpr, max(1, len(lab_request)))
    answered = _blocks(
        parallel.process_request_chunk, lab_request, key, True, workers=workers, progress=progress
    )
    response = [e for chunk in answered for e in chunk]
    proof = prove_answer(int.from_bytes(key, "big"), lab_request, response, workers=workers)
    return setup, build_response(response), dleq.encode(proof)


def prove_answer(
    k: int, request: Sequence[bytes], response: Sequence[bytes], *, workers: int = 1
) -> dleq.Proof:
    """The batched DLEQ proof of ``response[i] = k·request[i]`` (composites spread over ``workers``)."""
    bm = dleq.public_key(k)
    out: list[tuple[int, int]] = []
    for a, b in dleq.batches(len(request)):
        items = [(i - a, request[i], response[i]) for i in range(a, b)]
        parts = parallel.run_chunked(
            parallel.dleq_chunk, items, bm, False, workers=workers, min_items=2048, timeout=3600.0
        )
        m, _ = dleq.add_partials(parts, with_z=False)
        out.append(dleq.prove_batch(k, m))
    return dleq.Proof(bm, tuple(out))
