"""Errors of the projects capability (part of the :mod:`lab.errors` hierarchy).

::

    BadRequest (400) ── InvalidProject      an application or a grant that the policy refuses
    Forbidden (403)  ── SelfReview          a member or the applicant reviewing their own project
    Conflict (409)   ── InvalidTransition   (lab.errors) e.g. resuming an ended project
"""

from __future__ import annotations

from typing import Any

from lab.errors import BadRequest, Forbidden


class InvalidProject(BadRequest):
    """An application (or a reviewer's grant) that breaks a rule; names dataset, channel, field and cap."""

    code, title = "invalid-project", "Invalid project application"

    def __init__(
        self,
        detail: str,
        *,
        dataset: str | None = None,
        channel: str | None = None,
        field: str | None = None,
        **extra: Any,
    ) -> None:
        named = {k: v for k, v in (("dataset", dataset), ("channel", channel), ("field", field)) if v}
        super().__init__(detail, **named, **extra)


class SelfReview(Forbidden):
    code, title = "self-review", "Reviewers may not review their own project"
