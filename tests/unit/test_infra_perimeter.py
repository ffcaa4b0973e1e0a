"""Production parity of the perimeter: what the rendered Kubernetes objects let a notebook pod reach.

The objects of ``infra/k8s/*.yaml`` (and the chart values that decide whether the chart adds its own
policy) are evaluated with the NetworkPolicy egress semantics of ``networking.k8s.io/v1``: a pod selected
by at least one policy with ``Egress`` may open a connection only if some rule of such a policy matches
the destination (peer and port). Notebook pods must reach the proxy's public port and cluster DNS, and
nothing else: no lab API or Hub pod directly, no storage, no database, no other namespace, no Internet.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
NAMESPACE = "lab"
NOTEBOOK = {
    "component": "singleuser-server",
    "app": "jupyterhub",
    "hub.jupyter.org/network-access-hub": "true",
}


@dataclass(frozen=True)
class Peer:
    """A destination: a pod (labels, namespace) or an address outside the cluster."""

    labels: dict[str, str] = field(default_factory=dict)
    namespace: str = NAMESPACE
    ip: str = "10.0.0.9"

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def rendered_objects() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        if path.name != "z2jh-values.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"unsupported selector {selector}"
    return dict(selector.get("matchLabels") or {}).items() <= labels.items()


def _peer_matches(peer: dict[str, Any], dest: Peer) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        inside = ipaddress.ip_address(dest.ip) in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            ipaddress.ip_address(dest.ip) in ipaddress.ip_network(c) for c in block.get("except", [])
        )
    if not dest.labels:  # an address outside the cluster matches no pod or namespace selector
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], dest.namespace_labels):
            return False
    elif dest.namespace != NAMESPACE:
        return False
    return _selects(peer.get("podSelector") or {}, dest.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports)


def egress_allowed(pod: dict[str, str], dest: Peer, port: int, protocol: str = "TCP") -> bool:
    policies = [
        d
        for d in rendered_objects()
        if d["kind"] == "NetworkPolicy"
        and "Egress" in d["spec"]["policyTypes"]
        and _selects(d["spec"]["podSelector"], pod)
    ]
    if not policies:
        return True  # Kubernetes: a pod no egress policy selects may go anywhere
    for policy in policies:
        for rule in policy["spec"].get("egress") or []:
            peers = rule.get("to")
            if (not peers or any(_peer_matches(p, dest) for p in peers)) and _port_matches(
                rule.get("ports"), port, protocol
            ):
                return True
    return False


PROXY = Peer({"component": "proxy", "app": "jupyterhub"})
DNS = Peer({"k8s-app": "kube-dns"}, namespace="kube-system")
DENIED = {
    "lab API pod": (Peer({"app.kubernetes.io/name": "lab-api", "app.kubernetes.io/component": "api"}), 8181),
    "Hub API": (Peer({"component": "hub", "app": "jupyterhub"}), 8081),
    "proxy's REST API": (PROXY, 8001),
    "MinIO": (Peer({"app.kubernetes.io/name": "minio"}), 9000),
    "PostgreSQL": (Peer({"app.kubernetes.io/name": "postgresql"}), 5432),
    "Keycloak": (Peer({"app.kubernetes.io/name": "keycloak"}), 8080),
    "another notebook": (Peer(NOTEBOOK), 8888),
    "a pod in another namespace": (Peer({"component": "proxy"}, namespace="other"), 8000),
    "the Internet": (Peer(ip="93.184.216.34"), 443),
    "the cloud metadata server": (Peer(ip="169.254.169.254"), 80),
    "DNS elsewhere": (Peer(ip="8.8.8.8"), 53),
}


def test_notebook_pods_reach_the_proxy_public_port_and_dns() -> None:
    assert egress_allowed(NOTEBOOK, PROXY, 8000)
    assert egress_allowed(NOTEBOOK, DNS, 53, "UDP") and egress_allowed(NOTEBOOK, DNS, 53, "TCP")


@pytest.mark.parametrize("name", sorted(DENIED))
def test_notebook_pods_reach_nothing_else(name: str) -> None:
    dest, port = DENIED[name]
    assert not egress_allowed(NOTEBOOK, dest, port, "UDP" if port == 53 else "TCP"), name


def test_the_evaluator_would_catch_a_permissive_policy() -> None:
    """Without the lab's policy, the same pod could reach the lab API directly (the check can fail)."""
    assert egress_allowed({"component": "something-else"}, DENIED["lab API pod"][0], 8181)


def test_the_chart_adds_no_policy_of_its_own_and_notebooks_use_the_proxy() -> None:
    values = yaml.safe_load((INFRA / "k8s" / "z2jh-values.yaml").read_text())
    assert values["singleuser"]["networkPolicy"]["enabled"] is False  # its policy always allows the Hub pod
    hosts = {
        urlparse(values["hub"]["extraEnv"]["LAB_SINGLEUSER_API_URL"]).hostname,
        urlparse(values["hub"]["config"]["KubeSpawner"]["hub_connect_url"]).hostname,
    }
    assert hosts == {"proxy-public.lab.svc.cluster.local"}
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is True
