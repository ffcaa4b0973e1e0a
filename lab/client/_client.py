"""The :class:`Client` and :func:`connect`."""

from __future__ import annotations

import os
from typing import Any

from lab.client._catalog import CatalogAPI
from lab.client._dp import DpAPI
from lab.client._he import HeAPI
from lab.client._http import Transport
from lab.client._ledger import LedgerAPI
from lab.client._products import ProductsAPI
from lab.client._projects import ProjectsAPI
from lab.client._psi import PsiAPI
from lab.client._records import RecordsAPI


class Client:
    """A connection to the lab API as one user (or machine client).

    Its capabilities are the typed attributes below: ``c.dp.query(...)`` is checked by mypy, and a
    misspelt ``c.dpp`` is an error, not a missing feature.
    """

    catalog: CatalogAPI
    ledger: LedgerAPI
    projects: ProjectsAPI
    records: RecordsAPI
    dp: DpAPI
    psi: PsiAPI
    he: HeAPI
    products: ProductsAPI

    def __init__(self, url: str, token: str, timeout: float = 300.0) -> None:
        self.transport = Transport(url, token, timeout)
        self.project: str | None = None
        self.catalog = CatalogAPI(self)
        self.ledger = LedgerAPI(self)
        self.projects = ProjectsAPI(self)
        self.records = RecordsAPI(self)
        self.dp = DpAPI(self)
        self.psi = PsiAPI(self)
        self.he = HeAPI(self)
        self.products = ProductsAPI(self)

    def use(self, project: str) -> Client:
        """Make ``project`` the default for channel calls."""
        self.project = project
        return self

    def require_project(self, project: str | None) -> str:
        chosen = project or self.project
        if not chosen:
            raise ValueError("no project: pass project=... or call client.use(project_id) first")
        return chosen

    def whoami(self) -> dict[str, Any]:
        """The caller as the lab sees it (name, roles)."""
        me: dict[str, Any] = self.transport.get("/api/v1/me")
        return me

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str | None = None, token: str | None = None, *, timeout: float = 300.0) -> Client:
    """Connect to the lab API.

    Reads ``LAB_API_URL`` and ``JUPYTERHUB_API_TOKEN`` (set in every lab notebook server)
    when ``url`` / ``token`` are not given.
    """
    url = url or os.environ.get("LAB_API_URL")
    token = token or os.environ.get("LAB_API_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not url:
        raise ValueError("no lab API URL: pass url=... or set LAB_API_URL")
    if not token:
        raise ValueError("no token: pass token=... or set JUPYTERHUB_API_TOKEN (`lab token USER` prints one)")
    return Client(url, token, timeout)
