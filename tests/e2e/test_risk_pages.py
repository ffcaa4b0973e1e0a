"""The bureau's risk and anomalies pages in Chromium against the real embedded lab, zh-CN and English.

Two operators' projects (different organizations) spend on ``health_visits`` through the one
charge; a reviewer logs in through the Hub, finds 隐私风险 / Privacy risk and 异常监测 / Anomalies
in the navigation, and sees the dataset's account, the spend chart drawn with one step per release,
the spending per project and per organization, the releases, and the allowance alert. Screenshots
go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update

from lab.budgets import Budget
from lab.budgets.accounts import state
from lab.budgets.models import DatasetChargeRow
from lab.catalog.service import CatalogReader
from lab.identity import Principal
from lab.projects.access import Ask, authorize, commit_result, no_channel_params
from lab.projects.models import ProjectRow
from lab.web.render import fmt_decimal
from tests.e2e._stack import ARTIFACTS, LabStack

pytestmark = [pytest.mark.e2e, pytest.mark.hub, pytest.mark.slow]

DATASET = "health_visits"


def spend(stack: LabStack, user: str, project_id: str, epsilon: str) -> None:
    rt = stack.runtime
    with rt.transaction() as s:
        access = authorize(
            s,
            Principal.from_groups(user, ["operator"]),
            project_id,
            DATASET,
            "dp",
            "query",
            Ask.spend(epsilon),
            check=no_channel_params,
        )
        commit_result(
            s,
            rt.ledger(s),
            access,
            cost=Budget.of(epsilon),
            parameters={"epsilon": epsilon},
            result_digest="1" * 64,
        )


def operators_spend(stack: LabStack) -> tuple[str, str]:
    grant = {DATASET: {"dp": {"epsilon": "2", "epsilon_per_query": "1"}}}
    a, b = stack.project(grant, ["alice"]), stack.project(grant, ["bob"])
    with stack.runtime.transaction() as s:
        s.execute(
            update(ProjectRow).where(ProjectRow.id == a).values(organization="崇明数智健康科技有限公司")
        )
        s.execute(update(ProjectRow).where(ProjectRow.id == b).values(organization="Island Analytics Ltd."))
    # health_visits' account is zCDP (ρ = ε²/2 per pure release; the year's ε = 5 is Σρ ≈ 0.6):
    # Σρ = 0.19 reads as ε ≈ 2.6 of the year's 5, past the 50 % alert
    for eps in ("0.4", "0.4"):
        spend(stack, "alice", a, eps)
    spend(stack, "bob", b, "0.25")
    return a, b


def login(page: Any, stack: LabStack, target: str) -> None:
    page.goto(f"{stack.lab_api_url}{target}")
    page.wait_for_url(re.compile(r"/hub/login"))
    page.fill("#username_input", "bureau1")
    page.fill("#password_input", stack.passwords["bureau1"])
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/services/lab-api/ui/"))


def test_risk_and_anomalies_pages_in_both_languages(lab_stack: LabStack, browser: Any) -> None:
    a, b = operators_spend(lab_stack)
    with lab_stack.runtime.transaction() as s:
        account = CatalogReader(s).get(DATASET).policy.account
        assert account is not None
        acct = state(s, DATASET, account)
        releases = s.execute(
            select(func.count()).select_from(DatasetChargeRow).where(DatasetChargeRow.dataset_id == DATASET)
        ).scalar_one()
    assert acct.period_fraction() >= Decimal("0.5")  # 2.5 of 5 at least: the 50 % alert is on
    assert acct.spent.rule == "zcdp"
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        login(page, lab_stack, "/ui/risk")
        page.wait_for_url(re.compile(r"/ui/risk$"))
        nav = page.get_by_role("navigation")
        assert nav.get_by_role("link", name="隐私风险").is_visible()
        assert nav.get_by_role("link", name="异常监测").is_visible()
        assert page.locator(f"li[data-dataset='{DATASET}']").inner_text().startswith(f"{DATASET}：")
        page.get_by_role("link", name="居民就诊记录汇总").click()
        page.wait_for_url(re.compile(rf"/ui/risk/{DATASET}$"))
        chart = page.locator("svg.spend-chart")
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80
        assert page.locator("svg.spend-chart circle.step").count() == releases
        assert page.locator("svg.spend-chart line.limit").count() == 2
        path = page.locator("svg.spend-chart path.spend-line").get_attribute("d") or ""
        assert path.count("L") == 2 * releases  # one horizontal and one vertical segment per release
        lifetime = page.locator("#lifetime").inner_text()
        assert f"ε {fmt_decimal(acct.spent.budget.epsilon)}" in lifetime
        orgs = page.locator("#by-organization").inner_text()
        assert "崇明数智健康科技有限公司" in orgs and "Island Analytics Ltd." in orgs
        assert a in page.locator("#by-project").inner_text() and b in page.locator("#by-project").inner_text()
        assert page.locator("#steps tbody tr").count() == releases
        assert "年额度已用" in page.locator("#alert").inner_text()
        page.screenshot(path=str(ARTIFACTS / "risk-dataset-zh.png"), full_page=True)

        page.get_by_role("navigation").get_by_role("link", name="异常监测").click()
        page.wait_for_url(re.compile(r"/ui/anomalies"))
        assert page.locator("h1").inner_text() == "异常监测"
        assert DATASET in page.locator("#dataset-alerts").inner_text()
        page.screenshot(path=str(ARTIFACTS / "anomalies-zh.png"), full_page=True)

        page.goto(f"{lab_stack.lab_api_url}/ui/risk/{DATASET}?lang=en")
        assert page.locator("h1").inner_text().startswith("Privacy risk: Health visits")
        assert page.locator("svg.spend-chart circle.step").count() == releases
        assert (
            page.locator("svg.spend-chart title").first.text_content() == f"Cumulative ε spent on {DATASET}"
        )
        assert "By operator organization" in page.locator("#org-h").inner_text()
        page.screenshot(path=str(ARTIFACTS / "risk-dataset-en.png"), full_page=True)
        page.locator("#steps tbody tr").first.locator("a").last.click()  # the newest release's ledger entry
        page.wait_for_url(re.compile(r"/ui/records/dr_[0-9a-f]{32}#ledger-entry$"))
        assert page.locator("#ledger-entry").inner_text().startswith("Ledger entry #")
        assert '"kind": "derived.record"' in page.locator("pre.json").last.inner_text()
        page.get_by_role("navigation").get_by_role("link", name="Anomalies").click()
        page.wait_for_url(re.compile(r"/ui/anomalies"))
        assert page.locator("h1").inner_text() == "Anomalies"
        assert "Dataset allowance alerts" in page.locator("#ds-h").inner_text()
        page.screenshot(path=str(ARTIFACTS / "anomalies-en.png"), full_page=True)
    finally:
        context.close()
