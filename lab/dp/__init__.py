"""The differential privacy channel: structured aggregate queries, DP statistics tables and DP models.

Modules:

* :mod:`lab.dp.spec` — the versioned, size-bounded request specs (pydantic);
* :mod:`lab.dp.plan` — a spec checked against the dataset's policy, with its budget split;
* :mod:`lab.dp.engine` — contribution bounding and exact clamped aggregates in DuckDB;
* :mod:`lab.mechanisms` / :mod:`lab.dp.release` — diffprivlib noise and 95% error bounds;
* :mod:`lab.dp.training` — diffprivlib models with policy bounds;
* :mod:`lab.dp.service` — authorize → compute → charge, in the caller's transaction.

See ``docs/dp.md`` for the spec, the mechanisms, the repeated-query policy and the artifact shapes.
"""
