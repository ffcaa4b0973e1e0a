"""Session sealing, CSRF tokens, safe redirects, the review form and the SVG chart (no I/O)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from lab.errors import BadRequest, Forbidden
from lab.settings import Settings
from lab.web import auth
from lab.web.charts import BudgetBar, budget_chart
from lab.web.views.projects import parse_review

P = "/services/lab-api"
REQUESTED = {
    "health_visits": {
        "dp": {"epsilon": "2", "delta": "0", "epsilon_per_query": "0.5", "delta_per_query": "0"}
    },
    "enterprise_registry": {"psi": {"modes": ["intersection"], "columns": ["uscc"], "quota": 20}},
}


@pytest.fixture
def settings() -> Settings:
    return Settings(secret_key="unit-test-secret-key-0123456789")  # type: ignore[call-arg]


def test_session_cookie_round_trips_and_refuses_tampering(settings: Settings) -> None:
    s = auth.WebSession.new("hub-token", "bureau1")
    cookie = s.cookie(settings)
    assert "hub-token" not in cookie and "bureau1" not in cookie  # sealed, not merely signed
    assert auth.read_session(settings, cookie) == s
    flipped = cookie[:20] + ("A" if cookie[20] != "A" else "B") + cookie[21:]
    assert auth.read_session(settings, flipped) is None
    other = Settings(secret_key="another-secret-key-9876543210")  # type: ignore[call-arg]
    assert auth.read_session(other, cookie) is None
    assert auth.read_session(settings, auth.seal(settings, "oauth-state", {"token": "x"})) is None
    assert auth.read_session(settings, None) is None and auth.read_session(settings, "x" * 5000) is None


def test_expired_session_is_refused(settings: Settings) -> None:
    old = auth.WebSession("t", "bureau1", "sid", int(time.time()) - 1)
    assert auth.read_session(settings, old.cookie(settings)) is None


def test_csrf_token_is_bound_to_the_session(settings: Settings) -> None:
    a, b = auth.WebSession.new("t", "u"), auth.WebSession.new("t", "u")
    token = auth.csrf_token(settings, a)
    auth.check_csrf(settings, a, token)
    for session, submitted in ((a, ""), (a, None), (a, auth.csrf_token(settings, b)), (None, token)):
        with pytest.raises(auth.CsrfRefused) as err:
            auth.check_csrf(settings, session, submitted)
        assert err.value.status == 403


def test_login_state_must_match_the_browsers_cookie(settings: Settings) -> None:
    url, cookie = auth.begin_login(settings, f"{P}/ui/ledger")
    state = url.split("state=")[1].split("&")[0]
    assert auth.check_state(settings, state, cookie)["next"] == f"{P}/ui/ledger"
    with pytest.raises(Forbidden):
        auth.check_state(settings, "another-state", cookie)
    with pytest.raises(Forbidden):
        auth.check_state(settings, state, None)


def test_authorize_url_follows_the_hub_base_url(settings: Settings) -> None:
    assert auth.authorize_url(settings) == "/hub/api/oauth2/authorize"
    settings.hub.public_url = "https://lab.example/jhub/"
    assert auth.authorize_url(settings) == "/jhub/hub/api/oauth2/authorize"
    assert auth.hub_logout_url(settings) == "/jhub/hub/logout"
    assert auth.redirect_uri(settings) == f"{P}/oauth_callback"
    assert auth.client_id(settings) == "service-lab-api"


@pytest.mark.parametrize(
    "bad", ["https://evil.example/", "//evil.example", "/hub/admin", "/\\evil", "ui/x", ""]
)
def test_next_url_never_leaves_the_service(bad: str) -> None:
    assert auth.safe_next(bad, P) == f"{P}/ui/"


def test_review_form_sends_only_the_reductions() -> None:
    fields = {
        "decision": "approve",
        "keep.health_visits.dp": "1",
        "health_visits.dp.epsilon": "1.5",
        "days": "30",
        "reason": " ok ",
    }  # enterprise_registry.psi unticked: dropped
    r = parse_review(fields, REQUESTED, 90)
    assert r.decision == "approve" and r.reason == "ok" and r.days == 30
    assert r.grants == {"health_visits": {"dp": {"epsilon": "1.5"}}, "enterprise_registry": {"psi": None}}
    unchanged = {"decision": "approve", "keep.health_visits.dp": "1", "keep.enterprise_registry.psi": "1"}
    unchanged |= {"health_visits.dp.epsilon": "2", "enterprise_registry.psi.quota": "20", "days": "90"}
    r = parse_review(unchanged, REQUESTED, 90)
    assert r.grants is None and r.days is None
    assert parse_review({"decision": "reject", "reason": "no"}, REQUESTED, 90).grants is None
    with pytest.raises(BadRequest):
        parse_review({"decision": "maybe"}, REQUESTED, 90)
    with pytest.raises(BadRequest):
        parse_review({"decision": "approve", "days": "0"}, REQUESTED, 90)
    with pytest.raises(BadRequest):
        parse_review({"decision": "approve", "days": "ten"}, REQUESTED, 90)


def test_budget_chart_is_accessible_and_escapes_labels() -> None:
    bars = [
        BudgetBar("a", "<script>x</script>", Decimal("0.75"), Decimal("1.5")),
        BudgetBar("b", "over", Decimal("2"), Decimal("2")),
    ]
    svg = str(budget_chart(bars, title="T&T", desc="d", spent_label="{spent}/{total} {pct}"))
    assert svg.startswith("<svg") and 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "T&amp;T" in svg
    assert "0.75/1.5 50%" in svg and "100%" in svg and 'class="bar-over"' in svg
