"""Cohort mode end to end: PSI cohort → DP count and mean on the cohort (lab.dp) → true statistics.

The operator's list matches a known set of residents; the lab stores that cohort server-side; DP
queries restricted to the cohort must agree with the cohort's true count and mean income within
their stated error bounds. Checks use three times the stated 95% bound (Laplace/geometric tails:
a correct mechanism exceeds it with probability about 0.05³ ≈ 1e-4) — a query that ignored the
cohort (the whole population: 5,000 residents) or a wrong cohort would be off by far more.
"""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq
import pytest

from lab.identifiers import NORMALIZERS
from tests.conftest import HubHandle
from tests.factories import active_project, sample_dir
from tests.integration._psi import SAMPLE_BASE, grants, import_psi_sample, lab_client, operator_list

pytestmark = [pytest.mark.integration, pytest.mark.hub]
SCALE = 5000


def test_psi_cohort_feeds_dp_queries_consistent_with_true_statistics(
    api: Any, runtime: Any, hub: HubHandle
) -> None:
    import_psi_sample(runtime, SCALE, ("population",))
    pid = active_project(runtime, grants({"population": ["cohort"]}), members=["alice"])
    c = lab_client(api, hub.token_for("alice", ["operator"])).use(pid)
    table = pq.read_table(sample_dir(SCALE, SAMPLE_BASE) / "population.parquet").to_pandas()
    items, expected = operator_list(
        table["resident_id"].tolist(), "resident_id", n=1500, inside=900, invalid=20
    )

    co = c.psi.intersect(items, dataset="population", column="resident_id", mode="cohort")

    members = table[table["resident_id"].map(NORMALIZERS["resident_id"]).isin(expected)]
    true_count, true_mean = len(members), float(members["monthly_income"].mean())
    assert true_count == len(expected) == 900
    assert abs(co.noisy_size - true_count) <= 3 * co.error_bound_95

    r = c.dp.query(
        "population",
        select=[{"agg": "count"}, {"agg": "mean", "column": "monthly_income"}],
        cohort=co.cohort_id,
        epsilon=1.0,
    )
    rows = r.frame.set_index("name")
    count, mean = rows.loc["count"], rows.loc["mean_monthly_income"]
    assert abs(count["value"] - true_count) <= 3 * count["error_95"]
    assert abs(mean["value"] - true_mean) <= 3 * mean["error_95"]
    assert abs(count["value"] - len(table)) > 10 * count["error_95"]  # the cohort restricted the query
    assert r.record_id != co.record_id
