"""The bureau pages in Chromium against the real embedded lab (managed lab API behind the Hub proxy).

A reviewer opens a project page, is sent through the Hub's OAuth (the Hub login page, then the
service's callback), gives the final approval of a pending application (a non-open dataset needs
two distinct reviewers: the first approved through the service) with a reduced budget, and sees the
project active; once the operator has spent part of the budget, the project page shows it in the
chart; a product registered from those results is reviewed from the product pages (lineage shown)
and gets its registration number. Screenshots go to ``test-artifacts/`` (review page, project
detail, product review page, English ledger page).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lab.budgets import Budget
from lab.identity import Principal
from lab.products.models import ProductType
from lab.products.schemas import Name, ProductSubmission
from lab.products.service import spool, submit
from lab.projects.access import Ask, authorize, commit_result, no_channel_params
from lab.projects.models import ProjectStatus
from lab.projects.schemas import ApplicationIn, ReviewIn
from lab.projects.workflow import ProjectWorkflow
from tests.e2e._stack import ARTIFACTS, LabStack

pytestmark = [pytest.mark.e2e, pytest.mark.hub, pytest.mark.slow]

ALICE = Principal.from_groups("alice", ["operator"])
BUREAU1 = Principal.from_groups("bureau1", ["bureau"])
BUREAU2 = Principal.from_groups("bureau2", ["bureau"])


def pending_project(stack: LabStack) -> str:
    """An application by alice, approved once by bureau2 (it needs a second, distinct approval)."""
    wf = ProjectWorkflow(stack.runtime)
    project = wf.apply(
        ALICE,
        ApplicationIn(
            title="慢性病随访与企业健康服务评估",
            purpose="评估区内慢性病随访服务覆盖情况，为企业健康管理产品设计提供依据。",
            scenario="面向区内企业的员工健康管理服务",
            organization="崇明数智健康科技有限公司",
            contact="alice（13800000000）",
            members=["alice", "bob"],
            datasets={
                "health_visits": {"dp": {"epsilon": "2", "epsilon_per_query": "0.5"}},
                "enterprise_registry": {"psi": {"modes": ["intersection"], "quota": 20}},
            },
            days=90,
            commitment="我方承诺：仅为上述用途使用数据，不尝试识别任何个人，项目结束后配合数据处置。",
        ),
    )
    wf.review(BUREAU2, project.id, ReviewIn(decision="approve", reason="同意，按申请授予"))
    assert wf.get(BUREAU1, project.id).status == ProjectStatus.pending
    return project.id


def spend(stack: LabStack, project_id: str, epsilon: str) -> str:
    """Charge a DP spend for alice through the one access check and the one atomic charge."""
    rt = stack.runtime
    with rt.transaction() as s:
        access = authorize(
            s,
            ALICE,
            project_id,
            "health_visits",
            "dp",
            "query",
            Ask.spend(epsilon),
            check=no_channel_params,
        )
        record = commit_result(
            s,
            rt.ledger(s),
            access,
            cost=Budget.of(epsilon, 0),
            parameters={"select": [{"agg": "count"}], "epsilon": epsilon},
            result_digest="0" * 64,
        )
        return record.id


def register_product(stack: LabStack, project_id: str, records: list[str], tmp_path: Path) -> str:
    """alice registers a report made from ``records`` (the automatic checks run on it)."""
    report = tmp_path / "chronic_visits_by_town.csv"
    report.write_text("town,visits\n城桥镇,1203\n堡镇,988\n陈家镇,1510\n", encoding="utf-8")
    with report.open("rb") as f:
        artifact = spool(f, tmp_path, 1 << 20, report.name, "text/csv")
    meta = ProductSubmission(
        project=project_id,
        name=Name(zh="各镇慢性病就诊次数报告", en="Chronic-care visits by town"),
        type=ProductType.report,
        description="基于差分隐私统计的各镇就诊次数，供企业健康服务选址参考。",
        scenario="企业员工健康服务规划",
        derived_from=records,
        dp_columns=["visits"],
    )
    return submit(stack.runtime, ALICE, meta, artifact).id


def test_reviewer_logs_in_through_the_hub_and_approves(
    lab_stack: LabStack, browser: Any, tmp_path: Path
) -> None:
    pid = pending_project(lab_stack)
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        # not logged in: the page sends the browser through /ui/login to the Hub's login page
        page.goto(f"{lab_stack.lab_api_url}/ui/projects/{pid}")
        page.wait_for_url(re.compile(r"/hub/login"))
        page.fill("#username_input", "bureau1")
        page.fill("#password_input", lab_stack.passwords["bureau1"])
        page.click("#login_submit")
        # Hub login -> OAuth authorize (no confirmation) -> the service's callback -> the project page
        page.wait_for_url(re.compile(rf"/services/lab-api/ui/projects/{pid}$"))
        assert page.locator("h1").inner_text().startswith("慢性病随访与企业健康服务评估")
        assert "待审核" in page.locator("h1 .status").inner_text()
        assert "共需 2 位不同审核员批准" in page.locator("#review-h + p").inner_text()
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["lab-session"]["httpOnly"] and cookies["lab-session"]["path"] == "/services/lab-api"
        page.fill("input[name='health_visits.dp.epsilon']", "1.5")
        page.fill("#reason", "同意；差分隐私预算缩减至 1.5。")
        page.screenshot(path=str(ARTIFACTS / "bureau-review.png"), full_page=True)

        page.get_by_role("button", name="批准", exact=True).click()
        page.wait_for_url(re.compile(r"\?done=approve$"))
        assert "进行中" in page.locator("h1 .status").inner_text()
        assert page.get_by_role("status").first.inner_text() == "审核意见（批准）已记录。"
        project = ProjectWorkflow(lab_stack.runtime).get(BUREAU1, pid)
        assert project.status == ProjectStatus.active
        assert project.grants["health_visits"]["dp"]["epsilon"] == "1.5"
        with lab_stack.admin() as admin:
            assert sorted(admin.get(f"groups/project-{pid}").json()["users"]) == ["alice", "bob"]

        records = [spend(lab_stack, pid, "0.5"), spend(lab_stack, pid, "0.25")]
        page.goto(f"{lab_stack.lab_api_url}/ui/projects/{pid}")
        bar = page.locator("svg.chart g.row[data-dataset='health_visits'] text.small")
        assert bar.text_content() == "已用 0.75 / 1.5（50%）"
        assert page.locator("#events-h").is_visible()
        page.screenshot(path=str(ARTIFACTS / "bureau-project.png"), full_page=True)

        page.goto(f"{lab_stack.lab_api_url}/ui/projects")
        assert pid not in page.locator("section[aria-labelledby='queue-h']").inner_text()
        page.screenshot(path=str(ARTIFACTS / "bureau-queue.png"), full_page=True)
        page.goto(f"{lab_stack.lab_api_url}/ui/catalog/health_visits")
        assert "非开放" in page.locator("dl.facts").first.inner_text()
        page.screenshot(path=str(ARTIFACTS / "bureau-catalog.png"), full_page=True)

        # a product made from the two results: review queue, lineage, approval with a registration number
        product = register_product(lab_stack, pid, records, tmp_path)
        page.goto(f"{lab_stack.lab_api_url}/ui/products")
        page.get_by_role("link", name="各镇慢性病就诊次数报告").first.click()
        page.wait_for_url(re.compile(rf"/ui/products/{product}$"))
        lineage = page.locator("section[aria-labelledby='lineage-h'] tbody tr")
        assert lineage.count() == 2 and records[0] in lineage.first.inner_text() + lineage.last.inner_text()
        page.fill("#p-reason", "披露检查通过，同意登记。")
        page.screenshot(path=str(ARTIFACTS / "bureau-product.png"), full_page=True)
        page.get_by_role("button", name="批准并登记").click()
        page.wait_for_url(re.compile(r"\?done=approve$"))
        facts = page.locator("section[aria-labelledby='pfacts-h']").inner_text()
        assert re.search(r"CMDL-\d{4}-\d{6}", facts)

        page.goto(f"{lab_stack.lab_api_url}/ui/ledger?lang=en")
        page.get_by_role("button", name="Verify the whole log now").click()
        page.wait_for_url(re.compile(r"done=verify"))
        assert "Verified: the log is complete" in page.locator("#verify-result").inner_text()
        page.screenshot(path=str(ARTIFACTS / "bureau-ledger-en.png"), full_page=True)
    finally:
        context.close()
