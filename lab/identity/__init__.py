"""Who is calling: principals, roles, and token resolution through JupyterHub.

Hub groups named after roles (``bureau``, ``steward``, ``operator``, ``auditor``,
``registrar``) grant those roles; project groups (``project-<id>``) are managed by the
projects capability and gate spawning.
"""

from lab.identity.principal import ROLES, Principal, Role

__all__ = ["ROLES", "Principal", "Role"]
