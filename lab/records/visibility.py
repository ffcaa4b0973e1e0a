"""Which ledger entries a principal reads in full: the ledger's read policy, kept out of the router.

Every role reads the log and its proofs, but an entry about a project (its transitions, grants and
budgets, its derived records, its products) is shown in full only to those who may read that project
(:func:`lab.projects.access.may_read`: its members, the bureau and auditors) and to services. Anyone
else gets it *withheld*: kind, version, time and ``withheld: true`` in place of the entry, with the same
leaf hash and proofs, so the log still verifies (the standalone verifier checks a withheld entry's leaf
by its hash) without telling an operator other projects' budgets, record ids or queries. A non-open
dataset's exact size is shown to the bureau and auditors only (:func:`redact_ledger_body`).

Usage (needs a database session, so not run here)::

    seen = LedgerVisibility(session, principal, product_project=lambda pid: ...)
    shown = seen.show(entry)  # the entry, redacted, or withheld
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from lab.catalog.visibility import redact_ledger_body
from lab.identity import Principal
from lab.projects.access import OVERSEERS, member_projects

__all__ = ["LedgerVisibility"]


class LedgerVisibility:
    """Which entries ``principal`` may read in full (see the module docstring)."""

    def __init__(
        self, session: Session, principal: Principal, product_project: Callable[[str], str | None]
    ) -> None:
        self.session = session
        self.product_project = product_project  # the products capability answers (records sits below it)
        self.everything = principal.has(*OVERSEERS) or principal.kind == "service"
        self.exact_sizes = principal.has(*OVERSEERS)  # auditors verify every leaf
        self.mine = set() if self.everything else member_projects(session, principal.name)

    def _project(self, entry: dict[str, Any]) -> str | None:
        body = entry.get("body")
        if not isinstance(body, dict):
            return None
        if isinstance(body.get("project"), str):
            return str(body["project"])
        if entry.get("kind") == "product.transition" and isinstance(body.get("product"), str):
            return self.product_project(body["product"])
        return None

    def show(self, entry: dict[str, Any]) -> dict[str, Any]:
        """``entry`` as ``principal`` may read it: whole, with a dataset's size redacted, or withheld."""
        project = None if self.everything else self._project(entry)
        if project is None or project in self.mine:
            return entry if self.exact_sizes else redact_ledger_body(entry)
        return {"kind": entry.get("kind"), "v": entry.get("v"), "time": entry.get("time"), "withheld": True}
