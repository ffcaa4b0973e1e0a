"""``client.products``: register products, review them (bureau), fetch and verify certificates.

Usage, with ``c`` a connected :class:`~lab.client.Client` (needs a running lab, so not run here)::

    prod = c.products.register(name={"zh": "报告", "en": "Report"}, type="report",
                               artifact="out.csv", derived_from=[r.record_id, s.record_id])
    prod.status, prod.latest["checks"]
    c.products.review(prod.id, decision="approve")          # bureau
    cert = c.products.certificate(prod.id)
    c.products.verify(cert, artifact="out.csv").ok            # offline
    c.products.verify(cert, online=True).status               # valid | revoked | invalid
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pandas as pd

from lab.shared.certificates import CertificateReport, verify_certificate

if TYPE_CHECKING:
    from lab.client._client import Client


class Product(dict[str, Any]):
    """A product as the API returns it; keys are also attributes (``prod.id``, ``prod.status``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ProductsAPI:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._t = client.transport

    # -- submitting ----------------------------------------------------------------------
    def _send(
        self,
        path: str,
        meta: dict[str, Any],
        artifact: str | Path | bytes | BinaryIO | None,
        filename: str | None,
    ) -> Product:
        files: dict[str, Any] = {}
        if artifact is not None:
            if isinstance(artifact, str | Path):
                p = Path(artifact)
                meta["sha256"] = _digest(p)
                name = filename or p.name
                with p.open("rb") as f:
                    return self._post(path, meta, {"artifact": (name, f, _media(name))})
            if isinstance(artifact, bytes):
                meta["sha256"] = hashlib.sha256(artifact).hexdigest()
                name = filename or "artifact"
                files["artifact"] = (name, artifact, _media(name))
            else:
                name = filename or Path(getattr(artifact, "name", "artifact")).name
                files["artifact"] = (name, artifact, _media(name))
        return self._post(path, meta, files)

    def _post(self, path: str, meta: dict[str, Any], files: dict[str, Any]) -> Product:
        data = {"metadata": json.dumps(meta, ensure_ascii=False)}
        return Product(self._t.post(path, data=data, files=files or None))

    def register(
        self,
        name: str | dict[str, str],
        type: str,
        derived_from: list[str],
        artifact: str | Path | bytes | BinaryIO | None = None,
        *,
        project: str | None = None,
        description: str = "",
        scenario: str = "",
        endpoint: dict[str, Any] | None = None,
        filename: str | None = None,
        count_columns: list[str] | None = None,
        dp_columns: list[str] | None = None,
    ) -> Product:
        """Register a product of ``project`` (default: :meth:`Client.use`) derived from records.

        ``type`` is dataset, report, model, api or visualization; ``artifact`` a file path, bytes
        or a binary file (its SHA-256 is declared so the lab detects a corrupted upload); an
        ``api`` product gives ``endpoint={"url": ..., "method": ..., "description": ...}`` instead.
        """
        meta = self._meta(
            name, type, derived_from, description, scenario, endpoint, count_columns, dp_columns
        )
        meta["project"] = self._client.require_project(project)
        return self._send("/api/v1/products", meta, artifact, filename)

    def new_version(
        self,
        product_id: str,
        name: str | dict[str, str],
        type: str,
        derived_from: list[str],
        artifact: str | Path | bytes | BinaryIO | None = None,
        *,
        description: str = "",
        scenario: str = "",
        endpoint: dict[str, Any] | None = None,
        filename: str | None = None,
        count_columns: list[str] | None = None,
        dp_columns: list[str] | None = None,
    ) -> Product:
        """Submit a new version of ``product_id`` (earlier versions keep their history)."""
        meta = self._meta(
            name, type, derived_from, description, scenario, endpoint, count_columns, dp_columns
        )
        return self._send(f"/api/v1/products/{product_id}/versions", meta, artifact, filename)

    @staticmethod
    def _meta(
        name: str | dict[str, str],
        type_: str,
        derived_from: list[str],
        description: str,
        scenario: str,
        endpoint: dict[str, Any] | None,
        count_columns: list[str] | None,
        dp_columns: list[str] | None,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": name,
            "type": type_,
            "derived_from": list(derived_from),
            "description": description,
            "scenario": scenario,
        }
        if endpoint is not None:
            meta["endpoint"] = endpoint
        if count_columns:
            meta["count_columns"] = count_columns
        if dp_columns:
            meta["dp_columns"] = dp_columns
        return meta

    # -- reading ---------------------------------------------------------------------------
    def list(self, project: str | None = None, status: str | None = None, limit: int = 100) -> pd.DataFrame:
        """Products you may see, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if project:
            params["project"] = project
        if status:
            params["status"] = status
        rows = self._t.get("/api/v1/products", params=params)
        cols = [
            "id",
            "registration_number",
            "name_zh",
            "name_en",
            "type",
            "status",
            "project",
            "current_version",
        ]
        for r in rows:
            r["name_zh"], r["name_en"] = r["name"]["zh"], r["name"]["en"]
        return pd.DataFrame(rows, columns=cols)

    def get(self, product_id: str) -> Product:
        """A product with all versions, checks, lineage and events."""
        return Product(self._t.get(f"/api/v1/products/{product_id}"))

    def queue(self) -> pd.DataFrame:
        """Versions awaiting review (bureau)."""
        return pd.DataFrame(self._t.get("/api/v1/products/queue"))

    def download(self, product_id: str, dest: str | Path, version: int | None = None) -> Path:
        """Save a version's artifact to ``dest`` (checked against its recorded SHA-256)."""
        params = {"version": version} if version is not None else None
        r = self._t.request("GET", f"/api/v1/products/{product_id}/artifact", params=params)
        if hashlib.sha256(r.content).hexdigest() != r.headers.get("x-content-sha256"):
            raise ValueError("the downloaded artifact does not match its recorded SHA-256")
        path = Path(dest)
        path.write_bytes(r.content)
        return path

    # -- bureau ------------------------------------------------------------------------------
    def review(self, product_id: str, decision: str, reason: str = "", version: int | None = None) -> Product:
        """Approve or reject (a rejection needs a reason)."""
        body: dict[str, Any] = {"decision": decision, "reason": reason}
        if version is not None:
            body["version"] = version
        return Product(self._t.post(f"/api/v1/products/{product_id}/review", json=body))

    def revoke(self, product_id: str, reason: str) -> Product:
        """Revoke a registered product."""
        return Product(self._t.post(f"/api/v1/products/{product_id}/revoke", json={"reason": reason}))

    # -- certificates -------------------------------------------------------------------------
    def certificate(
        self, product_id: str, version: int | None = None, save: str | Path | None = None
    ) -> dict[str, Any]:
        """The certificate of the approved version (optionally saved as JSON to ``save``)."""
        params = {"version": version} if version is not None else None
        cert: dict[str, Any] = self._t.get(f"/api/v1/products/{product_id}/certificate", params=params)
        if save is not None:
            Path(save).write_text(json.dumps(cert, ensure_ascii=False, indent=2), encoding="utf-8")
        return cert

    def status(self, registration_number: str, since: int) -> dict[str, Any]:
        """The public registry status document (proofs against the current log)."""
        doc: dict[str, Any] = self._t.get(
            f"/api/v1/registry/{registration_number}/status", params={"since": since}
        )
        return doc

    def verify(
        self,
        cert: dict[str, Any] | str | Path,
        artifact: str | Path | None = None,
        *,
        online: bool = False,
        trusted_keys: dict[str, str] | None = None,
        witnesses: Sequence[str] = (),
        quorum: int | None = None,
    ) -> CertificateReport:
        """Verify a certificate offline (signature, proofs, digest); ``online=True`` adds this lab's
        current log: consistency since issuance, unchanged entries, revocation.

        The log key is ``trusted_keys`` or else this lab's vkey fetched once and pinned; with
        ``witnesses`` (vkeys) the certificate must carry ``quorum`` (default all) cosignatures."""
        doc = cert if isinstance(cert, dict) else json.loads(Path(cert).read_text(encoding="utf-8"))
        status = None
        if online:
            status = self.status(doc["registration_number"], int(doc["ledger"]["tree_size"]))
        keys = trusted_keys or self._client.ledger.log_keys()
        return verify_certificate(doc, Path(artifact) if artifact else None, status, keys, witnesses, quorum)

    def lookup(self, registration_number: str) -> dict[str, Any]:
        """Public lookup: non-sensitive metadata and status (the endpoint needs no token)."""
        entry: dict[str, Any] = self._t.get(f"/api/v1/registry/{registration_number}")
        return entry


def _media(name: str) -> str:
    if name.lower().endswith(".parquet"):
        return "application/vnd.apache.parquet"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
