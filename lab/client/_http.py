"""HTTP plumbing of the client: one ``httpx.Client``, token auth, problem+json to exceptions."""

from __future__ import annotations

from typing import Any

import httpx

from lab.client._errors import from_problem


class Transport:
    """Sends requests to the lab API and turns problem responses into :class:`LabError` subclasses."""

    def __init__(self, url: str, token: str, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {token}"}, timeout=timeout
        )

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                problem = r.json()
            except ValueError:
                problem = {"status": r.status_code, "title": r.reason_phrase, "detail": r.text[:500]}
            if not isinstance(problem, dict):
                problem = {"status": r.status_code, "detail": str(problem)[:500]}
            problem.setdefault("status", r.status_code)
            raise from_problem(problem)
        return r

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def post(self, path: str, **kw: Any) -> Any:
        r = self.request("POST", path, **kw)
        return r.json() if r.content else None

    def close(self) -> None:
        self.http.close()
