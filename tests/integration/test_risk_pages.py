"""The bureau's risk view and anomalies through the app with real Hub tokens (HTML and API).

Two operators' projects spend on ``population`` (yearly allowance ε = 8) until it passes 80 %: the
risk pages show the account, the spending per project and per organization, the chart and the
releases; only the bureau and auditors see them; the anomalies (page and API) carry the alert; an
operator's budget report says that the dataset's account binds.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import update

from lab.projects.models import ProjectRow
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._projects import auth, import_catalog, spend
from tests.integration.test_web_pages import P, login_as

pytestmark = [pytest.mark.integration, pytest.mark.hub]


def spent_projects(runtime: Runtime) -> tuple[str, str, list[str]]:
    import_catalog(runtime, ["population", "enterprise_registry"])
    grant = {"dp": {"epsilon": "5", "epsilon_per_query": "1"}}
    a = active_project(runtime, {"population": grant}, ["alice"])
    b = active_project(runtime, {"population": grant}, ["alice"])
    with runtime.transaction() as s:
        s.execute(update(ProjectRow).where(ProjectRow.id == a).values(organization="Alpha Data Ltd."))
        s.execute(update(ProjectRow).where(ProjectRow.id == b).values(organization="北岛数据科技有限公司"))
    records = [spend(runtime, "alice", a, "population", e).id for e in ("1", "1", "1", "1")]
    records += [spend(runtime, "alice", b, "population", e).id for e in ("1", "1", "0.5")]
    return a, b, records  # 6.5 of 8: past 80 %


def test_risk_pages_show_the_account_to_the_bureau_only(api: Any, runtime: Runtime, hub: HubHandle) -> None:
    _, _, records = spent_projects(runtime)
    api.follow_redirects = False
    login_as(api, runtime, hub, "bureau1", ["bureau"])
    overview = api.get(f"{P}/ui/risk")
    assert overview.status_code == 200, overview.text
    assert 'href="/services/lab-api/ui/risk/population"' in overview.text
    assert 'class="alert-80" data-dataset="population"' in overview.text
    assert "ui/risk/enterprise_registry" not in overview.text  # open: no account
    assert 'href="/services/lab-api/ui/anomalies"' in overview.text  # in the navigation

    en = api.get(f"{P}/ui/risk/population?lang=en").text
    assert "Year " in en and "Alpha Data Ltd." in en and "北岛数据科技有限公司" in en
    assert len(re.findall(r'<circle class="step"', en)) == 7
    for r in records:
        assert f'href="/services/lab-api/ui/records/{r}"' in en
        assert f'href="/services/lab-api/ui/records/{r}#ledger-entry"' in en
    release = api.get(f"{P}/ui/records/{records[0]}?lang=en")
    assert release.status_code == 200 and 'id="ledger-entry"' in release.text
    assert f"&#34;record&#34;: &#34;{records[0]}&#34;" in release.text  # the ledger entry names it
    lifetime = re.search(r'<dl class="facts" id="lifetime">(.*?)</dl>', en, re.S)
    assert lifetime and "ε 6.5" in lifetime.group(1) and "ε 5.5" in lifetime.group(1)  # of 12
    # the catalog's noisy size is a fixed cost per version, stated beside the account, not debited
    assert 'id="catalog-size">ε 0.1 per version' in lifetime.group(1) and "× 1 versions = ε 0.1" in en
    zh = api.get(f"{P}/ui/risk/population?lang=zh").text
    assert "按运营单位" in zh and "年额度已用 80%" in zh
    assert api.get(f"{P}/ui/risk/enterprise_registry").status_code == 404

    anomalies = api.get(f"{P}/ui/anomalies?lang=en")
    assert anomalies.status_code == 200 and 'id="dataset-alerts"' in anomalies.text
    assert "6.5 / 8" in anomalies.text

    login_as(api, runtime, hub, "auditor1", ["auditor"])  # auditors read them too
    for page in ("/ui/risk", "/ui/risk/population", "/ui/anomalies", f"/ui/records/{records[0]}"):
        assert api.get(f"{P}{page}").status_code == 200, page
    assert 'href="/services/lab-api/ui/anomalies"' in api.get(f"{P}/ui/catalog").text

    login_as(api, runtime, hub, "alice", ["operator"])
    assert api.get(f"{P}/ui/risk").status_code == 403
    assert api.get(f"{P}/ui/anomalies").status_code == 403
    assert api.get(f"{P}/ui/records/{records[0]}").status_code == 403
    assert "ui/anomalies" not in api.get(f"{P}/ui/catalog").text


def test_a_zcdp_accounts_page_names_its_rule_and_sum_of_rho(
    api: Any, runtime: Runtime, hub: HubHandle
) -> None:
    import_catalog(runtime, ["health_visits"])
    pid = active_project(
        runtime, {"health_visits": {"dp": {"epsilon": "3", "epsilon_per_query": "1"}}}, ["alice"]
    )
    spend(runtime, "alice", pid, "health_visits", "0.5")  # pure: ρ = 0.125, ε ≈ 2.6 at δ = 5·10⁻⁵
    api.follow_redirects = False
    login_as(api, runtime, hub, "bureau1", ["bureau"])
    en = api.get(f"{P}/ui/risk/health_visits?lang=en").text
    lifetime = re.search(r'<dl class="facts" id="lifetime">(.*?)</dl>', en, re.S)
    assert lifetime and "zero-concentrated DP" in lifetime.group(1)
    assert '<dd id="rho">0.125000</dd>' in lifetime.group(1) and "ε 0.5 " not in lifetime.group(1)
    assert len(re.findall(r'<circle class="step"', en)) == 1
    zh = api.get(f"{P}/ui/risk/health_visits?lang=zh").text
    assert "零集中差分隐私" in zh and "Σρ（zCDP，转换前）" in zh
    population = api.get(f"{P}/ui/risk?lang=en").text
    assert "zero-concentrated DP" in population


def test_anomalies_api_and_budget_report_carry_the_dataset_account(
    api: Any, runtime: Runtime, hub: HubHandle
) -> None:
    a, b, _ = spent_projects(runtime)
    bureau = hub.token_for("bureau1", ["bureau"])
    report = api.get(f"{P}/api/v1/audit/anomalies", headers=auth(bureau)).json()
    (alert,) = report["datasets"]
    assert alert["dataset"] == "population" and alert["level"] == 80 and alert["epsilon_spent"] == "6.5"
    alice = hub.token_for("alice", ["operator"])
    assert api.get(f"{P}/api/v1/audit/anomalies", headers=auth(alice)).status_code == 403
    (row,) = api.get(f"{P}/api/v1/projects/{b}/budget", headers=auth(alice)).json()["budgets"]
    # the project has ε = 2.5 of its own left, the dataset only 1.5 this year: the dataset binds
    assert row["epsilon_remaining"] == "2.5" and row["dataset_epsilon_remaining"] == "1.5"
    assert row["binding"] == "dataset" and row["dataset_period"].isdigit()
    assert (row["dataset_epsilon_lifetime"], row["dataset_epsilon_allowance"]) == ("12", "8")
    (row_a,) = api.get(f"{P}/api/v1/projects/{a}/budget", headers=auth(alice)).json()["budgets"]
    assert row_a["epsilon_remaining"] == "1" and row_a["binding"] == "project"
