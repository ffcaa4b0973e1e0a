"""``client.records``: the derived records of your projects (every channel result is one)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from lab.client._client import Client

COLUMNS = [
    "id",
    "project",
    "caller",
    "channel",
    "operation",
    "datasets",
    "parameters",
    "epsilon",
    "delta",
    "result_digest",
    "created_at",
    "ledger_index",
]


class RecordsAPI:
    """List and read derived records (members: their projects'; bureau and auditors: all).

    Usage, with ``c`` a connected client (needs a running lab, so not run here)::

        c.records.list(channel="dp")            # DataFrame, newest first
        c.records.get("dr_...")["result_digest"]
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._t = client.transport

    def list(
        self,
        project: str | None = None,
        *,
        channel: str | None = None,
        caller: str | None = None,
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Records as a DataFrame (``project`` defaults to none: every project you may see)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for key, value in (("project", project), ("channel", channel), ("caller", caller)):
            if value:
                params[key] = value
        for key, when in (("since", since), ("until", until)):
            if when is not None:
                params[key] = when.isoformat() if isinstance(when, dt.datetime) else when
        rows = self._t.get("/api/v1/records", params=params)
        frame = pd.DataFrame(rows, columns=COLUMNS)
        if not frame.empty:
            frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
        return frame

    def get(self, record_id: str) -> dict[str, Any]:
        """One record."""
        record: dict[str, Any] = self._t.get(f"/api/v1/records/{record_id}")
        return record
