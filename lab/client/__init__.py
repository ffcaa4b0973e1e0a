"""The lab's Python client — the operator's door, the same in a notebook, a script and the tests.

Usage (needs a running lab, so not run here)::

    import lab.client as lc
    c = lc.connect()                      # LAB_API_URL + JUPYTERHUB_API_TOKEN
    c.catalog.list(); c.catalog.dummy("health_visits", n=5)
    c.use(project_id); c.dp.query(...); c.psi.intersect(...); c.he.score(...)

Errors are :class:`LabError` subclasses carrying the server's problem details.
"""

from lab.client._client import Client, connect
from lab.client._errors import (
    BadRequest,
    BudgetExhausted,
    Conflict,
    Forbidden,
    LabError,
    NotFound,
    NotInGrant,
    PayloadTooLarge,
    ProjectInactive,
    QuotaExceeded,
    ServerError,
    TooManyRequests,
    Unauthenticated,
)

__all__ = [
    "BadRequest",
    "BudgetExhausted",
    "Client",
    "Conflict",
    "Forbidden",
    "LabError",
    "NotFound",
    "NotInGrant",
    "PayloadTooLarge",
    "ProjectInactive",
    "QuotaExceeded",
    "ServerError",
    "TooManyRequests",
    "Unauthenticated",
    "connect",
]
