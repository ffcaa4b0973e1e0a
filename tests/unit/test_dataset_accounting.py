"""Composition on dataset accounts: one rule per account — exact basic composition, or zCDP (Σρ)
converted to ε by dp-accounting — never switched per check (no I/O)."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import dp_accounting
import pytest
from diffprivlib.mechanisms import GaussianAnalytic
from dp_accounting.rdp import RdpAccountant

from lab.budgets import Budget
from lab.budgets.accounting import Charge, Spent, compose, noise_multiplier, rho, zcdp_epsilon
from lab.budgets.accounts import AccountState
from lab.catalog.policy import AccountPolicy, load_policy, require_account
from lab.errors import InvalidPolicy

DELTA = Decimal("0.00005")
GAUSS = Budget.of("0.5", "0.000001")


def library_gaussian_epsilon(noise_multiplier: float, count: int, delta: float) -> float:
    accountant = RdpAccountant()
    accountant.compose(
        dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(noise_multiplier), count)
    )
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize("k", [1, 5, 20, 100])
def test_k_gaussian_releases_match_the_library_accountant(k: int) -> None:
    expected = library_gaussian_epsilon(dp_accounting.get_sigma_gaussian(0.5, 1e-6), k, 5e-5)
    ours = compose("zcdp", [Charge(GAUSS, gaussian=True, count=k)], DELTA)
    assert ours.rule == "zcdp" and ours.budget.delta == DELTA
    assert float(ours.budget.epsilon) == pytest.approx(expected, abs=2e-6)
    assert float(ours.budget.epsilon) >= expected  # rounded up, never down


@pytest.mark.parametrize("k", [1, 10, 100])
def test_pure_releases_are_rho_eps_squared_over_two_converted_by_the_library(k: int) -> None:
    # Bun & Steinke 2016, Prop. 1.4: ε-DP ⇒ ε²/2-zCDP; k of them: one Gaussian with ρ = k·ε²/2
    assert rho(Budget.of("0.1"), gaussian=False) == Fraction(1, 200)
    spent = compose("zcdp", [Charge(Budget.of("0.1"), count=k)], DELTA)
    expected = library_gaussian_epsilon(1 / math.sqrt(2 * k * 0.005), 1, 5e-5)
    assert float(spent.budget.epsilon) == pytest.approx(expected, abs=2e-6)
    assert spent.rho == Fraction(k, 200)


def test_a_mixed_release_is_charged_its_pure_and_its_gaussian_bound() -> None:
    cost = Budget.of("0.5", "0.000001")  # a quantile next to Gaussian sums: ε ≤ 0.5 each part, δ ≤ 10⁻⁶
    assert rho(cost, gaussian=False) == Fraction(1, 8) + Fraction(1) / (
        2 * Fraction(noise_multiplier(cost)) ** 2
    )
    assert rho(cost, gaussian=False) > rho(cost, gaussian=True) > 0
    # a "Gaussian" flag on a release without δ is a pure release
    assert rho(Budget.of("0.5"), gaussian=True) == Fraction(1, 8)


@pytest.mark.parametrize(("eps", "delta"), [(0.1, 1e-6), (0.5, 1e-6), (1.0, 1e-5), (0.05, 1e-7)])
def test_accounted_noise_never_exceeds_the_channels_gaussian(eps: float, delta: float) -> None:
    # the channel's diffprivlib GaussianAnalytic σ at sensitivity 1 must be at least what we account for
    channel = GaussianAnalytic(epsilon=eps, delta=delta, sensitivity=1)._scale
    assert noise_multiplier(Budget.of(str(eps), str(delta))) <= channel


def _rho_gauss(eps: float, delta: float) -> float:
    return 1 / (2 * float(dp_accounting.get_sigma_gaussian(eps, delta)) ** 2)


def test_gaussian_rho_is_superadditive_in_epsilon_and_increasing_in_delta() -> None:
    """The mixed-release bound and split Gaussian releases rely on Σ ρ(εⱼ, δ) ≤ ρ(Σ εⱼ, δ) and on
    ρ(ε, δ') ≤ ρ(ε, δ) for δ' ≤ δ: checked with the library over ε ∈ [0.01, 10], δ ∈ [1e-9, 1e-4]."""
    epsilons = [round(0.01 * 1000 ** (i / 11), 6) for i in range(12)]  # 0.01 … 10, log-spaced
    deltas = [1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4]
    for delta in deltas:
        table = {e: _rho_gauss(e, delta) for e in epsilons}
        for a in epsilons:
            for b in epsilons:
                if a <= b and a + b <= 10:
                    assert table[a] + table[b] <= _rho_gauss(a + b, delta), (a, b, delta)
            for n in (2, 3, 7, 20):  # an ε split evenly across n aggregations
                assert n * _rho_gauss(a / n, delta) <= table[a], (a, n, delta)
        assert [table[e] for e in epsilons] == sorted(table[e] for e in epsilons)
    for e in epsilons:
        by_delta = [_rho_gauss(e, d) for d in deltas]
        assert by_delta == sorted(by_delta), e


def test_the_zcdp_conversion_is_non_decreasing_in_rho_so_the_refusal_is_a_filter_on_sum_rho() -> None:
    rhos = [Fraction(i, 1000) for i in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 20000)]
    eps = [zcdp_epsilon(r, DELTA) for r in rhos]
    assert eps == sorted(eps) and eps[0] > 0
    # the limit ε fixes ρ* in advance: "ε(Σρ) ≤ ε*" and "Σρ ≤ ρ*" accept the same releases
    limit = Decimal(8)
    lo, hi = Fraction(0), Fraction(50)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if zcdp_epsilon(mid, DELTA) <= limit else (lo, mid)
    step = rho(Budget.of("0.3"), gaussian=False)
    n = int(lo / step)  # releases of ε = 0.3 that fit
    assert compose("zcdp", [Charge(Budget.of("0.3"), count=n)], DELTA).budget.epsilon <= limit
    assert compose("zcdp", [Charge(Budget.of("0.3"), count=n + 1)], DELTA).budget.epsilon > limit


def test_basic_is_exact_decimal_composition_of_every_release() -> None:
    spent = compose("basic", [Charge(Budget.of("0.1")), Charge(Budget.of("0.2"))], DELTA)
    assert spent == Spent(Budget.of("0.3"), "basic")
    many = [Charge(GAUSS, gaussian=True, count=40), Charge(Budget.of("0.3"))]
    assert compose("basic", many, DELTA).budget == Budget.of("20.3", "0.00004")
    assert compose("zcdp", [], DELTA) == Spent(Budget.zero(), "zcdp", Fraction(0))


def _state(rule: str, charges: list[Charge]) -> AccountState:
    lifetime, year = Budget.of("8", "0.00005"), Budget.of("5", "0.00003")
    spent = compose(rule, charges, lifetime.delta)  # type: ignore[arg-type]
    return AccountState("d", lifetime, "2026", year, spent, compose(rule, charges, year.delta))  # type: ignore[arg-type]


def test_a_rule_never_switches_even_when_the_other_would_be_smaller() -> None:
    # zcdp: three pure releases of ε = 1 — basic composition would say 3 (fits 5), zCDP says more
    three = [Charge(Budget.of("1"), count=3)]
    z = _state("zcdp", three)
    assert z.spent.rule == z.period_spent.rule == "zcdp"
    assert z.spent.budget.epsilon > 5 > 3 and not z.fits  # reports and refuses by zCDP
    assert _state("basic", three).fits
    # basic: 20 Gaussian releases — zCDP would say ε ≈ 2.2 (fits), basic composition says 10
    twenty = [Charge(GAUSS, gaussian=True, count=20)]
    b = _state("basic", twenty)
    assert b.spent == Spent(Budget.of("10", "0.00002"), "basic") and not b.fits
    assert _state("zcdp", twenty).fits and _state("zcdp", twenty).spent.budget.epsilon < 3


def test_open_datasets_have_no_account_and_non_open_ones_must_declare_one() -> None:
    policy = load_policy("policies/health_visits.yaml")
    assert policy.account is not None and policy.account.period_epsilon <= policy.account.epsilon
    require_account(policy)
    with pytest.raises(InvalidPolicy, match="needs a privacy-loss account"):
        require_account(policy.model_copy(update={"account": None}), "x.yaml")
    data = load_policy("policies/enterprise_registry.yaml").model_dump(mode="json")
    data["account"] = {"epsilon": "5", "period_epsilon": "1"}
    from lab.catalog.policy import parse_policy

    with pytest.raises(InvalidPolicy, match="open datasets have no privacy-loss account"):
        parse_policy(data)
    with pytest.raises(ValueError, match="cannot exceed the lifetime"):
        AccountPolicy(epsilon=Decimal(1), period_epsilon=Decimal(2))


def test_the_composition_rule_is_declared_in_the_policy_with_a_default_by_delta() -> None:
    rules = {
        n: load_policy(f"policies/{n}.yaml").account
        for n in ("population", "health_visits", "social_insurance")
    }
    assert {n: a.composition for n, a in rules.items() if a} == {
        "population": "basic",
        "health_visits": "zcdp",
        "social_insurance": "basic",
    }
    assert AccountPolicy.model_validate({"epsilon": "8", "period_epsilon": "5"}).composition == "basic"
    both = {"epsilon": "8", "delta": "0.00005", "period_epsilon": "5", "period_delta": "0.00003"}
    assert AccountPolicy.model_validate(both).composition == "zcdp"
    assert AccountPolicy.model_validate({**both, "period_delta": "0"}).composition == "basic"
    assert AccountPolicy.model_validate({**both, "composition": "basic"}).composition == "basic"
    with pytest.raises(ValueError, match="zcdp is converted to ε at the account's δ"):
        AccountPolicy.model_validate({**both, "period_delta": "0", "composition": "zcdp"})
    with pytest.raises(ValueError, match="composition"):
        AccountPolicy.model_validate({**both, "composition": "rdp"})
    # what a version stores is read back with the same rule
    stored = AccountPolicy.model_validate(both).model_dump(mode="json")
    assert stored["composition"] == "zcdp" and AccountPolicy.model_validate(stored).composition == "zcdp"


def test_the_saving_table_in_docs_is_what_the_library_computes() -> None:
    """docs/dp.md's table of basic composition against zCDP: every row recomputed from dp-accounting."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "dp.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \(.*?\) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", text, re.M)
    assert [int(k) for k, *_ in rows] == [1, 5, 10, 20, 50, 100]
    sigma = dp_accounting.get_sigma_gaussian(0.5, 1e-6)
    for k_, basic, zcdp, pure_basic, pure_zcdp in rows:
        k = int(k_)
        assert Decimal(basic) == Decimal("0.5") * k  # basic composition: Σε
        assert float(zcdp) == pytest.approx(library_gaussian_epsilon(sigma, k, 5e-5), abs=0.005), k
        ours = compose("zcdp", [Charge(GAUSS, gaussian=True, count=k)], DELTA).budget.epsilon
        assert f"{ours:.2f}" == zcdp  # what a zcdp account reports
        assert Decimal(pure_basic) == Decimal("0.1") * k
        pure = compose("zcdp", [Charge(Budget.of("0.1"), count=k)], DELTA).budget.epsilon
        assert f"{pure:.2f}" == pure_zcdp
        assert float(pure) == pytest.approx(
            library_gaussian_epsilon(1 / math.sqrt(k * 0.01), 1, 5e-5), abs=0.005
        )


def test_allowance_alerts_measure_zcdp_accounts_by_epsilon_not_by_the_conversion_delta() -> None:
    from lab.budgets.risk import alert_level

    five = _state("zcdp", [Charge(GAUSS, gaussian=True, count=5)])  # ε ≈ 1.06 at the year's δ
    assert five.period_spent.budget.delta == Decimal("0.00003")  # the conversion δ, not δ consumed
    assert five.period_fraction() < Decimal("0.25") and alert_level(five.period_fraction()) is None
    # basic composition: δ consumed counts (20 of 30 millionths of δ is past 50 %)
    basic = _state("basic", [Charge(Budget.of("0.5", "0.00002"))])
    assert basic.period_fraction() == Decimal("0.00002") / Decimal("0.00003")
    assert alert_level(basic.period_fraction()) == 50
