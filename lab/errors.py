"""The lab's one error hierarchy; the API renders each as RFC 9457 problem+json.

::

    LabError (500)
    ├── BadRequest (400) ── InvalidPolicy, InvalidDataset, InvalidProof, InvalidQuery, ProjectMismatch
    ├── Unauthenticated (401)
    ├── Forbidden (403) ── NotInGrant, ProjectInactive
    ├── NotFound (404) ── DatasetNotFound, ProjectNotFound, EntryNotFound
    ├── Conflict (409) ── BudgetExhausted, InvalidTransition, AccountRuleFixed
    ├── PayloadTooLarge (413)
    ├── TooManyRequests (429) ── QuotaExceeded, Busy
    ├── IntegrityError (500) ── CorruptObject, LedgerTampered, PrivacyLeak
    └── Unavailable (503)

Each error carries a machine ``code`` and optional ``extra`` members for the problem body. Its
``type`` is ``<API prefix>/problems/<code>``, a page the lab serves with the meaning and the fix
(:mod:`lab.api.problem_pages`).
"""

from __future__ import annotations

from typing import Any, ClassVar


def problem_type(code: str, base: str = "") -> str:
    """The problem type URI of ``code``: a relative reference to the lab's own page about it."""
    return f"{base.rstrip('/')}/problems/{code}"


class LabError(Exception):
    """Base of every error the lab raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self, instance: str | None = None, base: str = "") -> dict[str, Any]:
        """The RFC 9457 problem body for this error; ``base`` is the API's path prefix."""
        body: dict[str, Any] = {
            "type": problem_type(self.code, base),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(LabError):
    status, code, title = 400, "bad-request", "Bad request"


class InvalidPolicy(BadRequest):
    code, title = "invalid-policy", "Invalid dataset policy"


class InvalidDataset(BadRequest):
    code, title = "invalid-dataset", "Dataset does not match its schema"


class InvalidProof(BadRequest):
    code, title = "invalid-proof", "Proof does not verify"


class InvalidQuery(BadRequest):
    code, title = "invalid-query", "Invalid query"


class ProjectMismatch(BadRequest):
    """A body or a message names another project than the route's path (the path decides)."""

    code, title = "project-mismatch", "Project differs from the path"


class Unauthenticated(LabError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(LabError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotInGrant(Forbidden):
    code, title = "not-in-grant", "Not in the project's grant"


class ProjectInactive(Forbidden):
    code, title = "project-inactive", "Project is not active"


class NotFound(LabError):
    status, code, title = 404, "not-found", "Not found"


class DatasetNotFound(NotFound):
    code, title = "dataset-not-found", "Dataset not found"


class ProjectNotFound(NotFound):
    code, title = "project-not-found", "Project not found"


class EntryNotFound(NotFound):
    code, title = "entry-not-found", "Ledger entry not found"


class Conflict(LabError):
    status, code, title = 409, "conflict", "Conflict"


class BudgetExhausted(Conflict):
    code, title = "budget-exhausted", "Privacy budget exhausted"


class InvalidTransition(Conflict):
    code, title = "invalid-transition", "Transition not allowed"


class AccountRuleFixed(Conflict):
    """A new policy version would change the composition rule of an existing dataset account."""

    code, title = "account-rule-fixed", "Account composition rule is fixed"


class PayloadTooLarge(LabError):
    status, code, title = 413, "payload-too-large", "Payload too large"


class TooManyRequests(LabError):
    status, code, title = 429, "too-many-requests", "Too many requests"


class QuotaExceeded(TooManyRequests):
    code, title = "quota-exceeded", "Quota exceeded"


class Busy(TooManyRequests):
    """Admission control refused heavy work for now; ``retry_after`` seconds go in ``Retry-After``."""

    code, title = "busy", "Busy: retry later"


class IntegrityError(LabError):
    status, code, title = 500, "integrity", "Integrity failure"


class CorruptObject(IntegrityError):
    code, title = "corrupt-object", "Stored object is corrupt"


class LedgerTampered(IntegrityError):
    code, title = "ledger-tampered", "Ledger does not verify"


class PrivacyLeak(IntegrityError):
    """A DP library reported that a release would leak beyond its ε: nothing is released or charged."""

    code, title = "privacy-leak", "Release refused: privacy leak"


class Unavailable(LabError):
    status, code, title = 503, "unavailable", "Service unavailable"
