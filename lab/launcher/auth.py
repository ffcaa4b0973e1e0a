"""JupyterHub authenticators of the lab: lab roles become Hub *role groups*, project groups stay the lab's.

The lab reads a caller's roles from its Hub groups (``bureau``, ``steward``, ``operator``, ``auditor``,
``registrar``) and manages project groups (``project-<id>``) through the Hub API. JupyterHub's own
``Authenticator.manage_groups`` would replace *all* of a user's groups at each login and disable the
group API, so the authenticators here keep ``manage_groups`` off and instead synchronize only the
role groups after a successful login (see docs/adr/0004-keycloak-roles-as-hub-role-groups.md):

* :class:`LabNativeAuthenticator` (embedded lab): the launcher's demo accounts (PBKDF2 hashes in the
  accounts file) log in with the printed passwords and get exactly their demo roles; anyone else signs
  up through NativeAuthenticator and may log in once the bureau has approved the account at
  ``/hub/authorize``, after which they hold the ``operator`` role group.
* :class:`KeycloakAuthenticator` (production): GenericOAuthenticator against a Keycloak realm; realm
  roles and groups named like lab roles become role groups (Keycloak is authoritative); a user who
  holds none of the lab roles is refused (HTTP 403).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jupyterhub import orm
from jupyterhub.utils import maybe_future
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from oauthenticator.generic import GenericOAuthenticator
from traitlets import List, Unicode

from lab.launcher.demo_auth import check_password

#: Hub groups that carry lab roles; every other group (``project-*``) is left alone.
ROLE_GROUPS = ("bureau", "steward", "operator", "auditor", "registrar")


async def sync_role_groups(
    authenticator: Any, handler: Any, name: str, roles: list[str], *, authoritative: bool
) -> None:
    """Make the user's role groups match ``roles`` (``authoritative``) or add the missing ones.

    Creates the Hub user first when this is their first login (calling ``add_user`` as the Hub would).
    Groups other than :data:`ROLE_GROUPS` are never touched.
    """
    user = handler.find_user(name)
    if user is None:
        user = handler.user_from_username(name)
        await maybe_future(authenticator.add_user(user))
    db = handler.db
    wanted = {r for r in roles if r in ROLE_GROUPS}
    current = {g.name for g in user.orm_user.groups}
    for group_name in ROLE_GROUPS:
        if group_name in wanted and group_name not in current:
            group = orm.Group.find(db, group_name)
            if group is None:
                group = orm.Group(name=group_name)
                db.add(group)
            user.orm_user.groups.append(group)
        elif authoritative and group_name in current and group_name not in wanted:
            user.orm_user.groups = [g for g in user.orm_user.groups if g.name != group_name]
    db.commit()


class RoleGroupsMixin:
    """After a successful login, synchronize the role groups named in ``auth_model["lab_roles"]``."""

    async def get_authenticated_user(self, handler: Any, data: Any) -> dict[str, Any] | None:
        model: dict[str, Any] | None = await super().get_authenticated_user(handler, data)  # type: ignore[misc]
        if model is not None and "lab_roles" in model:
            await sync_role_groups(
                self,
                handler,
                model["name"],
                list(model["lab_roles"]),
                authoritative=bool(model.get("lab_roles_authoritative", True)),
            )
        return model


class LabLoginHandler(NativeLoginHandler):  # type: ignore[misc]
    """NativeAuthenticator's login page, adapted to JupyterHub 6 (no ``statsd``, error re-rendering)."""

    def _render(self, login_error: str | None = None, username: str | None = None, **_: Any) -> Any:
        return super()._render(login_error=login_error, username=username)

    async def post(self) -> None:
        data = {
            arg: self.get_argument(arg, strip=arg == "username")
            for arg in self.request.body_arguments
            if arg != "_xsrf"
        }
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        username = data.get("username", "")
        error = "Invalid username or password."
        info = self.authenticator.get_user(username) if username else None
        if info is not None and not info.is_authorized and info.is_valid_password(data.get("password", "")):
            error = f"User {username} has not been authorized by the bureau yet."
        self.set_status(403)
        self.finish(await self._render(login_error=error, username=username[:32]))


class LabNativeAuthenticator(RoleGroupsMixin, NativeAuthenticator):  # type: ignore[misc]
    """Demo accounts from the launcher's file, plus NativeAuthenticator sign-ups approved by the bureau."""

    accounts_file = Unicode("", config=True, help="JSON file of demo accounts written by `lab up`")
    signup_roles = List(
        Unicode(), ["operator"], config=True, help="role groups an approved sign-up receives at login"
    )

    def _accounts(self) -> dict[str, Any]:
        path = Path(self.accounts_file) if self.accounts_file else None
        if path is None or not path.exists():
            return {}
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        name = self.normalize_username((data.get("username") or "").strip())
        record = self._accounts().get(name)
        if record is not None:  # a demo account: its password and roles come from the accounts file
            if not check_password(record, data.get("password") or ""):
                return None
            return {
                "name": name,
                "lab_roles": list(record.get("groups", [])),
                "lab_roles_authoritative": True,
            }
        approved = await super().authenticate(handler, data)
        if not approved:
            return None
        return {"name": approved, "lab_roles": list(self.signup_roles), "lab_roles_authoritative": False}

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        handlers: list[tuple[str, Any]] = super().get_handlers(app)
        return [(path, LabLoginHandler if path == r"/login" else h) for path, h in handlers]

    def create_user(self, username: str, password: str, **kwargs: Any) -> Any:
        """Sign-up; names of demo accounts are reserved."""
        if self.normalize_username(username) in self._accounts():
            return None
        return super().create_user(username, password, **kwargs)


class KeycloakAuthenticator(RoleGroupsMixin, GenericOAuthenticator):  # type: ignore[misc]
    """GenericOAuthenticator for a Keycloak realm; lab roles from realm roles and groups."""

    roles_claim = Unicode(
        "realm_access.roles",
        config=True,
        help="dotted path of the realm roles in the userinfo response (Keycloak's realm-roles mapper)",
    )
    groups_claim = Unicode(
        "groups",
        config=True,
        help="dotted path of the group names in the userinfo response (Keycloak's group-membership mapper)",
    )

    @staticmethod
    def _claim(info: dict[str, Any], path: str) -> list[str]:
        value: Any = info
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, list):
            return []
        return [str(v) for v in value]

    def lab_roles(self, userinfo: dict[str, Any]) -> list[str]:
        """Lab roles held in ``userinfo``: realm roles plus groups (``/operator`` counts as ``operator``)."""
        names = self._claim(userinfo, self.roles_claim)
        names += [g.strip("/").rsplit("/", 1)[-1] for g in self._claim(userinfo, self.groups_claim)]
        return sorted({n for n in names if n in ROLE_GROUPS})

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        userinfo = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
        auth_model["lab_roles"] = self.lab_roles(userinfo)
        auth_model["lab_roles_authoritative"] = True
        return auth_model

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        """Only users holding at least one lab role may enter (Keycloak is authoritative)."""
        if auth_model is None:
            return True
        if auth_model.get("lab_roles"):
            return True
        self.log.warning("refusing %s: no lab role in the Keycloak token", username)
        return False
