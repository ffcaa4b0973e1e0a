"""JupyterHub configuration for the Public Data Innovation Lab.

One file, two variants chosen by ``LAB_HUB_VARIANT``:

* ``embedded`` (default, ``lab up`` and the tests): demo accounts, local process spawner,
  configurable-http-proxy from the project's ``node_modules``, SQLite Hub database.
* ``production``: Keycloak through OAuthenticator's GenericOAuthenticator (see docs/deploy.md).

In both, the lab API runs as a Hub service named ``lab-api`` whose role lets it read users
and groups, manage project groups and issue tokens; only members of an active project's
group (``project-<id>``) or bureau reviewers may spawn a server.
"""

import os
import sys
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821

env = os.environ.get
ROOT = Path(__file__).resolve().parents[2]
DATA = Path(env("LAB_DATA_DIR", str(ROOT / "var"))).resolve()
HUB_DIR = DATA / "hub"
HUB_DIR.mkdir(parents=True, exist_ok=True)
VARIANT = env("LAB_HUB_VARIANT", "embedded")
PUBLIC_PORT = int(env("LAB_HUB_PORT", "8000"))
HUB_PORT = int(env("LAB_HUB_API_PORT", "8081"))
API_PORT = int(env("LAB_API_PORT", "8181"))
PROXY_API_PORT = int(env("LAB_PROXY_API_PORT", str(PUBLIC_PORT + 1)))
SERVICE_TOKEN = env("LAB_HUB__API_TOKEN", "")
ROLE_GROUPS = ["bureau", "steward", "operator", "auditor", "registrar"]

c.JupyterHub.bind_url = f"http://127.0.0.1:{PUBLIC_PORT}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_PORT
c.JupyterHub.db_url = env("LAB_HUB_DB_URL", f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}")
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(HUB_DIR / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.load_groups = {g: {"users": []} for g in ROLE_GROUPS}
c.Authenticator.allow_all = True

chp = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [str(chp) if chp.exists() else "configurable-http-proxy"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"

# --- the lab API as a Hub service ---------------------------------------------------------------
service = {
    "name": "lab-api",
    "url": f"http://127.0.0.1:{API_PORT}",
    "api_token": SERVICE_TOKEN,
    "display": True,
    "oauth_no_confirm": True,
}
if env("LAB_HUB_MANAGE_API", "1") == "1":
    passthrough = {k: v for k, v in os.environ.items() if k.startswith(("LAB_", "PATH", "HOME", "LANG"))}
    service["command"] = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "lab.api.main:app_factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(API_PORT),
        "--no-access-log",
    ]
    service["environment"] = passthrough
    service["cwd"] = str(ROOT)
c.JupyterHub.services = [service]
c.JupyterHub.load_roles = [
    {
        "name": "lab-api",
        "description": "the lab API: resolve callers, manage project groups, issue demo tokens",
        "scopes": [
            "list:users",
            "read:users",
            "admin:users",
            "list:groups",
            "read:groups",
            "admin:groups",
            "groups",
            "users",
            "tokens",
            "read:servers",
            "delete:servers",
        ],
        "services": ["lab-api"],
    },
    {
        "name": "user",
        "description": "every user may use their own server and reach the lab API",
        "scopes": ["self", "access:services!service=lab-api"],
    },
]


# --- who may spawn -----------------------------------------------------------------------------
def _may_spawn(spawner):
    groups = {g.name for g in spawner.user.orm_user.groups}
    if "bureau" in groups or any(g.startswith("project-") for g in groups):
        return None
    raise PermissionError(f"{spawner.user.name} is not a member of an active lab project")


c.Spawner.pre_spawn_hook = _may_spawn
c.Spawner.environment = {"LAB_API_URL": f"http://127.0.0.1:{PUBLIC_PORT}/services/lab-api"}

if VARIANT == "embedded":
    c.JupyterHub.authenticator_class = "lab.launcher.demo_auth.DemoAuthenticator"
    c.DemoAuthenticator.accounts_file = env("LAB_DEMO_ACCOUNTS", str(DATA / "demo-accounts.json"))
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(DATA / "homes" / "{username}")
    c.Spawner.default_url = "/lab"
    c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
else:  # production: Keycloak via GenericOAuthenticator; see docs/deploy.md
    realm = env("LAB_KEYCLOAK_REALM_URL", "")
    c.JupyterHub.authenticator_class = "generic-oauth"
    c.GenericOAuthenticator.client_id = env("LAB_KEYCLOAK_CLIENT_ID", "jupyterhub")
    c.GenericOAuthenticator.client_secret = env("LAB_KEYCLOAK_CLIENT_SECRET", "")
    c.GenericOAuthenticator.oauth_callback_url = env("LAB_HUB_PUBLIC_URL", "") + "/hub/oauth_callback"
    c.GenericOAuthenticator.authorize_url = f"{realm}/protocol/openid-connect/auth"
    c.GenericOAuthenticator.token_url = f"{realm}/protocol/openid-connect/token"
    c.GenericOAuthenticator.userdata_url = f"{realm}/protocol/openid-connect/userinfo"
    c.GenericOAuthenticator.username_claim = "preferred_username"
    c.GenericOAuthenticator.scope = ["openid", "profile", "roles"]
    c.GenericOAuthenticator.manage_groups = True
    c.GenericOAuthenticator.auth_state_groups_key = "oauth_user.realm_access.roles"
    c.GenericOAuthenticator.allowed_groups = set(ROLE_GROUPS)
    c.GenericOAuthenticator.admin_groups = {"hub-admin"}
