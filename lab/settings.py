"""Lab settings, read from ``LAB_*`` environment variables and an optional ``.env`` file.

Nested groups use ``__`` as delimiter, e.g. ``LAB_S3__ENDPOINT=127.0.0.1:8333``. The PSI and
HE groups also read their older one-underscore names (``LAB_PSI_FPR``, ``LAB_HE_PROCESSES``);
the ``__`` form wins when both are set. The embedded demo runs with generated defaults;
``LAB_MODE=production`` refuses them (see :meth:`Settings.check_production`).
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEMO_SECRET = "embedded-demo-only-change-me"  # noqa: S105 - refused in production


class S3Settings(BaseModel):
    """Object storage: any S3 endpoint, reached through the ``minio`` client."""

    endpoint: str = Field("127.0.0.1:8333", description="host:port of the S3 API")
    access_key: str = Field("lab", description="S3 access key")
    secret_key: SecretStr = Field(SecretStr(DEMO_SECRET), description="S3 secret key")
    secure: bool = Field(False, description="use HTTPS to reach the S3 endpoint")
    region: str | None = Field(None, description="S3 region, if the server needs one")
    bucket_raw: str = Field("lab-raw", description="bucket of raw datasets (Parquet)")
    bucket_products: str = Field("lab-products", description="bucket of product artifacts")
    bucket_work: str = Field("lab-work", description="bucket of projects' working data")


class HubSettings(BaseModel):
    """JupyterHub, which authenticates every caller of the lab API."""

    api_url: str = Field("http://127.0.0.1:8081/hub/api", description="the Hub's REST API URL")
    api_token: SecretStr = Field(SecretStr(""), description="the lab service's Hub API token")
    public_url: str = Field("http://127.0.0.1:8000", description="the Hub's public URL (proxy)")
    service_name: str = Field("lab-api", description="name of the lab API as a Hub service")
    token_cache_seconds: float = Field(30.0, description="how long a resolved token is trusted")


class ProjectsSettings(BaseModel):
    """Project review, expiry sweep and audit (see docs/projects.md)."""

    approvals_non_open: int = Field(
        2, ge=1, le=5, description="distinct bureau approvals when a project touches a non-open dataset"
    )
    approvals_open: int = Field(1, ge=1, le=5, description="distinct bureau approvals needed otherwise")
    sweep_seconds: float = Field(
        300.0, ge=0, description="how often the API expires, disposes and re-syncs projects (0 = never)"
    )
    max_days: int = Field(730, ge=1, description="longest project term an application may request")
    stop_servers: bool = Field(True, description="stop the notebook servers of users who lose all access")


class AdmissionSettings(BaseModel):
    """Admission control of heavy DP work (queries, previews, tables, training; see docs/attacks.md)."""

    workers: int = Field(2, ge=1, le=64, description="threads of the bounded pool that runs heavy DP work")
    per_caller: int = Field(2, ge=1, description="heavy requests one caller may have in flight (429 past it)")
    per_project: int = Field(3, ge=1, description="heavy requests one project may have in flight")
    max_in_flight: int = Field(6, ge=1, description="heavy requests admitted at once, running or queued")
    max_cost: float = Field(
        5e8,
        gt=0,
        description="estimated cost (cells × values × rows) in flight at once; a lone request always runs",
    )
    retry_after: int = Field(5, ge=1, le=3600, description="seconds a refused caller is told to wait")


class PsiSettings(BaseModel):
    """The PSI channel's protocol tuning (see docs/psi.md).

    Never the access rules: who may run which mode on which column, the client-set limits and the
    quotas come from dataset policies and project grants.
    """

    fpr: float = Field(
        1e-9,
        gt=0,
        lt=1,
        description="bound on the probability that one PSI query returns any false positive",
    )
    workers: int = Field(0, ge=0, description="worker processes for PSI EC operations; 0 = all cores")
    parallel_min_items: int = Field(
        4096, ge=1, description="PSI sets smaller than this are processed in the calling process"
    )
    part_items: int = Field(262_144, ge=1, description="most encrypted items in one uploaded request part")
    min_bucket: int = Field(
        1024, ge=1, description="smallest client-size bucket a PSI setup is built for (a power of 2)"
    )
    session_ttl_seconds: int = Field(3600, ge=60, description="how long a PSI session stays usable")
    cohort_ttl_days: int = Field(30, ge=1, description="cohort lifetime (capped by the project's end)")
    worker_timeout_seconds: float = Field(
        900.0, gt=0, description="longest a PSI worker may take on one chunk before it is killed"
    )

    @property
    def effective_workers(self) -> int:
        """The number of worker processes to use."""
        if self.workers:
            return self.workers
        affinity = getattr(os, "sched_getaffinity", None)
        return max(1, len(affinity(0)) if affinity else (os.cpu_count() or 1))


class HeSettings(BaseModel):
    """Limits of the HE channel's isolated worker pool (see docs/he.md)."""

    processes: int = Field(2, ge=1, le=64, description="HE worker processes")
    memory_bytes: int = Field(3 << 30, ge=256 << 20, description="RLIMIT_AS of each HE worker")
    task_seconds: float = Field(120.0, gt=0, description="longest one HE task (one batch) may run")
    queue_seconds: float = Field(30.0, ge=0, description="longest an HE task waits for a free worker")
    max_message_bytes: int = Field(256 << 20, ge=1 << 20, description="largest HE task or reply")
    context_cache: int = Field(4, ge=1, le=64, description="parsed contexts each HE worker keeps")
    max_records: int = Field(2_000_000, ge=1, description="most records one HE score or lookup call carries")
    max_open_calls_per_caller: int = Field(
        4,
        ge=1,
        description="multi-part HE calls one caller may hold open at once, all projects (429 past it)",
    )
    max_open_calls_per_project: int = Field(
        8, ge=1, description="multi-part HE calls one project's members may hold open at once (429 past it)"
    )


class OidcSettings(BaseModel):
    """Machine clients: OIDC client-credential JWTs from Keycloak (see docs/products.md)."""

    issuer: str | None = Field(
        None, description="realm issuer URL, e.g. https://sso.example/realms/lab; unset disables OIDC"
    )
    audience: str = Field("lab-api", description="required `aud` of access tokens")
    jwks_url: str | None = Field(None, description="JWKS URL; default from the discovery document")
    jwks_cache_seconds: float = Field(300.0, ge=0, description="how long fetched signing keys are trusted")
    jwks_min_refetch_seconds: float = Field(
        10.0, ge=0, description="least time between JWKS refetches triggered by an unknown key id"
    )
    leeway_seconds: int = Field(30, ge=0, le=300, description="clock-skew leeway for exp/nbf/iat")
    client_roles_from: str | None = Field(
        None, description="client id whose resource_access roles count (default: the audience)"
    )
    role_map: dict[str, str] = Field(
        default_factory=lambda: {"registrar": "registrar"},
        description="Keycloak role -> lab role (machine clients may hold only registrar or auditor)",
    )


class WitnessConfig(BaseModel):
    """One witness the lab asks to cosign its checkpoints (C2SP tlog-witness)."""

    url: str = Field(description="submission prefix, e.g. http://witness.example:8390")
    vkey: str = Field(description="the witness's verifier key (cosignature/v1, type 0x04)")


class LedgerSettings(BaseModel):
    """Checkpoints and witnesses (see docs/ledger.md)."""

    origin: str = Field(
        "lab.local/ledger",
        description="checkpoint origin and log key name, one per installation (lab.example.cn/ledger)",
    )
    witnesses: list[WitnessConfig] = Field(
        default_factory=list, description="witnesses asked to cosign each new checkpoint"
    )
    quorum: int = Field(1, ge=0, description="cosignatures needed for a checkpoint to count as witnessed")
    cosign_seconds: float = Field(
        5.0, gt=0, description="at least this often the lab submits its checkpoint while it grows"
    )
    witness_timeout_seconds: float = Field(5.0, gt=0, description="HTTP timeout of a witness request")


class Settings(BaseSettings):
    """All lab settings. Use :func:`get_settings`; tests override it."""

    model_config = SettingsConfigDict(
        env_prefix="LAB_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    mode: Literal["embedded", "production"] = Field(
        "embedded", description="production refuses demo secrets and test doubles"
    )
    data_dir: Path = Field(Path("var"), description="embedded data: SQLite, SeaweedFS, caches")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default is SQLite under data_dir")
    secret_key: SecretStr = Field(
        SecretStr(DEMO_SECRET), description="at-rest encryption key material (any length)"
    )
    api_prefix: str = Field(
        "/services/lab-api", description="path prefix under which the Hub proxy forwards requests"
    )
    notebook_isolation: Literal["accounts", "sandbox", "none"] | None = Field(
        None,
        description="how the embedded lab keeps notebook servers from its files: `lab up` decides (accounts "
        "as root, else a bubblewrap sandbox, else none) and tells the lab API; set, it forces that choice; "
        "`none` puts a warning on every page",
    )
    max_request_bytes: int = Field(64 * 1024 * 1024, description="largest request body accepted")
    s3: S3Settings = Field(default_factory=S3Settings)
    hub: HubSettings = Field(default_factory=HubSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    projects: ProjectsSettings = Field(default_factory=ProjectsSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    psi: PsiSettings = Field(default_factory=PsiSettings)
    he: HeSettings = Field(default_factory=HeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        legacy = _LegacyGroupEnv(settings_cls)
        return init_settings, env_settings, legacy, dotenv_settings, file_secret_settings

    @property
    def db_url(self) -> str:
        """The effective database URL."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lab.sqlite').resolve()}"

    @property
    def encryption_key(self) -> bytes:
        """A 32-byte key derived from ``secret_key`` for AES-GCM at rest."""
        raw = self.secret_key.get_secret_value().encode()
        try:
            decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
            if len(decoded) == 32:
                return decoded
        except ValueError:
            pass
        return hashlib.sha256(b"lab-at-rest\x00" + raw).digest()

    def check_production(self) -> None:
        """Refuse demo secrets when running in production mode."""
        if self.mode != "production":
            return
        demo = [
            name
            for name, value in (("secret_key", self.secret_key), ("s3.secret_key", self.s3.secret_key))
            if value.get_secret_value() == DEMO_SECRET
        ]
        if demo:
            raise RuntimeError(f"production mode refuses demo secrets: {', '.join(demo)}")
        if self.db_url.startswith("sqlite"):
            raise RuntimeError("production mode needs LAB_DATABASE_URL (PostgreSQL)")


class _LegacyGroupEnv(PydanticBaseSettingsSource):
    """The PSI and HE groups' older names, ``LAB_PSI_<FIELD>`` and ``LAB_HE_<FIELD>`` (one underscore).

    Those groups were separate settings roots before they joined :class:`Settings`; their documented
    variables keep working, below the ``LAB_PSI__<FIELD>`` form in precedence.
    """

    GROUPS: ClassVar[dict[str, type[BaseModel]]] = {"psi": PsiSettings, "he": HeSettings}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole group at once

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for group, model in self.GROUPS.items():
            prefix = f"LAB_{group.upper()}_"
            values = {
                name: os.environ[prefix + name.upper()]
                for name in model.model_fields
                if prefix + name.upper() in os.environ
            }
            if values:
                found[group] = values
        return found


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
