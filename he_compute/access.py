"""The HE channel's own parameter rules, plugged into :func:`lab.projects.access.authorize`."""

from __future__ import annotations

from typing import Any

from lab.errors import NotInGrant
from lab.projects.access import Access


def check_params(access: Access, params: dict[str, Any]) -> None:
    """The model or table a call names must be in the project's HE grant on the dataset."""
    for kind in ("model", "table"):
        name = params.get(kind)
        if name is not None and name not in access.limits.get(f"{kind}s", []):
            raise NotInGrant(f"HE {kind} {name!r} is not in the project's grant on {access.dataset.dataset}")
