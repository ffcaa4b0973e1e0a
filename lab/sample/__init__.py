"""Deterministic synthetic sample catalog for Chongming District (six datasets, policy-conformant).

``generate(scale, out)`` writes ``population``, ``enterprise_registry``, ``tax_credit``,
``social_insurance``, ``health_visits`` and ``environment_monitoring`` as Parquet or CSV, plus
their policies; see :mod:`lab.sample.generate` for the invariants. No real person or
enterprise is represented: identifiers are well-formed (valid check characters) but synthetic.
"""

from lab.sample.generate import DATASETS, DEFAULT_SEED, default_policy_dir, enterprise_count, generate

__all__ = ["DATASETS", "DEFAULT_SEED", "default_policy_dir", "enterprise_count", "generate"]
