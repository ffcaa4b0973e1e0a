"""API schemas of the PSI channel (request and response bodies other than protocol envelopes)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

Mode = Literal["intersection", "cardinality", "cohort"]


class SessionCreate(BaseModel):
    """Start a PSI run: which dataset column and mode, and how many items the caller holds.

    The project is the route's (``/api/v1/projects/{project}/psi/sessions``); ``project`` here is
    optional and, if given, must name the same one (else ``project-mismatch``).
    """

    project: str | None = Field(None, min_length=1, max_length=32, description="the path's, if given")
    dataset: str = Field(min_length=1, max_length=64)
    column: str = Field(min_length=1, max_length=64)
    mode: Mode
    size: int = Field(ge=1, description="distinct normalized items in the caller's set")


class SessionOut(BaseModel):
    """A PSI session. ``nonce`` is returned once, at creation; every upload must carry it."""

    id: str
    project: str
    dataset: str
    version: int
    column: str
    mode: Mode
    declared_size: int
    client_bound: int = Field(description="the size bucket the setup was built for")
    epoch: int
    status: str
    expires_at: dt.datetime
    part_items: int = Field(description="most encrypted items per uploaded part")
    max_body_bytes: int
    artifact_sha256: str = Field(description="SHA-256 of the setup (or, in cohort mode, the lab's request)")
    artifact_bytes: int
    data_structure: str
    fpr: str
    lab_set_size: int | None = Field(None, description="cohort mode: elements in the lab's request")
    nonce: str | None = None
    record_id: str | None = None


class PartAccepted(BaseModel):
    """A part of a chunked request was stored; more are expected."""

    session: str
    received: int
    parts: int


class CohortOut(BaseModel):
    """A stored cohort: its id and DP-noised size (never its members)."""

    cohort_id: str
    noisy_size: int
    epsilon: str
    error_bound_95: int = Field(description="|noisy_size - size| <= this with probability >= 95%")
    expires_at: dt.datetime
    record_id: str
    dataset: str
    version: int
    column: str
