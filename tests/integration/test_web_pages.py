"""The bureau pages through the app with real Hub tokens: login redirect, OAuth state, session cookie,
CSRF refusal, language switch, catalog and ledger pages, and a review submitted through the form.

Sessions are made with :class:`lab.web.auth.WebSession` around a real Hub token (what the OAuth
callback does after the code exchange); the OAuth round trip itself runs in the browser test
(tests/e2e/test_bureau_pages.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lab.identity import Principal
from lab.projects.models import ProjectStatus
from lab.projects.schemas import ApplicationIn
from lab.projects.workflow import ProjectWorkflow
from lab.runtime import Runtime
from lab.web import auth
from tests.conftest import HubHandle
from tests.integration.test_catalog_import import POLICY, write_health_csv

pytestmark = [pytest.mark.integration, pytest.mark.hub]
P = "/services/lab-api"


def login_as(api: Any, runtime: Runtime, hub: HubHandle, user: str, groups: list[str]) -> auth.WebSession:
    """Put a session for ``user`` (holding a real Hub token) in the client's cookie jar."""
    session = auth.WebSession.new(hub.token_for(user, groups), user)
    api.cookies.set(auth.SESSION_COOKIE, session.cookie(runtime.settings))
    return session


def csrf_of(page_html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert match, "the page has no CSRF field"
    return match.group(1)


@pytest.fixture
def web(api: Any) -> Any:
    api.follow_redirects = False
    return api


@pytest.fixture
def imported(runtime: Runtime, tmp_path: Path) -> None:
    from lab.catalog.service import CatalogImporter

    path = write_health_csv(tmp_path / "h.csv", 30)
    with runtime.transaction() as s:
        CatalogImporter(s, runtime.store, runtime.ledger(s)).import_file(path, POLICY, "steward1")


def test_page_without_session_redirects_to_login(web: Any) -> None:
    r = web.get(f"{P}/ui/projects?status=pending")
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert target.path == f"{P}/ui/login"
    assert parse_qs(target.query)["next"] == [f"{P}/ui/projects?status=pending"]


def test_login_redirects_to_the_hub_with_state_and_pkce(web: Any) -> None:
    r = web.get(f"{P}/ui/login", params={"next": f"{P}/ui/catalog"})
    assert r.status_code == 302
    loc = urlsplit(r.headers["location"])
    q = {k: v[0] for k, v in parse_qs(loc.query).items()}
    assert loc.path == "/hub/api/oauth2/authorize"
    assert q["client_id"] == "service-lab-api" and q["response_type"] == "code"
    assert q["redirect_uri"] == f"{P}/oauth_callback"
    assert q["code_challenge_method"] == "S256" and len(q["state"]) >= 32
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{auth.STATE_COOKIE}=") and "HttpOnly" in cookie and f"Path={P}" in cookie


def test_callback_refuses_a_state_that_is_not_this_browsers(web: Any) -> None:
    web.get(f"{P}/ui/login")
    r = web.get(f"{P}/oauth_callback", params={"code": "abc", "state": "forged-state"})
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    web.cookies.clear()
    r = web.get(f"{P}/oauth_callback", params={"code": "abc", "state": "whatever"})
    assert r.status_code == 403


def test_callback_with_a_code_the_hub_refuses_is_an_error_page_not_a_loop(web: Any) -> None:
    login = web.get(f"{P}/ui/login")
    state = parse_qs(urlsplit(login.headers["location"]).query)["state"][0]
    r = web.get(f"{P}/oauth_callback", params={"code": "not-a-code-the-hub-issued", "state": state})
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    assert auth.SESSION_COOKIE not in web.cookies


def test_login_never_redirects_off_site(web: Any) -> None:
    for bad in ("https://evil.example/", "//evil.example/x", "/hub/admin", "/\\evil.example"):
        assert auth.safe_next(bad, P) == f"{P}/ui/"
    assert auth.safe_next(f"{P}/ui/ledger", P) == f"{P}/ui/ledger"


def test_tampered_or_foreign_session_cookie_means_login(web: Any, runtime: Runtime, hub: HubHandle) -> None:
    session = login_as(web, runtime, hub, "bureau1", ["bureau"])
    value = session.cookie(runtime.settings)
    web.cookies.set(auth.SESSION_COOKIE, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert web.get(f"{P}/ui/catalog").status_code == 303
    other = auth.seal(
        runtime.settings, "oauth-state", {"token": "x", "user": "bureau1", "sid": "s", "exp": 9e9}
    )
    web.cookies.set(auth.SESSION_COOKIE, other)  # sealed for another purpose
    assert web.get(f"{P}/ui/catalog").status_code == 303


def test_api_routes_do_not_accept_the_session_cookie(web: Any, runtime: Runtime, hub: HubHandle) -> None:
    login_as(web, runtime, hub, "bureau1", ["bureau"])
    assert web.get(f"{P}/ui/catalog").status_code == 200
    r = web.get(f"{P}/api/v1/catalog")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_post_without_or_with_a_wrong_csrf_token_is_refused(
    web: Any, runtime: Runtime, hub: HubHandle
) -> None:
    mine = login_as(web, runtime, hub, "auditor1", ["auditor"])
    other = auth.WebSession.new("unused", "auditor1")
    for data in ({}, {"csrf_token": "x" * 43}, {"csrf_token": auth.csrf_token(runtime.settings, other)}):
        r = web.post(f"{P}/ui/ledger/verify", data=data)
        assert r.status_code == 403, data
        assert "text/html" in r.headers["content-type"]
    r = web.post(f"{P}/ui/ledger/verify", data={"csrf_token": auth.csrf_token(runtime.settings, mine)})
    assert r.status_code == 303 and r.headers["location"] == f"{P}/ui/ledger?done=verify"


def test_ledger_page_runs_and_shows_a_verification(web: Any, runtime: Runtime, hub: HubHandle) -> None:
    login_as(web, runtime, hub, "auditor1", ["auditor"])
    page = web.get(f"{P}/ui/ledger")
    assert page.status_code == 200 and "尚未在审核台执行过完整校验" in page.text
    r = web.post(f"{P}/ui/ledger/verify", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    page = web.get(f"{P}/ui/ledger?done=verify")
    assert "校验通过" in page.text and "auditor1" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_operator_may_not_verify_the_ledger(web: Any, runtime: Runtime, hub: HubHandle) -> None:
    login_as(web, runtime, hub, "alice", ["operator"])
    page = web.get(f"{P}/ui/ledger")
    assert page.status_code == 200 and 'action="/services/lab-api/ui/ledger/verify"' not in page.text
    r = web.post(f"{P}/ui/ledger/verify", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 403


def test_catalog_pages_in_chinese_and_english(
    web: Any, runtime: Runtime, hub: HubHandle, imported: None
) -> None:
    login_as(web, runtime, hub, "steward1", ["steward"])
    zh = web.get(f"{P}/ui/catalog")
    assert zh.status_code == 200 and '<html lang="zh-CN">' in zh.text
    assert "数据目录" in zh.text and "居民就诊记录汇总" in zh.text and "非开放" in zh.text
    en = web.get(f"{P}/ui/catalog/health_visits?lang=en")
    assert '<html lang="en">' in en.text and "Schema" in en.text and "Non-open" in en.text
    assert "resident_id" in en.text and "Differential privacy" in en.text
    assert f"{auth.LANG_COOKIE}=en" in en.headers["set-cookie"]
    assert '<html lang="en">' in web.get(f"{P}/ui/catalog").text  # remembered
    assert web.get(f"{P}/ui/catalog/no_such").status_code == 404


def _apply(runtime: Runtime) -> str:
    alice = Principal.from_groups("alice", ["operator"])
    app = ApplicationIn(
        title="慢病随访效果评估",
        purpose="评估慢病随访对就诊次数的影响（测试）",
        scenario="卫生政策研究",
        organization="测试数据科技有限公司",
        contact="alice@example.com",
        datasets={"health_visits": {"dp": {"epsilon": "2"}}},
        days=60,
        commitment="我方承诺仅在批准范围内使用数据，并遵守数据安全管理规定。",
    )
    return ProjectWorkflow(runtime).apply(alice, app).id


def test_review_through_the_form(web: Any, runtime: Runtime, hub: HubHandle, imported: None) -> None:
    runtime.settings.projects.approvals_non_open = 1
    pid = _apply(runtime)
    login_as(web, runtime, hub, "bureau1", ["bureau"])
    queue = web.get(f"{P}/ui/projects")
    assert pid in queue.text and "待审核" in queue.text
    page = web.get(f"{P}/ui/projects/{pid}")
    assert page.status_code == 200 and 'name="health_visits.dp.epsilon" value="2"' in page.text
    token = csrf_of(page.text)
    r = web.post(f"{P}/ui/projects/{pid}/review", data={"csrf_token": token, "decision": "reject"})
    assert r.status_code == 400 and "reason" in r.text  # a rejection needs a reason
    r = web.post(
        f"{P}/ui/projects/{pid}/review",
        data={
            "csrf_token": token,
            "decision": "approve",
            "keep.health_visits.dp": "1",
            "health_visits.dp.epsilon": "1.5",
            "days": "30",
            "reason": "缩减预算后批准",
        },
    )
    assert r.status_code == 303, r.text
    out = ProjectWorkflow(runtime).get(Principal.from_groups("bureau1", ["bureau"]), pid)
    assert out.status == ProjectStatus.active and out.grants["health_visits"]["dp"]["epsilon"] == "1.5"
    assert out.starts_at and out.ends_at and (out.ends_at - out.starts_at).days == 30
    detail = web.get(r.headers["location"])
    assert "进行中" in detail.text and "<svg" in detail.text and "缩减预算后批准" in detail.text
    assert hub.groups_of("alice").count(f"project-{pid}") == 1


def test_applicant_cannot_review_and_auditor_sees_no_form(
    web: Any, runtime: Runtime, hub: HubHandle, imported: None
) -> None:
    pid = _apply(runtime)
    login_as(web, runtime, hub, "auditor1", ["auditor"])
    page = web.get(f"{P}/ui/projects/{pid}")
    assert page.status_code == 200 and 'name="decision"' not in page.text
    r = web.post(
        f"{P}/ui/projects/{pid}/review", data={"csrf_token": csrf_of(page.text), "decision": "approve"}
    )
    assert r.status_code == 403
    login_as(web, runtime, hub, "alice", ["operator", "bureau"])  # an applicant who is also a reviewer
    page = web.get(f"{P}/ui/projects/{pid}")
    assert "不能审核本项目" in page.text
    r = web.post(
        f"{P}/ui/projects/{pid}/review",
        data={"csrf_token": csrf_of(page.text), "decision": "approve", "keep.health_visits.dp": "1"},
    )
    assert r.status_code == 403


def _product(runtime: Runtime, tmp_path: Path) -> str:
    """A DP spend in an active project (a real derived record) and a report registered from it."""
    from lab.budgets import Budget
    from lab.products.schemas import ProductSubmission
    from lab.products.service import spool, submit
    from lab.projects.access import Ask, authorize, commit_result, no_channel_params
    from tests.factories import active_project

    alice = Principal.from_groups("alice", ["operator"])
    pid = active_project(runtime, {"health_visits": {"dp": {"epsilon": "2", "epsilon_per_query": "1"}}})
    with runtime.transaction() as s:
        access = authorize(
            s, alice, pid, "health_visits", "dp", "query", Ask.spend("0.5"), check=no_channel_params
        )
        record = commit_result(
            s, runtime.ledger(s), access, cost=Budget.of("0.5", 0), parameters={}, result_digest="1" * 64
        )
    report = tmp_path / "visits_by_town.csv"
    report.write_text("town,visits\n城桥镇,1203\n堡镇,988\n", encoding="utf-8")
    with report.open("rb") as f:
        art = spool(f, tmp_path, 1 << 20, report.name, "text/csv")
    meta = ProductSubmission(
        project=pid,
        name={"zh": "各镇就诊次数报告", "en": "Visits by town"},  # type: ignore[arg-type]
        type="report",  # type: ignore[arg-type]
        description="差分隐私统计",
        derived_from=[record.id],
        dp_columns=["visits"],
    )
    return submit(runtime, alice, meta, art).id


def test_product_review_queue_detail_approval_and_revocation(
    web: Any, runtime: Runtime, hub: HubHandle, imported: None, tmp_path: Path
) -> None:
    product = _product(runtime, tmp_path)
    login_as(web, runtime, hub, "bureau1", ["bureau"])
    queue = web.get(f"{P}/ui/products")
    assert queue.status_code == 200 and "各镇就诊次数报告" in queue.text and product in queue.text
    page = web.get(f"{P}/ui/products/{product}?lang=en")
    assert page.status_code == 200 and "Lineage" in page.text and "dr_" in page.text
    assert "Visits by town" in page.text and "Artifact digest" in page.text
    token = csrf_of(page.text)
    r = web.post(f"{P}/ui/products/{product}/review", data={"csrf_token": token, "decision": "reject"})
    assert r.status_code == 400  # a rejection needs a reason
    r = web.post(
        f"{P}/ui/products/{product}/review",
        data={"csrf_token": token, "decision": "approve", "reason": "disclosure checked"},
    )
    assert r.status_code == 303, r.text
    page = web.get(r.headers["location"])
    number = re.search(r"CMDL-\d{4}-\d{6}", page.text)
    assert number and "Registered" in page.text
    cert = web.get(f"{P}/ui/products/{product}/certificate.json")
    assert cert.status_code == 200 and number.group(0) in cert.text
    # the download carries the checkpoint its proofs are against and verifies with the log's key
    from lab.ledger import checkpoints
    from lab.shared.certificates import verify_certificate
    from lab.shared.standalone import trusted_log_keys

    origin = runtime.settings.ledger.origin
    with runtime.transaction() as s:
        vkey = checkpoints.log_verifier(runtime.ledger(s), origin).vkey
    doc = cert.json()
    assert doc["ledger"]["checkpoint"].startswith(f"{origin}\n{doc['ledger']['tree_size']}\n")
    assert verify_certificate(doc, trusted_keys=trusted_log_keys([vkey])).ok
    r = web.post(f"{P}/ui/products/{product}/revoke", data={"csrf_token": token, "reason": ""})
    assert r.status_code == 400
    r = web.post(f"{P}/ui/products/{product}/revoke", data={"csrf_token": token, "reason": "withdrawn"})
    assert r.status_code == 303
    assert "Revoked" in web.get(f"{P}/ui/products/{product}").text
