"""The HE channel's own parameter rules, plugged into :func:`lab.projects.access.authorize`."""

from __future__ import annotations

from typing import Any

from lab.errors import NotInGrant
from lab.projects.access import Access
from lab.projects.typed_grants import HeGrant, expect


def check_params(access: Access, params: dict[str, Any]) -> None:
    """The model or table a call names must be in the project's HE grant on the dataset."""
    grant = expect(access.grant, HeGrant)
    for kind in ("model", "table"):
        name = params.get(kind)
        if name is not None and name not in grant.names(kind):
            raise NotInGrant(f"HE {kind} {name!r} is not in the project's grant on {access.dataset.dataset}")
