"""The HE channel's own parameters and their rules, plugged into :func:`lab.projects.access.authorize`.

>>> HeParams(model="m-1").names()
[('model', 'm-1')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lab.errors import NotInGrant
from lab.projects.access import Access
from lab.projects.typed_grants import HeGrant, expect


@dataclass(frozen=True)
class HeParams:
    """An HE call's own parameters: the released model (``score``) or table (``lookup``) it uses,
    by the name listed to the project (``None`` where a "may I?" check leaves one out)."""

    model: str | None = None
    table: str | None = None

    def names(self) -> list[tuple[Literal["model", "table"], str]]:
        """The (kind, name) pairs given."""
        given: list[tuple[Literal["model", "table"], str | None]] = [
            ("model", self.model),
            ("table", self.table),
        ]
        return [(kind, name) for kind, name in given if name is not None]


def check_params(access: Access, params: HeParams) -> None:
    """The model or table a call names must be in the project's HE grant on the dataset."""
    grant = expect(access.grant, HeGrant)
    for kind, name in params.names():
        if name not in grant.names(kind):
            raise NotInGrant(f"HE {kind} {name!r} is not in the project's grant on {access.dataset.dataset}")
