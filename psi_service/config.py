"""PSI channel settings, read from ``LAB_PSI_*`` environment variables.

They tune the protocol, never the access rules: who may run which mode on which column, the
client-set limits and the quotas come from dataset policies and project grants.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PsiSettings(BaseSettings):
    """Settings of the PSI channel (``LAB_PSI_FPR=1e-9`` …)."""

    model_config = SettingsConfigDict(env_prefix="LAB_PSI_", extra="ignore")

    fpr: float = Field(
        1e-9,
        gt=0,
        lt=1,
        description="bound on the probability that one query returns any false positive",
    )
    workers: int = Field(0, ge=0, description="worker processes for EC operations; 0 = all cores")
    parallel_min_items: int = Field(
        4096, ge=1, description="sets smaller than this are processed in the calling process"
    )
    part_items: int = Field(262_144, ge=1, description="most encrypted items in one uploaded request part")
    min_bucket: int = Field(
        1024, ge=1, description="smallest client-size bucket a setup is built for (a power of 2)"
    )
    session_ttl_seconds: int = Field(3600, ge=60, description="how long a PSI session stays usable")
    cohort_ttl_days: int = Field(30, ge=1, description="cohort lifetime (capped by the project's end)")
    worker_timeout_seconds: float = Field(
        900.0, gt=0, description="longest a worker may take on one chunk before it is killed"
    )

    @property
    def effective_workers(self) -> int:
        """The number of worker processes to use."""
        if self.workers:
            return self.workers
        affinity = getattr(os, "sched_getaffinity", None)
        return max(1, len(affinity(0)) if affinity else (os.cpu_count() or 1))


@lru_cache
def get_psi_settings() -> PsiSettings:
    """Process-wide PSI settings (call ``get_psi_settings.cache_clear()`` after changing env)."""
    return PsiSettings()
