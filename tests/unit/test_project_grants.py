"""Grants against dataset policies: normalization, caps, reductions, intersections (no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.catalog.policy import Policy, load_policy
from lab.projects import grants as G
from lab.projects.errors import InvalidProject

ROOT = Path(__file__).resolve().parents[2]
POLICIES: dict[str, Policy] = {
    name: load_policy(ROOT / "policies" / f"{name}.yaml")
    for name in ("population", "enterprise_registry", "environment_monitoring", "health_visits")
}


def norm(datasets: dict[str, Any], strict: bool = True) -> G.Grants:
    return G.normalize(datasets, POLICIES, strict=strict)


def test_defaults_fill_in_policy_limits_and_exact_strings() -> None:
    g = norm(
        {
            "population": {"dp": {"epsilon": 0.1 + 0.2}, "psi": {"modes": ["cohort"]}},
            "enterprise_registry": {"psi": {"modes": ["intersection", "cardinality"]}},
        }
    )
    assert g["population"]["dp"] == {
        "epsilon": "0.30000000000000004",  # a float's shortest repr, exactly; send strings for decimals
        "delta": "0",
        "epsilon_per_query": "0.30000000000000004",
        "delta_per_query": "0",
    }
    assert norm({"population": {"dp": {"epsilon": "0.3"}}})["population"]["dp"]["epsilon"] == "0.3"
    assert g["population"]["psi"] == {"modes": ["cohort"], "columns": ["phone", "resident_id"], "quota": 20}
    assert g["enterprise_registry"]["psi"]["quota"] == 100
    he = norm({"population": {"he": {"tables": ["income_by_town"]}}})["population"]["he"]
    assert he == {"models": [], "tables": ["income_by_town"], "record_quota": 200000}


@pytest.mark.parametrize(
    ("request_", "fragment", "field"),
    [
        (
            {"health_visits": {"dp": {"epsilon": "3.5"}}},
            "exceeds the policy cap epsilon_per_project=3",
            "epsilon",
        ),
        ({"health_visits": {"dp": {"epsilon": "1", "delta": "0.001"}}}, "delta_per_project=0.00001", "delta"),
        (
            {"population": {"dp": {"epsilon": "0.5", "epsilon_per_query": "0.8"}}},
            "own total 0.5",
            "epsilon_per_query",
        ),
        ({"population": {"dp": {"epsilon": 0}}}, "must be positive", "epsilon"),
        ({"population": {"dp": {"epsilon": True}}}, "expected a number", "epsilon"),
        ({"population": {"dp": {}}}, "required", "epsilon"),
        ({"population": {"dp": {"epsilon": 1, "budget": 2}}}, "unknown field 'budget'", "budget"),
        ({"population": {"psi": {"modes": []}}}, "at least one mode", "modes"),
        (
            {"population": {"psi": {"modes": ["cohort"], "columns": ["town"]}}},
            "'town' is not open to PSI",
            "columns",
        ),
        ({"health_visits": {"psi": {"modes": ["cardinality"]}}}, "closed on non-open data", "modes"),
        ({"population": {"psi": {"modes": ["cohort"], "quota": 0}}}, "at least 1", "quota"),
        ({"population": {"he": {"record_quota": 10**9}}}, "record_quota=200000", "record_quota"),
    ],
)
def test_policy_caps_are_enforced_with_named_fields(
    request_: dict[str, Any], fragment: str, field: str
) -> None:
    with pytest.raises(InvalidProject) as err:
        norm(request_)
    assert fragment in err.value.detail
    assert err.value.extra["field"] == field and err.value.extra["dataset"] == next(iter(request_))


def test_unopened_channels_are_refused() -> None:
    with pytest.raises(InvalidProject, match="does not open the he channel"):
        norm({"health_visits": {"he": {}}})
    with pytest.raises(InvalidProject, match="unknown channel 'sql'"):
        norm({"health_visits": {"sql": {}}})


def test_reduce_only_shrinks_and_lowers_per_query_caps() -> None:
    requested = norm(
        {"population": {"dp": {"epsilon": "2", "delta": "0.00001"}, "psi": {"modes": ["cohort"]}}}
    )
    reduced = G.normalize(
        G.reduce(requested, {"population": {"dp": {"epsilon": "0.5"}, "psi": None}}), POLICIES
    )
    assert reduced == {
        "population": {
            "dp": {
                "epsilon": "0.5",
                "delta": "0.00001",
                "epsilon_per_query": "0.5",
                "delta_per_query": "0.000001",
            }
        }
    }
    G.check_within(reduced, requested)
    larger = G.normalize(G.reduce(requested, {"population": {"dp": {"epsilon": "3"}}}), POLICIES)
    with pytest.raises(InvalidProject, match="larger than the requested"):
        G.check_within(larger, requested)
    with pytest.raises(InvalidProject, match="not requested"):
        G.reduce(requested, {"enterprise_registry": None})
    assert G.reduce(requested, None) == requested


def test_meet_takes_the_smaller_of_every_limit() -> None:
    a = norm(
        {
            "enterprise_registry": {
                "psi": {"modes": ["intersection", "cohort"], "quota": 50},
                "dp": {"epsilon": 2},
            }
        }
    )
    b = norm({"enterprise_registry": {"psi": {"modes": ["cohort", "cardinality"], "quota": 80}}})
    assert G.meet(a, b) == {
        "enterprise_registry": {"psi": {"modes": ["cohort"], "columns": ["uscc"], "quota": 50}}
    }
    c = norm({"enterprise_registry": {"psi": {"modes": ["cardinality"]}}})
    assert G.meet(a, c) == {}
    assert G.budgets(a)["enterprise_registry"].as_strings() == {"epsilon": "2", "delta": "0"}
