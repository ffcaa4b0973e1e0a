"""Pure parts of products and machine identity: count checks, table detection, certificate shape,
JWT shape and role mapping (no I/O)."""

from __future__ import annotations

import pandas as pd
import pytest

from lab.identity import Role
from lab.identity.oidc import OidcVerifier, looks_like_jwt
from lab.products import checks
from lab.products.errors import InvalidArtifact
from lab.settings import OidcSettings
from lab.shared.certificates import verify_certificate


def _tables(**cols: list[object]) -> list[tuple[str, pd.DataFrame]]:
    return [("", pd.DataFrame({k: [str(v) for v in vs] for k, vs in cols.items()}))]


def test_small_counts_flags_cells_between_one_and_the_threshold() -> None:
    t = _tables(town=["a", "b", "c", "d"], n=[0, 1, 9, 10], income=[1.5, 2, 3, 4], year=[2020, 1, 2, 3])
    out = checks.small_counts(t, 10, ["population (psi)"], has_dp=False)
    assert out["status"] == "fail" and out["data"]["cells"] == [{"column": "n", "cells": 2, "rows": [2, 3]}]
    assert out["data"]["checked"] == ["n"]  # fractions are no counts, and "year" is a dimension
    # whole numbers are counts whatever the column is called (issue 17: total, headcount, ...)
    t = _tables(town=["a", "b"], total=[1, 40], members_matched=[2, 50])
    out = checks.small_counts(t, 10, ["population (psi)"], has_dp=False)
    assert [c["column"] for c in out["data"]["cells"]] == ["total", "members_matched"]


def test_small_counts_declared_and_dp_columns() -> None:
    t = _tables(value=[3, 50], people=[4, 40])
    out = checks.small_counts(t, 10, ["x"], has_dp=True, count_columns=["value"], dp_columns=["people"])
    assert [c["column"] for c in out["data"]["cells"]] == ["value"] and out["data"]["exempt"] == ["people"]
    out = checks.small_counts(t, 10, ["x"], has_dp=False, dp_columns=["people"])  # no DP record: no exemption
    assert {c["column"] for c in out["data"]["cells"]} == {"people", "value"}  # whole numbers are counts


def test_no_threshold_passes() -> None:
    assert checks.small_counts(_tables(count=[1]), 0, [], has_dp=True)["status"] == "pass"


@pytest.mark.parametrize(
    ("name", "media", "kind"),
    [
        ("out.CSV", None, "csv"),
        ("x.parquet", None, "parquet"),
        ("book.xlsx", None, "xlsx"),
        ("blob", "text/csv; charset=utf-8", "csv"),
        ("report.pdf", "application/pdf", None),
    ],
)
def test_tabular_kind(name: str, media: str | None, kind: str | None) -> None:
    assert checks.tabular_kind(name, media) == kind


def test_unreadable_tables_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(InvalidArtifact, match="cannot be read"):
        checks.load_tables(bad, "parquet")


def test_declared_digest_mismatch_refuses() -> None:
    with pytest.raises(InvalidArtifact, match="altered or truncated"):
        checks.artifact_digest("a" * 64, "b" * 64, 3)
    assert checks.artifact_digest(None, "b" * 64, 3)["status"] == "pass"


def test_malformed_certificates_fail_cleanly() -> None:
    assert verify_certificate(
        {"format": "lab-product-certificate/v1"}, trusted_keys={"k": "v"}
    ).reason.startswith("malformed")  # type: ignore[union-attr]
    assert not verify_certificate({}).ok


def test_jwt_shape() -> None:
    assert looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
    assert not looks_like_jwt("0123456789abcdef0123456789abcdef")
    assert not looks_like_jwt("a.b.c.d") and not looks_like_jwt("a b.c.d")


def test_roles_map_only_to_machine_roles() -> None:
    v = OidcVerifier(
        OidcSettings(
            issuer="https://sso.example/realms/lab", role_map={"registrar": "registrar", "admin": "bureau"}
        )
    )  # type: ignore[call-arg]
    try:
        p = v.principal(
            {
                "azp": "registry",
                "realm_access": {"roles": ["admin", "offline_access"]},
                "resource_access": {"lab-api": {"roles": ["registrar"]}, "other": {"roles": ["bureau"]}},
            }
        )
        assert p.name == "oidc:registry" and p.kind == "machine" and p.roles == frozenset({Role.registrar})
        assert v.principal({"client_id": "x", "realm_access": {"roles": ["admin"]}}).roles == frozenset()
    finally:
        v.close()
