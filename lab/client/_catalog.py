"""``client.catalog``: browse catalog entries, schemas and schema-only dummy rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from lab.client._client import Client


class CatalogAPI:
    def __init__(self, client: Client) -> None:
        self._t = client.transport

    def list(self) -> pd.DataFrame:
        """One row per dataset (current version)."""
        rows = self._t.get("/api/v1/catalog")
        for r in rows:
            r["title_zh"], r["title_en"] = r["title"]["zh"], r["title"]["en"]
        cols = [
            "id",
            "title_zh",
            "title_en",
            "open",
            "classification",
            "responsible_unit",
            "version",
            "row_count",
            "row_count_exact",
            "counted",
            "update_cycle",
            "channels",
        ]
        return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)

    def get(self, dataset: str, version: int | None = None) -> dict[str, Any]:
        """The catalog entry of ``dataset``."""
        params = {"version": version} if version else None
        entry: dict[str, Any] = self._t.get(f"/api/v1/catalog/{dataset}", params=params)
        return entry

    def schema(self, dataset: str) -> pd.DataFrame:
        """The columns of ``dataset`` with their roles, domains and bounds."""
        return pd.DataFrame(self._t.get(f"/api/v1/catalog/{dataset}/schema")["columns"])

    def policy(self, dataset: str) -> dict[str, Any]:
        """The channel limits the dataset's policy sets."""
        limits: dict[str, Any] = self._t.get(f"/api/v1/catalog/{dataset}/schema")["channels"]
        return limits

    def dummy(self, dataset: str, n: int = 20, seed: int | None = None) -> pd.DataFrame:
        """``n`` dummy rows generated from the schema alone — never real records."""
        params: dict[str, Any] = {"n": n}
        if seed is not None:
            params["seed"] = seed
        return pd.DataFrame(self._t.get(f"/api/v1/catalog/{dataset}/dummy", params=params)["rows"])
