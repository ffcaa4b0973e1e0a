"""10k operator items × 100k identifiers, every mode, with and without invalid items, over HTTP.

Results must equal a plain-Python set intersection of the normalized lists exactly: at the
configured FPR bound (1e-9 per query) the chance of even one false positive in all these runs is
about 1e-8, so any extra match is a bug. The small, fast version of these checks is
``test_psi_modes.py``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from lab.artifacts.cohorts import get_cohort, load_cohort_keys
from lab.identifiers import NORMALIZERS
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._psi import column, grants, import_psi_sample, lab_client, operator_list

pytestmark = [pytest.mark.integration, pytest.mark.hub, pytest.mark.slow]
REGISTRY_SCALE = 1_000_000  # 100,000 enterprises (only the registry is generated at this scale)
POPULATION_SCALE = 100_000  # 100,000 residents


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # scale, not storage: one database suffices
def test_all_modes_at_10k_by_100k_equal_plain_set_intersection(
    api: Any, runtime: Any, hub: HubHandle
) -> None:
    import_psi_sample(runtime, REGISTRY_SCALE, ("enterprise_registry",))
    import_psi_sample(runtime, POPULATION_SCALE, ("population",))
    pid = active_project(
        runtime,
        grants({"enterprise_registry": ["intersection", "cardinality"], "population": ["cohort"]}),
        members=["alice"],
    )
    c = lab_client(api, hub.token_for("alice", ["operator"])).use(pid)
    uscc, _ = column(REGISTRY_SCALE, "enterprise_registry", "uscc", "enterprise_id")
    ids, keys = column(POPULATION_SCALE, "population", "resident_id", "person_id")
    assert len(set(uscc)) == 100_000 and len(set(ids)) == 100_000
    timings = {}
    for invalid in (0, 500):
        items, expected = operator_list(uscc, "uscc", n=10_000, inside=4_000, invalid=invalid, seed=invalid)
        t = time.perf_counter()
        r = c.psi.intersect(items, dataset="enterprise_registry", column="uscc", progress=False)
        timings[f"intersection/{invalid}"] = time.perf_counter() - t
        assert {NORMALIZERS["uscc"](x) for x in r.matches} == expected and r.invalid.count == invalid

        t = time.perf_counter()
        card = c.psi.intersect(
            items, dataset="enterprise_registry", column="uscc", mode="cardinality", progress=False
        )
        timings[f"cardinality/{invalid}"] = time.perf_counter() - t
        assert card.size == len(expected) and card.invalid.count == invalid

        items, expected = operator_list(
            ids, "resident_id", n=10_000, inside=3_000, invalid=invalid, seed=invalid
        )

        t = time.perf_counter()
        co = c.psi.intersect(
            items, dataset="population", column="resident_id", mode="cohort", progress=False, workers=2
        )
        timings[f"cohort/{invalid}"] = time.perf_counter() - t
        truth = {k for v, k in zip(ids, keys, strict=True) if NORMALIZERS["resident_id"](v) in expected}
        with runtime.transaction() as s:
            stored = set(load_cohort_keys(runtime.store, get_cohort(s, pid, co.cohort_id)).to_pylist())
        assert stored == truth and abs(co.noisy_size - len(truth)) <= 3 * co.error_bound_95
    print({k: round(v, 1) for k, v in timings.items()})
