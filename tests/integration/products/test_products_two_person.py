"""A product version flagged by the automatic checks needs two different bureau reviewers (the two-person
rule of projects), both recorded in the ledger; the review page shows the flags beside the buttons."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lab.client import Client, Conflict, NotFound
from lab.runtime import Runtime
from lab.web import auth
from tests.conftest import HubHandle
from tests.integration.products.conftest import Records, sample_file

pytestmark = [pytest.mark.integration, pytest.mark.hub]
P = "/services/lab-api"


def _flagged(records: Records, alice: Client, tmp_path: Path, base: Path) -> Any:
    """A product whose artifact carries resident ID numbers of the non-open population dataset."""
    people = pd.read_parquet(base, columns=["resident_id", "town"]).head(60)
    art = tmp_path / "customers.csv"
    pd.DataFrame({"customer": [f"c{i}" for i in range(60)], "id_card": list(people["resident_id"])}).to_csv(
        art, index=False
    )
    prod = alice.products.register("客户名单", "dataset", [records.dp], artifact=art, project=records.project)
    assert prod.latest["status"] == "flagged"
    return prod


def _transitions(runtime: Runtime, product: str) -> list[tuple[str, str]]:
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        entries = ledger.entries(0, ledger.head().size)
    return [
        (e.entry["body"]["action"], e.entry["actor"])
        for e in entries
        if e.kind == "product.transition" and e.entry["body"].get("product") == product
    ]


def test_a_flagged_version_needs_two_different_reviewers(
    runtime: Runtime,
    records: Records,
    as_user: Callable[..., Client],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    alice = as_user("alice", ["operator"])
    prod = _flagged(records, alice, tmp_path, sample_file(tmp_path_factory, "population"))
    first, second = as_user("bureau1", ["bureau"]), as_user("bureau2", ["bureau"])

    out = first.products.review(prod.id, "approve", reason="customer ids are pseudonymous in use")
    assert out.status == "pending" and out.registration_number is None
    assert out.latest["status"] == "flagged" and out.latest["approvals"] == ["bureau1"]
    assert out.latest["approvals_required"] == 2
    with pytest.raises(NotFound):
        alice.products.certificate(prod.id)
    with pytest.raises(Conflict, match="different second reviewer"):
        first.products.review(prod.id, "approve", reason="again")  # the same person twice is one
    assert _transitions(runtime, prod.id) == [("submitted", "alice"), ("endorsed", "bureau1")]

    done = second.products.review(prod.id, "approve", reason="agreed after checking the scenario")
    assert done.status == "registered" and re.fullmatch(r"CMDL-\d{4}-\d{6}", done.registration_number)
    cert = alice.products.certificate(prod.id)
    assert cert["approver"] == "bureau2"
    assert [e["actor"] for e in cert["statement"]["endorsed_by"]] == ["bureau1"]
    assert alice.products.verify(cert).ok
    assert _transitions(runtime, prod.id) == [
        ("submitted", "alice"),
        ("endorsed", "bureau1"),
        ("approved", "bureau2"),
    ]


def test_a_version_that_passed_its_checks_needs_one_reviewer(
    records: Records, as_user: Callable[..., Client]
) -> None:
    alice = as_user("alice", ["operator"])
    prod = alice.products.register(
        "报告", "report", [records.dp], artifact=records.csv, project=records.project
    )
    assert prod.latest["status"] == "in_review" and prod.latest["approvals_required"] == 1
    assert as_user("bureau1", ["bureau"]).products.review(prod.id, "approve").status == "registered"


def test_a_rejection_after_the_first_approval_stops_it(
    records: Records,
    as_user: Callable[..., Client],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    alice = as_user("alice", ["operator"])
    prod = _flagged(records, alice, tmp_path, sample_file(tmp_path_factory, "population"))
    as_user("bureau1", ["bureau"]).products.review(prod.id, "approve", reason="looks fine")
    out = as_user("bureau2", ["bureau"]).products.review(prod.id, "reject", reason="resident ids")
    assert out.status == "rejected" and out.registration_number is None


def test_the_review_page_shows_the_flags_beside_the_buttons(
    api: TestClient,
    runtime: Runtime,
    hub: HubHandle,
    records: Records,
    as_user: Callable[..., Client],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    alice = as_user("alice", ["operator"])
    prod = _flagged(records, alice, tmp_path, sample_file(tmp_path_factory, "population"))
    detail = next(c["detail"] for c in prod.latest["checks"] if c["name"] == "identifiers")

    def page(user: str) -> str:
        session = auth.WebSession.new(hub.token_for(user, ["bureau"]), user)
        api.cookies.set(auth.SESSION_COOKIE, session.cookie(runtime.settings))
        r = api.get(f"{P}/ui/products/{prod.id}", params={"lang": "en"})
        assert r.status_code == 200
        return str(r.text)

    form = page("bureau1").split('class="review"', 1)[1].split("</form>", 1)[0]
    assert 'value="approve"' in form and detail.replace("'", "&#39;") in form
    assert "two-person rule" in page("bureau1")
    as_user("bureau1", ["bureau"]).products.review(prod.id, "approve", reason="ok")
    again = page("bureau1")
    assert "needs a second, different reviewer" in again and 'value="approve"' not in again
    second = page("bureau2")
    assert 'value="approve"' in second and "approved so far by 1: bureau1" in second
