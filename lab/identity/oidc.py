"""Machine clients: OIDC client-credential access tokens (JWTs) issued by a Keycloak realm.

A registration system obtains a token from ``<base>/realms/<realm>/protocol/openid-connect/token``
with the client-credentials grant and presents it as ``Authorization: Bearer <jwt>``. The lab
verifies it against the realm's JWKS and maps roles to lab roles.

Invariants:

* Only asymmetric signatures (RS*, PS*, ES*, EdDSA) are accepted; ``alg: none`` and HMAC
  (``HS*``, which would let anyone holding a public key forge tokens) are refused before any
  key is looked up.
* ``iss`` must equal the configured realm issuer and ``aud`` must contain the configured
  audience; ``exp`` and ``iat`` are required; ``exp``/``nbf``/``iat`` get ``leeway_seconds`` of
  clock skew.
* Keys come from the realm's JWKS (``jwks_uri`` of the discovery document, falling back to the
  Keycloak layout ``<issuer>/protocol/openid-connect/certs``), cached for
  ``jwks_cache_seconds``. A token with an unknown ``kid`` triggers one refetch (key rotation),
  rate-limited by ``jwks_min_refetch_seconds`` so random kids cannot hammer the realm; a key
  that has left the JWKS is no longer accepted once the cache is refreshed.
* Roles: ``realm_access.roles`` and ``resource_access.<client>.roles`` (client =
  ``client_roles_from`` or the audience) mapped through ``role_map``; a machine client can
  hold only ``registrar`` or ``auditor``, whatever the map says.
* Every refusal is :class:`~lab.errors.Unauthenticated` (401) with a reason; an unreachable
  realm is :class:`~lab.errors.Unavailable` (503).

>>> looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
True
>>> looks_like_jwt("3f2a9c0d8e7b6a5f4e3d2c1b0a998877")
False
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import httpx
import jwt

from lab.errors import Unauthenticated, Unavailable
from lab.identity.principal import Principal, Role
from lab.settings import OidcSettings

#: Signature algorithms a realm may use; everything else (none, HS*) is refused.
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Lab roles a machine identity may be given.
MACHINE_ROLES = frozenset({Role.registrar, Role.auditor})
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
MAX_TOKEN_BYTES = 16 * 1024


def looks_like_jwt(token: str) -> bool:
    """True if ``token`` has the JWS compact shape (three dot-separated base64url parts)."""
    return len(token) <= MAX_TOKEN_BYTES and bool(_JWT.match(token))


class OidcVerifier:
    """Verifies a realm's access tokens; holds the realm's cached JWKS.

    Usage (needs the realm's issuer to fetch its JWKS, so not run here)::

        v = OidcVerifier(settings.oidc); principal = v.verify(token)
    """

    def __init__(self, cfg: OidcSettings, timeout: float = 5.0) -> None:
        if not cfg.issuer:
            raise ValueError("OIDC is not configured (oidc.issuer is unset)")
        self.cfg = cfg
        self.issuer = cfg.issuer.rstrip("/")
        self._http = httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._jwks_url = cfg.jwks_url
        self.fetches = 0  # how many times the JWKS was fetched (observability and tests)

    def close(self) -> None:
        self._http.close()

    # -- keys ------------------------------------------------------------------------
    def _get_json(self, url: str) -> Any:
        try:
            r = self._http.get(url)
        except httpx.HTTPError as exc:
            raise Unavailable(f"OIDC realm unreachable ({exc.__class__.__name__})") from exc
        if r.status_code != 200:
            raise Unavailable(f"OIDC realm answered {r.status_code} for {url}")
        try:
            return r.json()
        except ValueError:
            raise Unavailable(f"OIDC realm returned invalid JSON at {url}") from None

    def _discover_jwks_url(self) -> str:
        if self._jwks_url:
            return self._jwks_url
        try:
            doc = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        except Unavailable:
            doc = None
        if isinstance(doc, dict) and doc.get("jwks_uri"):
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise Unavailable("the realm's discovery document names a different issuer")
            self._jwks_url = str(doc["jwks_uri"])
        else:  # Keycloak layout
            self._jwks_url = f"{self.issuer}/protocol/openid-connect/certs"
        return self._jwks_url

    def _refresh(self) -> None:
        data = self._get_json(self._discover_jwks_url())
        keys: dict[str, jwt.PyJWK] = {}
        for raw in data.get("keys", []) if isinstance(data, dict) else []:
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig" or "kid" not in raw:
                continue
            if raw.get("alg") and raw["alg"] not in ALLOWED_ALGORITHMS:
                continue
            try:
                keys[str(raw["kid"])] = jwt.PyJWK(raw)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type this library cannot use; other keys still work
        self._keys, self._fetched_at = keys, time.monotonic()
        self.fetches += 1

    def key_for(self, kid: str) -> jwt.PyJWK:
        """The signing key ``kid``; refetches the JWKS when stale or when ``kid`` is unknown."""
        with self._lock:
            now = time.monotonic()
            if now - self._fetched_at > self.cfg.jwks_cache_seconds:
                self._refresh()
            elif kid not in self._keys and now - self._fetched_at >= self.cfg.jwks_min_refetch_seconds:
                self._refresh()  # key rotation: the realm may have published a new key
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(
                f"token signed with key {kid!r}, which the realm does not publish (rotated away or forged)"
            )
        return key

    # -- tokens ----------------------------------------------------------------------
    def verify(self, token: str) -> Principal:
        """The machine principal ``token`` authenticates; :class:`Unauthenticated` otherwise."""
        if not looks_like_jwt(token):
            raise Unauthenticated("not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("malformed JWT header") from None
        alg = str(header.get("alg", ""))
        if alg.lower() == "none":
            raise Unauthenticated("unsigned tokens (alg none) are refused")
        if alg.upper().startswith("HS"):
            raise Unauthenticated(
                f"symmetric signatures ({alg}) are refused; the realm must sign with a key pair"
            )
        if alg not in ALLOWED_ALGORITHMS:
            raise Unauthenticated(f"signature algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token has no key id (kid)")
        claims = self._decode(token, self.key_for(kid), alg)
        return self.principal(claims)

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.cfg.audience,
                issuer=self.issuer,
                leeway=self.cfg.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(
                f"token is not meant for this API (audience must be {self.cfg.audience!r})"
            ) from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(
                f"token was issued by another realm (issuer must be {self.issuer})"
            ) from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token is not valid yet (nbf/iat in the future)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        return claims

    def principal(self, claims: dict[str, Any]) -> Principal:
        """Map verified claims to a machine :class:`Principal` (roles via ``role_map``)."""
        client = str(claims.get("azp") or claims.get("client_id") or claims.get("clientId") or "")
        name = client or str(claims.get("sub", ""))
        if not name:
            raise Unauthenticated("token names no client (azp, client_id or sub)")
        external: set[str] = set()
        realm = claims.get("realm_access")
        if isinstance(realm, dict) and isinstance(realm.get("roles"), list):
            external.update(str(r) for r in realm["roles"])
        resource = claims.get("resource_access")
        source = self.cfg.client_roles_from or self.cfg.audience
        if isinstance(resource, dict) and isinstance(resource.get(source), dict):
            roles = resource[source].get("roles")
            if isinstance(roles, list):
                external.update(str(r) for r in roles)
        mapped = {self.cfg.role_map[r] for r in external if r in self.cfg.role_map}
        lab_roles = frozenset(Role(r) for r in mapped if r in {m.value for m in MACHINE_ROLES})
        return Principal(f"oidc:{name}", lab_roles, frozenset(sorted(external)), kind="machine")


_VERIFIERS: dict[tuple[Any, ...], OidcVerifier] = {}
_VERIFIERS_LOCK = threading.Lock()


def verifier_for(cfg: OidcSettings) -> OidcVerifier:
    """A process-wide verifier per configuration, so the JWKS cache survives across requests."""
    key = tuple(sorted((k, repr(v)) for k, v in cfg.model_dump().items()))
    with _VERIFIERS_LOCK:
        found = _VERIFIERS.get(key)
        if found is None:
            if len(_VERIFIERS) > 32:
                for v in _VERIFIERS.values():
                    v.close()
                _VERIFIERS.clear()
            found = _VERIFIERS[key] = OidcVerifier(cfg)
        return found
