"""Refusals and flags: foreign, unknown and expired lineage; raw identifiers; small counts; review rules;
versions; sequential registration numbers under concurrency."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import update

from lab.client import BadRequest, Client, Forbidden, NotFound, PayloadTooLarge, ProjectInactive
from lab.identity import Principal, Role
from lab.products import service
from lab.products.schemas import ProductSubmission
from lab.projects.models import ProjectRow
from lab.runtime import Runtime
from tests.factories import active_project
from tests.integration.products.conftest import GRANTS, Records, dp_record, psi_record, sample_file

pytestmark = [pytest.mark.integration, pytest.mark.hub]


def _csv(path: Path, **columns: list[object]) -> Path:
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def test_lineage_naming_another_projects_record_is_refused(
    runtime: Runtime, records: Records, as_user: Callable[..., Client]
) -> None:
    other = active_project(runtime, GRANTS, members=["bob"])
    foreign = dp_record(runtime, other, user="bob")
    alice = as_user("alice", ["operator"])
    with pytest.raises(BadRequest) as err:
        alice.products.register(
            "报告", "report", [records.dp, foreign], artifact=records.csv, project=records.project
        )
    assert err.value.code == "invalid-lineage" and err.value.problem["records"] == [foreign]
    assert "belong to another project" in err.value.detail
    assert alice.products.list().empty  # nothing was registered


def test_lineage_naming_an_unknown_record_is_refused(
    records: Records, as_user: Callable[..., Client]
) -> None:
    alice = as_user("alice", ["operator"])
    ghost = "dr_" + "0" * 32
    with pytest.raises(BadRequest) as err:
        alice.products.register(
            "报告", "report", [records.dp, ghost], artifact=records.csv, project=records.project
        )
    assert err.value.code == "invalid-lineage" and "unknown derived record" in err.value.detail
    assert err.value.problem["problem"] == "unknown-record"


def test_an_expired_project_cannot_register(
    runtime: Runtime, records: Records, as_user: Callable[..., Client]
) -> None:
    with runtime.transaction() as s:
        s.execute(
            update(ProjectRow)
            .where(ProjectRow.id == records.project)
            .values(ends_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    alice = as_user("alice", ["operator"])
    with pytest.raises(ProjectInactive, match="expired"):
        alice.products.register("报告", "report", [records.dp], artifact=records.csv, project=records.project)


def test_non_members_cannot_register_or_read(records: Records, as_user: Callable[..., Client]) -> None:
    bob = as_user("bob", ["operator"])
    with pytest.raises(NotFound, match="no project"):
        bob.products.register("报告", "report", [records.dp], artifact=records.csv, project=records.project)
    alice = as_user("alice", ["operator"])
    prod = alice.products.register(
        "报告", "report", [records.dp], artifact=records.csv, project=records.project
    )
    with pytest.raises(Forbidden):
        bob.products.get(prod.id)
    assert bob.products.list().empty
    assert bob.records.list().empty
    with pytest.raises(Exception, match="no derived record"):
        bob.records.get(records.dp)


def test_an_artifact_with_raw_resident_ids_is_flagged(
    records: Records, as_user: Callable[..., Client], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    people = pd.read_parquet(sample_file(tmp_path_factory, "population"), columns=["resident_id", "town"])
    leaked = people.head(60)
    art = _csv(
        tmp_path / "customers.csv",
        customer=[f"c{i}" for i in range(60)],
        id_card=[s.lower() for s in leaked["resident_id"]],  # a different spelling still matches
        town=list(leaked["town"]),
    )
    alice = as_user("alice", ["operator"])
    prod = alice.products.register("客户名单", "dataset", [records.dp], artifact=art, project=records.project)
    latest = prod.latest
    assert latest["status"] == "flagged" and not latest["checks_passed"]
    ids = next(c for c in latest["checks"] if c["name"] == "identifiers")
    assert (
        ids["status"] == "fail" and "'id_card'" in ids["detail"] and "population.resident_id" in ids["detail"]
    )
    hit = next(c for c in ids["data"]["columns"] if c["dataset"] == "population" and c["column"] == "id_card")
    assert hit["match_rate"] == 1.0 and hit["sampled"] == 60
    assert all(c["column"] == "id_card" for c in ids["data"]["columns"] if c["match_rate"] > 0.01)

    bureau = as_user("bureau1", ["bureau"])
    queue = bureau.products.queue()
    assert list(queue["failed_checks"]) == [["identifiers"]]
    with pytest.raises(BadRequest, match="needs a reason"):
        bureau.products.review(prod.id, "approve")
    with pytest.raises(BadRequest, match="needs a reason"):
        bureau.products.review(prod.id, "reject")
    out = bureau.products.review(prod.id, "reject", reason="contains resident ID numbers")
    assert out.status == "rejected" and out.latest["review_reason"] == "contains resident ID numbers"


def test_identifiers_in_parquet_and_xlsx_are_flagged_too(
    records: Records, as_user: Callable[..., Client], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import openpyxl

    phones = pd.read_parquet(sample_file(tmp_path_factory, "population"), columns=["phone"])["phone"].head(30)
    pq_path = tmp_path / "phones.parquet"
    pd.DataFrame({"mobile": [int(p) for p in phones], "score": range(30)}).to_parquet(pq_path)
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "名单"
    ws.append(["号码", "score"])
    for i, p in enumerate(phones):
        ws.append([f"+86 {p[:3]}-{p[3:7]}-{p[7:]}", i])
    xlsx = tmp_path / "phones.xlsx"
    book.save(xlsx)
    alice = as_user("alice", ["operator"])
    for art, label in ((pq_path, "mobile"), (xlsx, "名单!号码")):
        prod = alice.products.register("名单", "dataset", [records.dp], artifact=art, project=records.project)
        ids = next(c for c in prod.latest["checks"] if c["name"] == "identifiers")
        assert ids["status"] == "fail", ids
        assert any(c["column"] == label and c["match_rate"] == 1.0 for c in ids["data"]["columns"])


def test_small_counts_are_flagged_unless_they_come_from_dp(
    runtime: Runtime, records: Records, as_user: Callable[..., Client], tmp_path: Path
) -> None:
    alice = as_user("alice", ["operator"])
    small = _csv(tmp_path / "counts.csv", town=["城桥镇", "堡镇"], count=[3, 250])
    # PSI on population (non-open, min_cell_count 10; cohort is its only mode): a count of 3 is flagged
    card = psi_record(runtime, records.project, dataset="population", mode="cohort", column="resident_id")
    prod = alice.products.register("匹配人数", "report", [card], artifact=small, project=records.project)
    chk = next(c for c in prod.latest["checks"] if c["name"] == "small_counts")
    assert chk["status"] == "fail" and chk["data"]["threshold"] == 10
    assert chk["data"]["cells"] == [{"column": "count", "cells": 1, "rows": [1]}]
    assert "population (psi)" in chk["detail"]
    # the same table from a DP release only: noisy counts carry no threshold
    prod = alice.products.register(
        "就诊人数", "report", [records.dp], artifact=small, project=records.project
    )
    assert next(c for c in prod.latest["checks"] if c["name"] == "small_counts")["status"] == "pass"
    # mixed lineage: the submitter declares which columns are DP releases
    prod = alice.products.register(
        "混合", "report", [records.dp, card], artifact=small, project=records.project, dp_columns=["count"]
    )
    assert prod.latest["checks_passed"], prod.latest["checks"]


def test_versions_keep_history_and_the_number_is_stable(
    records: Records, as_user: Callable[..., Client], tmp_path: Path
) -> None:
    alice, bureau = as_user("alice", ["operator"]), as_user("bureau1", ["bureau"])
    prod = alice.products.register(
        "报告", "report", [records.dp], artifact=records.csv, project=records.project
    )
    v2 = alice.products.new_version(
        prod.id, "报告 v2", "report", [records.dp, records.psi], artifact=records.csv
    )
    assert v2.current_version == 2
    assert [v["status"] for v in bureau.products.get(prod.id)["versions"]] == ["superseded", "in_review"]
    number = bureau.products.review(prod.id, "approve").registration_number
    art3 = _csv(tmp_path / "v3.csv", town=["城桥镇"], value=[1.5])
    alice.products.new_version(prod.id, "报告 v3", "report", [records.psi], artifact=art3)
    v3 = bureau.products.review(prod.id, "approve", version=3)
    assert v3.registration_number == number and v3.approved_version == 3
    detail = bureau.products.get(prod.id)
    assert [v["status"] for v in detail["versions"]] == ["superseded", "approved", "approved"]
    assert [e["action"] for e in detail["events"]] == [
        "submitted",
        "superseded",
        "submitted",
        "approved",
        "submitted",
        "approved",
    ]
    assert alice.products.certificate(prod.id, version=2)["statement"]["version"] == 2
    assert alice.products.certificate(prod.id)["statement"]["version"] == 3


def test_api_products_are_registered_with_an_endpoint_description(
    records: Records, as_user: Callable[..., Client]
) -> None:
    alice, bureau = as_user("alice", ["operator"]), as_user("bureau1", ["bureau"])
    prod = alice.products.register(
        {"zh": "企业匹配服务", "en": "Enterprise match service"},
        "api",
        [records.psi],
        project=records.project,
        endpoint={
            "url": "https://svc.example.org/match",
            "method": "POST",
            "description": "USCC in, yes/no out",
        },
    )
    assert prod.latest["artifact"]["kind"] == "endpoint" and prod.latest["checks_passed"]
    bureau.products.review(prod.id, "approve")
    cert = alice.products.certificate(prod.id)
    assert cert["statement"]["artifact"]["endpoint"]["url"] == "https://svc.example.org/match"
    assert alice.products.verify(cert).ok
    with pytest.raises(BadRequest, match="endpoint"):
        alice.products.register("x", "api", [records.psi], project=records.project)


def test_registration_numbers_are_sequential_and_unique_under_concurrency(
    runtime: Runtime, records: Records
) -> None:
    alice = Principal("alice", frozenset({Role.operator}))
    bureaus = [Principal(f"bureau{i}", frozenset({Role.bureau})) for i in range(6)]
    meta = ProductSubmission.model_validate(
        {
            "project": records.project,
            "name": "并发",
            "type": "api",
            "derived_from": [records.psi],
            "endpoint": {"url": "https://x.example/api"},
        }
    )
    ids = [service.submit(runtime, alice, meta).id for _ in range(6)]
    numbers: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(ids))

    def approve(pid: str, who: Principal) -> None:
        try:
            barrier.wait()
            with runtime.transaction() as s:
                out = service.review(s, runtime.ledger(s), who, pid, "approve")
            numbers.append(str(out.registration_number))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=approve, args=(p, b)) for p, b in zip(ids, bureaus, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    year = re.match(r"CMDL-(\d{4})-", numbers[0]).group(1)  # type: ignore[union-attr]
    assert sorted(numbers) == [f"CMDL-{year}-{i:06d}" for i in range(1, 7)]
    with runtime.transaction() as s:
        assert runtime.ledger(s).verify().ok


def test_oversized_artifacts_are_refused_while_streaming(
    runtime: Runtime, records: Records, as_user: Callable[..., Client], tmp_path: Path
) -> None:
    runtime.settings.max_request_bytes = 2_000  # the spool enforces it, whatever the proxy let through
    big = _csv(tmp_path / "big.csv", town=["城桥镇"] * 400, value=list(range(400)))
    alice = as_user("alice", ["operator"])
    with pytest.raises(PayloadTooLarge, match="2000 bytes"):
        alice.products.register("大", "dataset", [records.dp], artifact=big, project=records.project)
    assert alice.products.list().empty


def test_records_api_filters_and_visibility(
    runtime: Runtime, records: Records, as_user: Callable[..., Client]
) -> None:
    alice, bureau = as_user("alice", ["operator"]), as_user("bureau1", ["bureau"])
    extra = dp_record(runtime, records.project, epsilon="0.1")
    frame = alice.records.list(records.project, channel="dp")
    assert list(frame["id"]) == [extra, records.dp]  # newest first
    assert set(frame.columns) >= {"epsilon", "result_digest", "ledger_index", "datasets", "caller"}
    cut = alice.records.get(extra)["created_at"]
    assert set(bureau.records.list(until=cut)["id"]) == {records.dp, records.psi}
    assert list(bureau.records.list(since=cut)["id"]) == [extra]
    assert len(bureau.records.list(caller="alice")) == 3 and bureau.records.list(caller="bob").empty
    assert bureau.records.get(records.psi)["channel"] == "psi"
    with pytest.raises(Forbidden):
        alice.records.list("p-someone-else")
