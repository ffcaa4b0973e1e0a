"""``client.ledger``: signed tree head, entries, proofs verified locally."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from lab.shared.pins import pinned
from lab.shared.standalone import trusted_log_keys, verify_inclusion_document

if TYPE_CHECKING:
    from lab.client._client import Client


class LedgerAPI:
    def __init__(self, client: Client) -> None:
        self._t = client.transport
        self._log_keys: dict[str, str] | None = None

    def vkey(self) -> str:
        """The log's verifier key, fetched once and pinned (``LAB_PINS``): a later change is refused."""
        r = self._t.request("GET", "/api/v1/ledger/vkey")
        return pinned(f"log:{self._t.url}", r.text.strip())

    def log_keys(self, given: list[str] | None = None) -> dict[str, str]:
        """Trusted log keys: those ``given`` (vkeys or KEY_ID=BASE64), else the pinned vkey."""
        if given:
            return trusted_log_keys(given)
        if self._log_keys is None:
            self._log_keys = trusted_log_keys([self.vkey()])
        return self._log_keys

    def head(self) -> dict[str, Any]:
        """The current signed tree head."""
        head: dict[str, Any] = self._t.get("/api/v1/ledger/head")
        return head

    def entries(self, start: int = 0, limit: int = 100) -> pd.DataFrame:
        rows = self._t.get("/api/v1/ledger/entries", params={"start": start, "limit": limit})
        return pd.DataFrame(
            [
                {
                    "index": r["index"],
                    "kind": r["kind"],
                    "actor": r["entry"]["actor"],
                    "time": r["entry"]["time"],
                    "body": r["entry"]["body"],
                }
                for r in rows
            ]
        )

    def proof(self, index: int, log_keys: list[str] | None = None) -> dict[str, Any]:
        """Inclusion proof of entry ``index``, checked locally against the given or pinned log key."""
        doc: dict[str, Any] = self._t.get(f"/api/v1/ledger/proof/inclusion/{index}")
        ok, why = verify_inclusion_document(doc, self.log_keys(log_keys))
        if not ok:
            raise ValueError(f"the lab returned an invalid proof: {why}")
        return doc

    def verify(self) -> dict[str, Any]:
        """Ask the lab to recompute the whole log (bureau and auditors)."""
        report: dict[str, Any] = self._t.post("/api/v1/ledger/verify")
        return report
