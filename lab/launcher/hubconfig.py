"""The lab's JupyterHub configuration as functions, shared by ``infra/jupyterhub/jupyterhub_config.py``
and the Zero-to-JupyterHub ``hub.extraConfig`` snippet (``infra/k8s/z2jh-values.yaml``).

Everything is read from environment variables (the Hub process's settings):

===========================  =====================================================================
``LAB_HUB_VARIANT``          ``embedded`` (demo accounts + sign-ups) or ``production`` (Keycloak)
``LAB_HUB_SPAWNER``          ``local`` (SimpleLocalProcessSpawner), ``docker`` or ``kubernetes``
``LAB_HUB__API_TOKEN``       the lab API's Hub service token
``LAB_HUB_MANAGE_API``       ``1``: the Hub starts the lab API itself (embedded); ``0``: runs elsewhere
``LAB_API_INTERNAL_URL``     where the Hub proxy reaches the lab API (default ``127.0.0.1:LAB_API_PORT``)
``LAB_SINGLEUSER_API_URL``   the lab API URL given to notebook servers (default: through the proxy)
``LAB_HUB_IDLE_TIMEOUT``     seconds of inactivity after which a notebook server is culled (3600)
``LAB_KEYCLOAK_*``           realm URL, client id and secret (production)
===========================  =====================================================================

Invariants (tested in tests/e2e/test_jupyter_e2e.py and tests/integration/test_keycloak_login.py):

* only members of a project group (``project-<id>``, kept by the lab to the active projects'
  members) may spawn a server; one default server per user (docs/adr/0001-one-notebook-server-per-user.md);
* the server's own ``JUPYTERHUB_API_TOKEN`` may reach the lab API and resolve the user's groups;
* the server's environment is built from ``Spawner.env_keep`` (:data:`ENV_KEEP`) and
  ``Spawner.environment`` only: no ``LAB_S3__*``, ``LAB_DATABASE_URL`` or ``LAB_SECRET_KEY``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ROLE_GROUPS = ["bureau", "steward", "operator", "auditor", "registrar"]
#: Variables a notebook server inherits from the Hub process — nothing secret.
ENV_KEEP = ["JUPYTERHUB_SINGLEUSER_APP", "PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "OPENBLAS_CORETYPE"]
#: Scopes of a notebook server's own token: report activity, be reached, reach the lab API, name+groups.
SERVER_TOKEN_SCOPES = [
    "users:activity!user",
    "access:servers!server",
    "access:services!service=lab-api",
    "read:users:name!user",
    "read:users:groups!user",
]
PROJECT_GROUP_PREFIX = "project-"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def project_ids(group_names: list[str] | set[str]) -> list[str]:
    """Project ids from Hub group names (``project-p123`` -> ``p123``), sorted."""
    return sorted(g[len(PROJECT_GROUP_PREFIX) :] for g in group_names if g.startswith(PROJECT_GROUP_PREFIX))


def may_spawn(spawner: Any) -> None:
    """``Spawner.pre_spawn_hook``: only project members spawn; the server learns its projects.

    Raises a 403 for users in no project group; sets ``LAB_PROJECTS`` (comma-separated ids) and,
    with exactly one project, ``LAB_PROJECT``, so notebooks can ``client.use(...)`` without editing.
    """
    from tornado import web

    groups = {g.name for g in spawner.user.orm_user.groups}
    projects = project_ids(groups)
    if not projects:
        message = (
            f"{spawner.user.name} is not a member of an active lab project; ask the bureau to approve one"
        )
        refusal = web.HTTPError(403, message)
        refusal.jupyterhub_message = message  # type: ignore[attr-defined]  # shown on the Hub's error page instead of "failed to start"
        raise refusal
    spawner.environment = {**spawner.environment, "LAB_PROJECTS": ",".join(projects)}
    if len(projects) == 1:
        spawner.environment["LAB_PROJECT"] = projects[0]


def copy_notebooks(spawner: Any) -> None:
    """Put the example notebooks in the user's home (``~/notebooks``), never overwriting their edits."""
    from lab.launcher.homes import fill_home

    fill_home(Path(spawner.home_dir))


def _embedded_pre_spawn(spawner: Any) -> None:
    may_spawn(spawner)
    copy_notebooks(spawner)


def _isolated_pre_spawn(spawner: Any) -> None:
    from lab.launcher.spawner import prepare_isolated_spawn

    may_spawn(spawner)
    prepare_isolated_spawn(spawner)


def configure_common(c: Any) -> None:
    """Roles, the lab API service, the idle culler, the spawn rule and the notebook environment."""
    api_port = int(_env("LAB_API_PORT", "8181"))
    public_url = _env("LAB_HUB__PUBLIC_URL", f"http://127.0.0.1:{_env('LAB_HUB_PORT', '8000')}").rstrip("/")
    service: dict[str, Any] = {
        "name": "lab-api",
        "url": _env("LAB_API_INTERNAL_URL", f"http://127.0.0.1:{api_port}"),
        "api_token": _env("LAB_HUB__API_TOKEN"),
        "display": True,
        "oauth_no_confirm": True,
    }
    if _env("LAB_HUB_MANAGE_API", "1") == "1":
        service["command"] = [
            sys.executable,
            *("-m", "uvicorn", "--factory", "lab.api.main:app_factory"),
            *("--host", "127.0.0.1", "--port", str(api_port), "--no-access-log"),
        ]
        # the lab API (not the notebooks) needs storage and database credentials
        service["environment"] = {
            k: v for k, v in os.environ.items() if k.startswith(("LAB_", "PATH", "HOME", "LANG", "OPENBLAS"))
        }
        service["cwd"] = str(ROOT)
    idle = int(_env("LAB_HUB_IDLE_TIMEOUT", "3600"))
    culler = {
        "name": "idle-culler",
        "command": [
            sys.executable,
            *("-m", "jupyterhub_idle_culler"),
            f"--timeout={idle}",
            f"--cull-every={max(60, min(600, idle // 4))}",
        ],
    }
    c.JupyterHub.services = [service, culler]
    c.JupyterHub.load_groups = {g: {"users": []} for g in ROLE_GROUPS}
    c.JupyterHub.load_roles = [
        {
            "name": "lab-api",
            "description": "the lab API: resolve callers, manage project groups, issue demo tokens",
            "scopes": [
                *("list:users", "read:users", "admin:users", "users", "tokens"),
                *("list:groups", "read:groups", "admin:groups", "groups"),
                *("read:servers", "delete:servers"),
            ],
            "services": ["lab-api"],
        },
        {
            "name": "idle-culler",
            "description": "cull idle notebook servers",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        },
        {
            "name": "user",
            "description": "every user may use their own server and reach the lab API",
            "scopes": ["self", "access:services!service=lab-api"],
        },
    ]
    c.JupyterHub.allow_named_servers = False  # docs/adr/0001-one-notebook-server-per-user.md
    c.Spawner.server_token_scopes = SERVER_TOKEN_SCOPES
    c.Spawner.env_keep = ENV_KEEP
    c.Spawner.environment = {
        "LAB_API_URL": _env("LAB_SINGLEUSER_API_URL", f"{public_url}/services/lab-api"),
    }
    c.Spawner.default_url = "/lab/tree/notebooks/00-getting-started.ipynb"
    c.Spawner.pre_spawn_hook = may_spawn
    c.Spawner.http_timeout = 60
    c.Spawner.start_timeout = 120


def configure_local_spawner(c: Any, data_dir: Path) -> None:
    """Notebook servers as local processes (embedded lab, tests): homes under the data directory.

    As root (a server, CI): each user's server runs as its own system account (lab.launcher.isolation;
    the launcher's :class:`~lab.launcher.hub.HubProcess` has made the data directory private and the
    interpreter reachable). Without root there is no other identity to give notebooks: the Hub pages
    carry a warning (never a silent fallback).
    """
    from lab.launcher import isolation

    homes = data_dir / "homes"
    c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
    if isolation.isolation_mode() == "accounts":
        c.JupyterHub.spawner_class = "lab.launcher.spawner.IsolatedLocalSpawner"
        c.IsolatedLocalSpawner.home_dir_template = str(homes / "{username}")
        c.Spawner.pre_spawn_hook = _isolated_pre_spawn
        return
    if isolation.isolation_mode() == "sandbox":
        c.JupyterHub.spawner_class = "lab.launcher.spawner.SandboxedLocalSpawner"
        c.SandboxedLocalSpawner.home_dir_template = str(homes / "{username}")
        c.SandboxedLocalSpawner.data_dir = str(data_dir)
        c.SandboxedLocalSpawner.singleuser = c.Spawner.cmd[0]
        c.Spawner.pre_spawn_hook = _embedded_pre_spawn
        if os.geteuid() == 0:  # forced as root (tests): root without capabilities inside the sandbox
            c.Spawner.args = ["--ServerApp.allow_root=True"]
        return
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(homes / "{username}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # forced off as root: servers share the uid
        c.Spawner.args = ["--ServerApp.allow_root=True"]
    c.Spawner.pre_spawn_hook = _embedded_pre_spawn
    c.JupyterHub.template_vars = {"announcement": isolation.NOT_ISOLATED}


def configure_container_spawner(c: Any, kind: str) -> None:
    """DockerSpawner (compose) or KubeSpawner (the Z2JH chart sets most of its own options)."""
    image = _env("LAB_SINGLEUSER_IMAGE", "lab-singleuser:latest")
    if kind == "docker":
        c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
        c.DockerSpawner.image = image
        c.DockerSpawner.network_name = _env("LAB_DOCKER_NETWORK", "lab-notebooks")
        c.DockerSpawner.remove = True
        c.DockerSpawner.notebook_dir = "/home/jovyan"
        c.DockerSpawner.volumes = {"lab-home-{username}": "/home/jovyan"}
        c.JupyterHub.hub_ip = "0.0.0.0"  # noqa: S104 - containers reach the Hub on its network
        c.JupyterHub.hub_connect_ip = _env("LAB_HUB_CONNECT_IP", "jupyterhub")
    elif kind == "kubernetes":
        c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
        c.KubeSpawner.image = image


def configure_embedded_auth(c: Any, data_dir: Path) -> None:
    """Demo accounts (passwords printed by ``lab up``) and bureau-approved sign-ups."""
    import nativeauthenticator

    c.JupyterHub.authenticator_class = "lab.launcher.auth.LabNativeAuthenticator"
    c.LabNativeAuthenticator.accounts_file = _env("LAB_DEMO_ACCOUNTS", str(data_dir / "demo-accounts.json"))
    c.LabNativeAuthenticator.open_signup = False
    c.LabNativeAuthenticator.minimum_password_length = 10
    c.LabNativeAuthenticator.check_common_password = True
    c.LabNativeAuthenticator.allowed_failed_logins = 5
    c.LabNativeAuthenticator.seconds_before_next_try = 60
    c.Authenticator.allow_all = True  # who may log in is decided by the accounts file and approvals
    c.JupyterHub.template_paths = [str(Path(nativeauthenticator.__file__).parent / "templates")]
    # the bureau approves sign-ups at /hub/authorize (NativeAuthenticator needs admin:users there)
    c.JupyterHub.load_roles = [
        *c.JupyterHub.load_roles,
        {
            "name": "bureau-accounts",
            "description": "bureau reviewers approve operator sign-ups",
            "scopes": ["admin:users", "list:users", "read:users", "admin-ui"],
            "groups": ["bureau"],
        },
    ]


def configure_keycloak_auth(c: Any) -> None:
    """Keycloak through GenericOAuthenticator; realm roles/groups -> Hub role groups; others refused."""
    realm = _env("LAB_KEYCLOAK_REALM_URL").rstrip("/")
    public_url = _env("LAB_HUB__PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    c.JupyterHub.authenticator_class = "lab.launcher.auth.KeycloakAuthenticator"
    k = c.KeycloakAuthenticator
    k.client_id = _env("LAB_KEYCLOAK_CLIENT_ID", "jupyterhub")
    k.client_secret = _env("LAB_KEYCLOAK_CLIENT_SECRET")
    k.oauth_callback_url = f"{public_url}/hub/oauth_callback"
    k.authorize_url = f"{realm}/protocol/openid-connect/auth"
    k.token_url = f"{realm}/protocol/openid-connect/token"
    k.userdata_url = f"{realm}/protocol/openid-connect/userinfo"
    k.logout_redirect_url = f"{realm}/protocol/openid-connect/logout"
    k.login_service = "Keycloak"
    k.username_claim = "preferred_username"
    k.scope = ["openid", "profile", "email", "roles"]
    k.manage_groups = False  # the lab manages project-* groups through the Hub API; ADR 0004
    k.allow_all = False
    k.enable_auth_state = False


def configure(c: Any) -> None:
    """The whole configuration for ``infra/jupyterhub/jupyterhub_config.py``."""
    data_dir = Path(_env("LAB_DATA_DIR", str(ROOT / "var"))).resolve()
    hub_dir = data_dir / "hub"
    hub_dir.mkdir(parents=True, exist_ok=True)
    variant = _env("LAB_HUB_VARIANT", "embedded")
    spawner = _env("LAB_HUB_SPAWNER", "local" if variant == "embedded" else "docker")
    public_port = int(_env("LAB_HUB_PORT", "8000"))
    c.JupyterHub.bind_url = _env("LAB_HUB_BIND_URL", f"http://127.0.0.1:{public_port}")
    c.JupyterHub.hub_ip = _env("LAB_HUB_IP", "127.0.0.1")
    c.JupyterHub.hub_port = int(_env("LAB_HUB_API_PORT", "8081"))
    c.JupyterHub.db_url = _env("LAB_HUB_DB_URL", f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}")
    c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True
    chp = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    c.ConfigurableHTTPProxy.command = [str(chp) if chp.exists() else "configurable-http-proxy"]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{_env('LAB_PROXY_API_PORT', str(public_port + 1))}"
    configure_common(c)
    if spawner == "local":
        configure_local_spawner(c, data_dir)
    else:
        configure_container_spawner(c, spawner)
    if variant == "embedded":
        configure_embedded_auth(c, data_dir)
    else:
        configure_keycloak_auth(c)
