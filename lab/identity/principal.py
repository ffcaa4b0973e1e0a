"""The authenticated caller and its roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from lab.errors import Forbidden


class Role(StrEnum):
    bureau = "bureau"
    steward = "steward"
    operator = "operator"
    auditor = "auditor"
    registrar = "registrar"


ROLES = frozenset(r.value for r in Role)


@dataclass(frozen=True)
class Principal:
    """An authenticated user, Hub service or machine client."""

    name: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    groups: frozenset[str] = field(default_factory=frozenset)
    kind: str = "user"

    @classmethod
    def from_groups(cls, name: str, groups: list[str] | frozenset[str], kind: str = "user") -> Principal:
        gs = frozenset(groups)
        return cls(name, frozenset(Role(g) for g in gs if g in ROLES), gs, kind)

    def has(self, *roles: Role) -> bool:
        return any(r in self.roles for r in roles)

    def require(self, *roles: Role) -> Principal:
        """Raise :class:`Forbidden` unless the principal holds one of ``roles``."""
        if not self.has(*roles):
            need = " or ".join(r.value for r in roles)
            raise Forbidden(f"{self.name} lacks the role {need}", required_roles=[r.value for r in roles])
        return self
