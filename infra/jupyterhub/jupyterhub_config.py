"""JupyterHub configuration for the Public Data Innovation Lab.

One file, two variants chosen by ``LAB_HUB_VARIANT`` (the logic lives in ``lab.launcher.hubconfig`` so
that the Zero-to-JupyterHub chart applies the same rules; see docs/deploy.md):

* ``embedded`` (default, ``lab up`` and the tests): the launcher's demo accounts plus NativeAuthenticator
  sign-ups approved by the bureau, local process spawner, configurable-http-proxy from the project's
  ``node_modules``, SQLite Hub database, the lab API as a managed service.
* ``production``: Keycloak through a GenericOAuthenticator subclass (realm roles/groups -> Hub role
  groups; users without a lab role refused), DockerSpawner (compose) or KubeSpawner, the lab API run
  separately (``LAB_HUB_MANAGE_API=0``, ``LAB_API_INTERNAL_URL``).

In both, the lab API is a Hub service named ``lab-api`` whose role lets it read users and groups,
manage project groups and issue tokens; only members of an active project's group (``project-<id>``)
may spawn a server; notebook servers get ``LAB_API_URL`` and their own Hub token, and no storage or
database credentials; idle servers are culled by ``jupyterhub-idle-culler``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lab.launcher.hubconfig import configure

configure(get_config())  # type: ignore[name-defined]  # noqa: F821
