"""Cardinality is intersection-equivalent (issue 12 item 2): a modified client turns a count into
membership, so neither mode is allowed on non-open data — not in a policy, not in a grant, and not
at run time for a policy stored before the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.catalog.policy import load_policy, parse_policy
from lab.errors import InvalidPolicy
from lab.projects.errors import InvalidProject
from lab.projects.grants import normalize

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _population() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((POLICIES / "population.yaml").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("mode", ["cardinality", "intersection"])
def test_a_non_open_policy_cannot_open_membership_modes(mode: str) -> None:
    data = _population()
    data["channels"]["psi"]["columns"]["resident_id"] = {"modes": [mode, "cohort"]}
    with pytest.raises(InvalidPolicy) as err:
        parse_policy(data)
    assert "reveals membership" in str(err.value.detail)


def test_open_policies_keep_cardinality_and_shipped_non_open_ones_offer_cohort_only() -> None:
    for path in sorted(POLICIES.glob("*.yaml")):
        policy = load_policy(path)
        if policy.channels.psi is None:
            continue
        modes = {m.value for spec in policy.channels.psi.columns.values() for m in spec.modes}
        if not policy.is_open:
            assert modes <= {"cohort"}, path.name
    data = _population()
    data["open"], data["personal_information"] = "unconditional", False
    data.pop("account", None)  # open datasets have no privacy-loss account
    data["channels"]["psi"]["columns"]["resident_id"] = {"modes": ["cardinality"]}
    assert parse_policy(data).is_open


@pytest.mark.parametrize("mode", ["cardinality", "intersection"])
def test_a_grant_of_membership_modes_on_non_open_data_is_refused(mode: str) -> None:
    policies = {p.stem: load_policy(p) for p in POLICIES.glob("*.yaml")}
    with pytest.raises(InvalidProject) as err:
        normalize({"social_insurance": {"psi": {"modes": [mode]}}}, policies)
    assert "closed on non-open data" in err.value.detail
