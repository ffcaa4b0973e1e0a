"""``client.ledger``: signed tree head, entries, proofs verified locally."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from lab.ledger.standalone import verify_inclusion_document

if TYPE_CHECKING:
    from lab.client._client import Client


class LedgerAPI:
    def __init__(self, client: Client) -> None:
        self._t = client.transport

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

    def proof(self, index: int) -> dict[str, Any]:
        """Inclusion proof of entry ``index`` (checked locally before it is returned)."""
        doc: dict[str, Any] = self._t.get(f"/api/v1/ledger/proof/inclusion/{index}")
        ok, why = verify_inclusion_document(doc)
        if not ok:
            raise ValueError(f"the lab returned an invalid proof: {why}")
        return doc

    def verify(self) -> dict[str, Any]:
        """Ask the lab to recompute the whole log (bureau and auditors)."""
        report: dict[str, Any] = self._t.post("/api/v1/ledger/verify")
        return report
