"""Policy validation: every shipped policy loads; bad ones are refused naming file, field and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.catalog.policy import OpenAttribute, load_policy, parse_policy
from lab.errors import InvalidPolicy

POLICIES = sorted((Path(__file__).resolve().parents[2] / "policies").glob("*.yaml"))


def _base() -> dict[str, Any]:
    return yaml.safe_load((POLICIES[0].parent / "population.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_shipped_policies_are_valid(path: Path) -> None:
    policy = load_policy(path)
    assert policy.dataset == path.stem
    if policy.personal_information or policy.trade_secret:
        assert policy.open is OpenAttribute.non_open


def _refusal(data: dict[str, Any]) -> InvalidPolicy:
    with pytest.raises(InvalidPolicy) as exc:
        parse_policy(data, "policies/test.yaml")
    return exc.value


def test_personal_information_must_be_non_open() -> None:
    data = _base()
    data["open"] = "conditional"
    err = _refusal(data)
    assert "policies/test.yaml" in err.detail and "article 20" in err.detail


def test_share_none_needs_a_legal_basis() -> None:
    data = _base()
    data["share"] = {"attribute": "none"}
    err = _refusal(data)
    assert err.extra["field"] == "share" and "legal_basis" in err.detail


def test_intersection_mode_is_refused_on_non_open_data() -> None:
    data = _base()
    data["channels"]["psi"]["columns"]["resident_id"]["modes"] = ["intersection"]
    assert "only on open datasets" in _refusal(data).detail


def test_group_by_needs_a_declared_domain() -> None:
    data = _base()
    data["channels"]["dp"]["group_by"] = ["age"]
    assert "no declared domain" in _refusal(data).detail


def test_numeric_columns_need_bounds_and_fields_are_named() -> None:
    data = _base()
    data["columns"][5].pop("bounds")
    err = _refusal(data)
    assert err.extra["field"] == "columns.5" and "bounds" in err.detail


def test_per_query_cap_cannot_exceed_project_cap() -> None:
    data = _base()
    data["channels"]["dp"]["epsilon_per_query"] = "9"
    assert "epsilon_per_query" in _refusal(data).detail


def test_unknown_fields_are_refused() -> None:
    data = _base()
    data["colour"] = "blue"
    assert _refusal(data).extra["field"] == "colour"


def test_identifier_needs_normalization_and_psi_columns_must_be_identifiers() -> None:
    data = _base()
    data["columns"][1].pop("normalization")
    assert "normalization" in _refusal(data).detail
    data = _base()
    data["channels"]["psi"]["columns"] = {"town": {"modes": ["cardinality"]}}
    assert "not an identifier" in _refusal(data).detail


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("dataset: [unclosed", encoding="utf-8")
    with pytest.raises(InvalidPolicy, match=r"broken\.yaml: not valid YAML"):
        load_policy(bad)
    with pytest.raises(InvalidPolicy, match="file not found"):
        load_policy(tmp_path / "missing.yaml")
