"""Client-side errors: each carries the server's RFC 9457 problem details.

::

    LabError
    ├── BadRequest (400, 422)      ├── NotFound (404)
    ├── Unauthenticated (401)      ├── Conflict (409) ── BudgetExhausted
    ├── Forbidden (403) ── NotInGrant, ProjectInactive
    ├── PayloadTooLarge (413)      ├── TooManyRequests (429) ── QuotaExceeded
    └── ServerError (5xx)
"""

from __future__ import annotations

from typing import Any


class LabError(Exception):
    """An error answered by the lab API (or the client refusing to send something)."""

    def __init__(self, problem: dict[str, Any]) -> None:
        self.problem = problem
        self.status: int = int(problem.get("status", 0))
        self.code: str = str(problem.get("code", ""))
        self.detail: str = str(problem.get("detail", problem.get("title", "")))
        super().__init__(f"{self.status} {self.code}: {self.detail}")


class BadRequest(LabError): ...


class Unauthenticated(LabError): ...


class Forbidden(LabError): ...


class NotInGrant(Forbidden): ...


class ProjectInactive(Forbidden): ...


class NotFound(LabError): ...


class Conflict(LabError): ...


class BudgetExhausted(Conflict): ...


class PayloadTooLarge(LabError): ...


class TooManyRequests(LabError): ...


class QuotaExceeded(TooManyRequests): ...


class ServerError(LabError): ...


BY_CODE: dict[str, type[LabError]] = {
    "budget-exhausted": BudgetExhausted,
    "not-in-grant": NotInGrant,
    "project-inactive": ProjectInactive,
    "quota-exceeded": QuotaExceeded,
}
BY_STATUS: dict[int, type[LabError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: BadRequest,
    429: TooManyRequests,
}


def from_problem(problem: dict[str, Any]) -> LabError:
    cls = BY_CODE.get(str(problem.get("code", ""))) or BY_STATUS.get(int(problem.get("status", 0)))
    if cls is None:
        cls = ServerError
    return cls(problem)
