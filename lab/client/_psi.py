"""``client.psi``: private set intersection of the operator's identifier list with a dataset column.

Usage, with ``c`` a connected :class:`~lab.client.Client` (needs a running lab, so not run here)::

    r = c.psi.intersect(customers.uscc, dataset="enterprise_registry", column="uscc")
    r.matches          -> pd.Series of the operator's items found in the column (input index kept)
    n = c.psi.intersect(ids, dataset="population", column="resident_id", mode="cardinality").size
    co = c.psi.intersect(ids, dataset="population", column="resident_id", mode="cohort")
    co.cohort_id, co.noisy_size  -> usable in c.dp.query(..., cohort=co.cohort_id)

Items are normalized here, with the same rules as the lab (``lab.identifiers``); invalid items are
reported in ``result.invalid`` (count and examples) and never sent. Only blinded elements leave the
notebook; the PSI keys stay in this process.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from tqdm import tqdm

from lab.client._errors import ServerError

if TYPE_CHECKING:
    from lab.client._client import Client

Mode = Literal["intersection", "cardinality", "cohort"]
PROGRESS_FROM = 50_000
SETUP_CACHE = 4


@dataclass(frozen=True)
class InvalidItems:
    """Items that failed normalization, kept in the notebook: how many, and a few examples."""

    count: int
    examples: pd.DataFrame  # position, item, reason

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class NormalizedItems:
    """The operator's list after normalization: distinct canonical values and the invalid items."""

    values: pd.Series  # canonical value per valid input item (input index kept)
    distinct: int
    invalid: InvalidItems


@dataclass(frozen=True)
class _Run:
    dataset: str
    version: int
    column: str
    record_id: str
    session: str
    client_size: int
    invalid: InvalidItems


@dataclass(frozen=True)
class PsiIntersection(_Run):
    """Intersection mode: the operator's items that are in the column."""

    matches: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    size: int = 0  # distinct (normalized) identifiers in the intersection


@dataclass(frozen=True)
class PsiCardinality(_Run):
    """Cardinality mode: only how many of the operator's distinct identifiers are in the column."""

    size: int = 0


@dataclass(frozen=True)
class PsiCohort(_Run):
    """Cohort mode: a server-side cohort and its DP-noised size (never its members)."""

    cohort_id: str = ""
    noisy_size: int = 0
    epsilon: str = "0"
    error_bound_95: int = 0
    expires_at: str = ""


def _server_fault(detail: str) -> ServerError:
    return ServerError({"status": 502, "code": "psi-protocol", "detail": detail})


def _sessions(project: str) -> str:
    """Where ``project``'s PSI sessions are (the path names the project; the body does not)."""
    return f"/api/v1/projects/{project}/psi/sessions"


def _session_url(info: dict[str, Any], tail: str) -> str:
    """``tail`` of the session ``info`` describes, under its project."""
    return f"{_sessions(info['project'])}/{info['id']}/{tail}"


class PsiAPI:
    """Private set intersection against a dataset's identifier column."""

    def __init__(self, client: Client) -> None:
        self._c = client
        self._t = client.transport
        self._setups: OrderedDict[str, bytes] = OrderedDict()

    # -- normalization ---------------------------------------------------------------------------
    def _normalization(self, dataset: str, column: str) -> str:
        cols = self._t.get(f"/api/v1/catalog/{dataset}/schema")["columns"]
        for col in cols:
            if col["name"] == column:
                if not col.get("normalization"):
                    raise ValueError(f"{dataset}.{column} is not an identifier column")
                return str(col["normalization"])
        raise ValueError(f"{dataset} has no column {column!r}")

    def normalize(self, items: Iterable[Any], *, dataset: str, column: str) -> NormalizedItems:
        """Normalize ``items`` as the lab does for ``dataset.column`` (nothing is sent)."""
        return self._normalize(items, self._normalization(dataset, column))[0]

    def _normalize(self, items: Iterable[Any], kind: str) -> tuple[NormalizedItems, Any, pd.Series]:
        from psi_service.normalize import normalize_items

        series = items if isinstance(items, pd.Series) else pd.Series(list(items), dtype=object)
        norm = normalize_items(series.tolist(), kind)
        order = sorted((p, v) for v in norm.values for p in norm.positions[v])
        canon = pd.Series([v for _, v in order], index=series.index[[p for p, _ in order]], dtype=object)
        examples = pd.DataFrame(norm.invalid_examples, columns=["position", "item", "reason"])
        invalid = InvalidItems(norm.invalid_count, examples)
        return NormalizedItems(canon, len(norm.values), invalid), norm, series

    # -- the protocol ------------------------------------------------------------------------------
    def intersect(
        self,
        items: Iterable[Any],
        *,
        dataset: str,
        column: str,
        mode: Mode = "intersection",
        project: str | None = None,
        progress: bool | None = None,
        workers: int = 1,
    ) -> PsiIntersection | PsiCardinality | PsiCohort:
        """Match ``items`` against ``dataset.column`` in ``mode``; see the module docstring.

        ``progress`` shows tqdm bars (default: for 50,000 items or more); ``workers > 1`` spreads
        the notebook's EC work over that many processes.
        """
        from psi_service import operator
        from psi_service.protocol import Frame

        pid = self._c.require_project(project)
        prepared, norm, series = self._normalize(items, self._normalization(dataset, column))
        values = norm.values
        if not values:
            raise ValueError(f"no valid items to match ({prepared.invalid.count} invalid)")
        show = progress if progress is not None else len(values) >= PROGRESS_FROM
        info = self._t.post(
            _sessions(pid),
            json={"dataset": dataset, "column": column, "mode": mode, "size": len(values)},
        )
        frame = Frame(
            session=info["id"],
            nonce=base64.urlsafe_b64decode(info["nonce"]),
            project=pid,
            dataset=dataset,
            column=column,
            mode=mode,
            declared_size=len(values),
        )
        run = {
            "dataset": dataset,
            "version": info["version"],
            "column": column,
            "session": info["id"],
            "client_size": len(values),
            "invalid": prepared.invalid,
        }
        if mode == "cohort":
            return self._cohort(info, frame, values, run, show, workers)
        reveal = mode == "intersection"
        setup = self._setup(info)
        key = operator.new_client_key(reveal)
        with tqdm(total=len(values), desc="PSI encrypt", disable=not show) as bar:
            elements = operator.encrypt_items(
                key, values, reveal=reveal, workers=workers, progress=bar.update
            )
        response, record_id = self._upload(info, frame, elements, reveal, show)
        try:
            with tqdm(total=len(response), desc="PSI match", disable=not show) as bar:
                found = operator.match(
                    key, setup, response, reveal=reveal, workers=workers, progress=bar.update
                )
        except Exception as exc:
            raise _server_fault(f"the lab's PSI response could not be read: {exc}") from None
        if not reveal:
            return PsiCardinality(record_id=record_id, size=int(found), **run)
        positions = sorted(p for i in found for p in norm.positions[values[int(i)]])  # type: ignore[union-attr]
        matches = pd.Series(series.iloc[positions].to_numpy(), index=series.index[positions], dtype=object)
        return PsiIntersection(record_id=record_id, matches=matches, size=len(found), **run)  # type: ignore[arg-type]

    def _setup(self, info: dict[str, Any]) -> bytes:
        from lab.errors import LabError as ProtocolFault
        from psi_service.protocol import decode

        digest = info["artifact_sha256"]
        if digest in self._setups:
            self._setups.move_to_end(digest)
            return self._setups[digest]
        raw = self._t.request("GET", _session_url(info, "setup")).content
        try:
            frame = decode(raw, max_bytes=len(raw))
        except ProtocolFault as exc:
            raise _server_fault(f"the setup could not be read: {exc.detail}") from None
        data = frame.request if info["mode"] == "cohort" else frame.setup
        if hashlib.sha256(data).hexdigest() != digest:
            raise _server_fault("the setup does not match the digest the session announced")
        self._setups[digest] = data
        while len(self._setups) > SETUP_CACHE:
            self._setups.popitem(last=False)
        return data

    def _upload(
        self, info: dict[str, Any], frame: Any, elements: list[bytes], reveal: bool, show: bool
    ) -> tuple[list[bytes], str]:
        from lab.errors import LabError as ProtocolFault
        from psi_service.protocol import MEDIA_TYPE, build_request, decode, encode, parse_response

        per_part = int(info["part_items"])
        parts = max(1, math.ceil(len(elements) / per_part))
        frame.parts = parts
        with tqdm(total=len(elements), desc="PSI upload", disable=not show or parts == 1) as bar:
            for i in range(parts):
                chunk = elements[i * per_part : (i + 1) * per_part]
                frame.part, frame.request = i, build_request(chunk, reveal=reveal)
                r = self._t.request(
                    "POST",
                    _session_url(info, "request"),
                    content=encode(frame),
                    headers={"Content-Type": MEDIA_TYPE},
                )
                bar.update(len(chunk))
        if r.status_code != 200:
            raise _server_fault(f"the lab did not answer the last part (HTTP {r.status_code})")
        try:
            answer = decode(r.content, max_bytes=len(r.content))
            return parse_response(answer.response), r.headers.get("Lab-Record-Id", "")
        except ProtocolFault as exc:
            raise _server_fault(f"the lab's response could not be read: {exc.detail}") from None

    def _cohort(
        self,
        info: dict[str, Any],
        frame: Any,
        values: list[str],
        run: dict[str, Any],
        show: bool,
        workers: int,
    ) -> PsiCohort:
        from lab.errors import LabError as ProtocolFault
        from psi_service import operator
        from psi_service.protocol import MEDIA_TYPE, encode, parse_request

        try:
            lab_request = parse_request(self._setup(info), reveal=True)
        except ProtocolFault as exc:
            raise _server_fault(f"the lab's cohort request could not be read: {exc.detail}") from None
        total = len(values) + len(lab_request)
        with tqdm(total=total, desc="PSI cohort", disable=not show) as bar:
            setup, response, proof = operator.answer_lab_request(
                values, lab_request, fpr=float(info["fpr"]), workers=workers, progress=bar.update
            )
        frame.parts, frame.setup, frame.response, frame.proof = 1, setup, response, proof
        out = self._t.post(
            _session_url(info, "cohort"),
            content=encode(frame),
            headers={"Content-Type": MEDIA_TYPE},
        )
        return PsiCohort(
            record_id=out["record_id"],
            cohort_id=out["cohort_id"],
            noisy_size=int(out["noisy_size"]),
            epsilon=out["epsilon"],
            error_bound_95=int(out["error_bound_95"]),
            expires_at=out["expires_at"],
            **run,
        )
