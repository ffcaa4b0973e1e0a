"""Composition on dataset accounts: exact basic composition, RDP through dp-accounting (no I/O)."""

from __future__ import annotations

from decimal import Decimal

import dp_accounting
import pytest
from diffprivlib.mechanisms import GaussianAnalytic
from dp_accounting.rdp import RdpAccountant

from lab.budgets import Budget
from lab.budgets.accounting import GaussianGroup, Spent, compose, noise_multiplier, rdp_epsilon
from lab.catalog.policy import AccountPolicy, load_policy, require_account
from lab.errors import InvalidPolicy


@pytest.mark.parametrize("k", [1, 5, 20, 100])
def test_k_gaussian_releases_match_the_library_accountant(k: int) -> None:
    cost = Budget.of("0.5", "0.000001")
    accountant = RdpAccountant()
    sigma = dp_accounting.get_sigma_gaussian(0.5, 1e-6)
    accountant.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma), k))
    ours = rdp_epsilon([GaussianGroup(cost, k)], Decimal("0.00005"))
    assert float(ours) == pytest.approx(accountant.get_epsilon(5e-5), abs=2e-6)
    assert float(ours) >= accountant.get_epsilon(5e-5)  # rounded up, never down


@pytest.mark.parametrize(("eps", "delta"), [(0.1, 1e-6), (0.5, 1e-6), (1.0, 1e-5), (0.05, 1e-7)])
def test_accounted_noise_never_exceeds_the_channels_gaussian(eps: float, delta: float) -> None:
    # the channel's diffprivlib GaussianAnalytic σ at sensitivity 1 must be at least what we account for
    channel = GaussianAnalytic(epsilon=eps, delta=delta, sensitivity=1)._scale
    assert noise_multiplier(Budget.of(str(eps), str(delta))) <= channel


def test_rdp_is_used_only_when_it_is_tighter_and_fits_the_accounts_delta() -> None:
    one = [GaussianGroup(Budget.of("0.5", "0.000001"), 1)]
    # one release with no more δ than its own: RDP is looser than the release's exact (ε, δ)
    assert compose(Budget.zero(), one, Decimal("0.000001")) == Spent(Budget.of("0.5", "0.000001"), "basic")
    many = [GaussianGroup(Budget.of("0.5", "0.000001"), 40)]
    spent = compose(Budget.of("0.3"), many, Decimal("0.00005"))
    assert spent.rule == "rdp" and spent.budget.delta == Decimal("0.00005")
    assert spent.budget.epsilon == Decimal("0.3") + rdp_epsilon(many, Decimal("0.00005"))
    assert spent.budget.epsilon < Decimal("0.3") + 20
    # no δ room: basic composition only (and the account then refuses the δ)
    assert compose(Budget.zero(), many, Decimal(0)).budget == Budget.of("20", "0.00004")


def test_pure_epsilon_is_exact_decimal_basic_composition() -> None:
    spent = compose(Budget.of("0.1") + Budget.of("0.2"), [], Decimal("0.00005"))
    assert spent.budget == Budget.of("0.3") and spent.rule == "basic"


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


def test_the_saving_table_in_docs_is_what_the_library_computes() -> None:
    """docs/dp.md's table of RDP against basic composition: every row recomputed from dp-accounting."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "dp.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \(.*?\) \| ([\d.]+) \|$", text, re.M)
    assert [int(k) for k, _, _ in rows] == [5, 10, 20, 50, 100]
    sigma = dp_accounting.get_sigma_gaussian(0.5, 1e-6)
    for k, basic, rdp in rows:
        accountant = RdpAccountant()
        accountant.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma), int(k)))
        library = accountant.get_epsilon(5e-5)
        assert Decimal(basic) == Decimal("0.5") * int(k)  # basic composition: Σε
        assert float(rdp) == pytest.approx(library, abs=0.005), (k, library)
        ours = rdp_epsilon([GaussianGroup(Budget.of("0.5", "0.000001"), int(k))], Decimal("0.00005"))
        assert f"{ours:.2f}" == rdp and ours < Decimal(basic)  # what an account reports, and the saving


def test_allowance_alerts_measure_rdp_accounts_by_epsilon_not_by_the_conversion_delta() -> None:
    from lab.budgets.accounts import AccountState
    from lab.budgets.risk import alert_level

    lifetime, year = Budget.of("8", "0.00005"), Budget.of("5", "0.00003")

    def fraction(pure: Budget, gaussian: list[GaussianGroup]) -> Decimal:
        spent = compose(pure, gaussian, year.delta)
        return AccountState("d", lifetime, "2026", year, spent, spent).period_fraction()

    five = [GaussianGroup(Budget.of("0.5", "0.000001"), 5)]  # RDP: ε ≈ 1.06 at the year's whole δ
    assert compose(Budget.zero(), five, year.delta).rule == "rdp"
    assert fraction(Budget.zero(), five) < Decimal("0.25")
    assert alert_level(fraction(Budget.zero(), five)) is None
    # basic composition: δ consumed counts (20 of 30 millionths of δ is past 50 %)
    assert fraction(Budget.of("0.5", "0.00002"), []) == Decimal("0.00002") / year.delta
    assert alert_level(fraction(Budget.of("0.5", "0.00002"), [])) == 50
