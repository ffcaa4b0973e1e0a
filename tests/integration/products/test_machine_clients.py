"""Machine clients with real OIDC JWTs from a local provider with Keycloak's realm layout.

Valid registrar tokens are accepted (realm or client roles); expired, wrong-audience,
wrong-issuer, unsigned (``alg: none``), HMAC-forged, altered and rotated-away-key tokens are
refused with a 401 problem. Hub tokens keep working next to them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from lab.client import Client, Forbidden
from lab.identity.oidc import OidcVerifier
from lab.runtime import Runtime
from lab.settings import OidcSettings
from tests.integration.products.conftest import Records
from tests.oidc.provider import DEFAULT_CONFIG, OidcProvider, start_provider

pytestmark = [pytest.mark.integration, pytest.mark.hub]


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with start_provider(DEFAULT_CONFIG, tmp_path_factory.mktemp("oidc")) as op:
        yield op


@pytest.fixture
def machine_api(runtime: Runtime, api: TestClient, oidc: OidcProvider) -> TestClient:
    """The API with OIDC configured for realm ``lab`` (no leeway, refetch on every unknown kid)."""
    runtime.settings.oidc = OidcSettings(  # type: ignore[call-arg]
        issuer=oidc.issuer("lab"), audience="lab-api", leeway_seconds=0, jwks_min_refetch_seconds=0
    )
    return api


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(api: TestClient, token: str, reason: str) -> None:
    r = api.get("/api/v1/products", headers=bearer(token))
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "unauthenticated" and reason in body["detail"], body


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_registrar_client_registers_and_looks_up(
    machine_api: TestClient, oidc: OidcProvider, records: Records, as_user: Callable[..., Client]
) -> None:
    token = oidc.client_token("lab", "registry", "registry-secret")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["realm_access"]["roles"] == ["registrar", "offline_access"] and claims["aud"] == "lab-api"
    registry = as_user("registry", token=token)
    prod = registry.products.register(
        {"zh": "登记系统报告", "en": "Registry report"},
        "report",
        [records.dp, records.psi],
        artifact=records.csv,
        project=records.project,
    )
    assert prod.created_by == "oidc:registry" and prod.latest["checks_passed"]
    assert registry.products.get(prod.id)["lineage"][0]["record"] == records.dp
    assert prod.id in set(registry.products.list()["id"])
    bureau = as_user("bureau1", ["bureau"])  # a Hub token, next to the JWTs
    number = bureau.products.review(prod.id, "approve").registration_number
    assert registry.products.lookup(number)["status"] == "registered"
    assert registry.products.verify(registry.products.certificate(prod.id)).ok
    with pytest.raises(Forbidden):
        registry.products.review(prod.id, "reject", reason="registrars do not review")


def test_client_roles_count_and_unmapped_roles_give_nothing(
    machine_api: TestClient, oidc: OidcProvider, records: Records, as_user: Callable[..., Client]
) -> None:
    cro = as_user("cro", token=oidc.client_token("lab", "client-roles-only", "cro-secret"))
    assert cro.products.register(
        "报告", "report", [records.dp], artifact=records.csv, project=records.project
    )
    none = as_user("none", token=oidc.client_token("lab", "no-roles", "no-roles-secret"))
    with pytest.raises(Forbidden):
        none.products.register("报告", "report", [records.dp], artifact=records.csv, project=records.project)
    wannabe = as_user("wb", token=oidc.client_token("lab", "bureau-wannabe", "bw-secret"))
    with pytest.raises(Forbidden):  # a realm role named "bureau" does not make a machine a reviewer
        wannabe.products.queue()


def test_expired_token_is_refused_and_leeway_absorbs_clock_skew(
    machine_api: TestClient, runtime: Runtime, oidc: OidcProvider
) -> None:
    token = oidc.client_token("lab", "short-lived", "short-secret")
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, exp - time.time()) + 1.2)
    assert_refused(machine_api, token, "token expired")
    lenient = OidcVerifier(runtime.settings.oidc.model_copy(update={"leeway_seconds": 30}))
    try:
        assert lenient.verify(token).name == "oidc:short-lived"
    finally:
        lenient.close()


def test_wrong_audience_and_wrong_issuer_are_refused(machine_api: TestClient, oidc: OidcProvider) -> None:
    other_aud = oidc.client_token("lab", "registry", "registry-secret", resource="urn:other-api")
    assert jwt.decode(other_aud, options={"verify_signature": False})["aud"] == "other-api"
    assert_refused(machine_api, other_aud, "not meant for this API")
    # realm "other" signs with the very same key: only the issuer check stops it
    other_realm = oidc.client_token("other", "registry", "registry-secret")
    assert jwt.get_unverified_header(other_realm)["kid"] in oidc.kids("lab")
    assert_refused(machine_api, other_realm, "issued by another realm")


def test_unsigned_hmac_forged_and_altered_tokens_are_refused(
    machine_api: TestClient, oidc: OidcProvider, as_user: Callable[..., Client]
) -> None:
    good = oidc.client_token("lab", "registry", "registry-secret")
    header, payload, _sig = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    kid = jwt.get_unverified_header(good)["kid"]
    assert_refused(machine_api, f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.", "alg none")
    assert_refused(machine_api, f"{_b64({'alg': 'none', 'kid': kid})}.{payload}.", "alg none")
    jwks = oidc.http.get(f"{oidc.issuer('lab')}/protocol/openid-connect/certs").json()
    public_pem = jwt.PyJWK(jwks["keys"][0]).key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    hs = _hs256(claims, kid, public_pem)
    assert_refused(machine_api, hs, "symmetric signatures")
    altered = dict(claims, realm_access={"roles": ["registrar", "bureau"]})
    assert_refused(machine_api, f"{header}.{_b64(altered)}.{_sig}", "signature does not verify")
    assert_refused(machine_api, "a.b.c", "malformed")


def _hs256(claims: dict[str, Any], kid: str, secret: bytes) -> str:
    import hashlib
    import hmac

    signing = f"{_b64({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{_b64(claims)}"
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def test_key_rotation_new_keys_accepted_rotated_away_keys_refused(
    machine_api: TestClient, oidc: OidcProvider
) -> None:
    def ok(token: str) -> None:
        r = machine_api.get("/api/v1/products", headers=bearer(token))
        assert r.status_code == 200, r.text

    t1 = oidc.client_token("lab", "registry", "registry-secret")
    ok(t1)
    k2 = oidc.rotate("lab", keep_old=True)  # grace period: both keys published
    t2 = oidc.client_token("lab", "registry", "registry-secret")
    assert jwt.get_unverified_header(t2)["kid"] == k2
    ok(t2)  # unknown kid -> the JWKS is refetched
    ok(t1)
    k3 = oidc.rotate("lab", keep_old=False)  # K1 and K2 withdrawn
    t3 = oidc.client_token("lab", "registry", "registry-secret")
    assert oidc.kids("lab") == [k3]
    ok(t3)
    assert_refused(machine_api, t1, "does not publish")
    assert_refused(machine_api, t2, "does not publish")


def test_without_oidc_settings_jwts_go_to_the_hub_and_fail(
    api: TestClient, oidc: OidcProvider, tmp_path: Path
) -> None:
    token = oidc.client_token("lab", "registry", "registry-secret")
    r = api.get("/api/v1/products", headers=bearer(token))
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
