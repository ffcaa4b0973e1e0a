"""One privacy-loss account per dataset: shared by every project, charged atomically with the record.

The sample ``population`` policy declares an account of ε = 12 for life and ε = 8 per calendar
year under basic composition; each project's own grant is capped at ε = 5. ``health_visits``
declares ε = 8 for life and ε = 5 a year under zCDP (δ 5·10⁻⁵ and 3·10⁻⁵ for the conversion).
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from lab.budgets import Budget
from lab.budgets.accounting import Charge, compose
from lab.budgets.accounts import AccountState, state
from lab.budgets.models import DatasetAccountRow, DatasetChargeRow
from lab.budgets.risk import dataset_risk
from lab.catalog.service import CatalogReader
from lab.errors import BudgetExhausted
from lab.identity import Principal
from lab.ledger.models import LedgerEntryRow
from lab.projects.access import Ask, authorize, commit_result, no_channel_params
from lab.projects.models import BudgetRow, ProjectRow
from lab.projects.views import budgets_of
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.factories import active_project
from tests.integration._projects import import_catalog

pytestmark = pytest.mark.integration


def project(
    runtime: Runtime, organization: str, epsilon: str = "5", delta: str = "0", *, dataset: str = "population"
) -> str:
    grant = {"dp": {"epsilon": epsilon, "delta": delta, "epsilon_per_query": "1", "delta_per_query": delta}}
    pid = active_project(runtime, {dataset: grant}, ["alice", "bob"])
    with runtime.transaction() as s:
        s.execute(update(ProjectRow).where(ProjectRow.id == pid).values(organization=organization))
    return pid


def spend(
    runtime: Runtime,
    pid: str,
    epsilon: str,
    delta: str = "0",
    *,
    gaussian: bool = False,
    dataset: str = "population",
) -> str:
    """authorize + commit_result in one transaction, as a channel does."""
    principal = Principal.from_groups("alice", ["operator"])
    ask = Ask.spend(epsilon, delta, gaussian=gaussian)
    with runtime.transaction() as s:
        access = authorize(s, principal, pid, dataset, "dp", "query", ask, check=no_channel_params)
        record = commit_result(
            s,
            runtime.ledger(s),
            access,
            cost=Budget.of(epsilon, delta),
            parameters={"epsilon": epsilon},
            result_digest=hashlib.sha256(pid.encode()).hexdigest(),
            gaussian=gaussian,
        )
        return record.id


def snapshot(runtime: Runtime) -> dict[str, object]:
    """Everything a charge touches: budgets, the account, its charges, records and ledger entries."""
    with runtime.transaction() as s:
        budgets = sorted(
            (b.project_id, b.epsilon_spent, b.spends) for b in s.execute(select(BudgetRow)).scalars()
        )
        account = s.get(DatasetAccountRow, "population")
        return {
            "budgets": budgets,
            "account": (account.epsilon_spent, account.spends) if account else None,
            "charges": s.execute(select(func.count()).select_from(DatasetChargeRow)).scalar_one(),
            "records": s.execute(select(func.count()).select_from(DerivedRecordRow)).scalar_one(),
            "entries": s.execute(
                select(func.count())
                .select_from(LedgerEntryRow)
                .where(LedgerEntryRow.kind == "derived.record")
            ).scalar_one(),
        }


def test_two_operators_within_their_budgets_are_refused_once_the_dataset_account_is_spent(
    runtime: Runtime,
) -> None:
    import_catalog(runtime, ["population"])
    first, second = project(runtime, "Alpha Data Ltd."), project(runtime, "Beta Analytics Co.")
    for _ in range(5):
        spend(runtime, first, "1")
    for _ in range(3):
        spend(runtime, second, "1")
    # the second project has ε = 2 left of its own, but the year's allowance of the dataset (8) is spent
    with pytest.raises(BudgetExhausted, match="privacy-loss account of dataset population") as exc:
        spend(runtime, second, "0.5")
    problem = exc.value.problem()
    assert problem["status"] == 409 and problem["code"] == "budget-exhausted"
    assert problem["account"]["kind"] == "dataset" and problem["account"]["dataset"] == "population"
    assert problem["account"]["scope"] == "period"
    assert problem["remaining"] == {"epsilon": "0", "delta": "0.00003"}
    with runtime.transaction() as s:
        own = s.execute(select(BudgetRow).where(BudgetRow.project_id == second)).scalar_one()
        assert own.epsilon_spent == "3"
        acct = state(s, "population", CatalogReader(s).get("population").policy.account)  # type: ignore[arg-type]
        assert acct.spent.budget == Budget.of("8") and acct.period_remaining.epsilon == 0
        orgs = dict(
            s.execute(
                select(DatasetChargeRow.organization, func.count()).group_by(DatasetChargeRow.organization)
            ).all()
        )
    assert orgs == {"Alpha Data Ltd.": 5, "Beta Analytics Co.": 3}


def test_a_refused_release_charges_nothing_anywhere(runtime: Runtime) -> None:
    import_catalog(runtime, ["population"])
    first, second = project(runtime, "Alpha Data Ltd."), project(runtime, "Beta Analytics Co.")
    third = project(runtime, "Gamma Insights")
    for _ in range(5):
        spend(runtime, first, "1")
    spend(runtime, second, "1")
    spend(runtime, second, "1")
    spend(runtime, second, "0.5")
    principal = Principal.from_groups("alice", ["operator"])
    # authorize() lets ε = 0.5 through (7.5 of 8 spent); a concurrent release of the third project
    # commits first; the commit is then refused under the account's lock and rolls back whole
    with runtime.transaction() as s:
        pending = authorize(
            s, principal, second, "population", "dp", "query", Ask.spend("0.5"), check=no_channel_params
        )
    spend(runtime, third, "0.5")
    before = snapshot(runtime)
    with pytest.raises(BudgetExhausted, match="privacy-loss account") as exc, runtime.transaction() as s:
        commit_result(
            s, runtime.ledger(s), pending, cost=Budget.of("0.5"), parameters={}, result_digest="0" * 64
        )
    assert exc.value.extra["account"]["dataset"] == "population"
    assert snapshot(runtime) == before
    with pytest.raises(BudgetExhausted):  # and refused before any computation from now on
        spend(runtime, second, "0.1")
    assert snapshot(runtime) == before
    with runtime.transaction() as s:
        assert runtime.ledger(s).verify().ok


@pytest.mark.slow
def test_fifty_concurrent_spends_from_three_projects_never_overspend_either_account(runtime: Runtime) -> None:
    import_catalog(runtime, ["population"])
    # Alpha's own budget is ε = 1, Beta's and Gamma's ε = 5: 11 in all, but the dataset's allowance
    # for the year is ε = 8: a thread may be refused by either kind of limit, in any order
    budgets = {project(runtime, "Alpha Data Ltd.", epsilon="1"): Decimal(1)}
    budgets |= {project(runtime, org): Decimal(5) for org in ("Beta Analytics Co.", "Gamma Insights")}
    pids = list(budgets)

    def attempt(i: int) -> tuple[str, str]:
        pid = pids[i % 3]
        try:
            spend(runtime, pid, "0.5")
        except BudgetExhausted as exc:
            return pid, "dataset" if "account" in exc.extra else "project"
        return pid, "charged"

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert [o for _, o in outcomes].count("charged") == 16
    snap = snapshot(runtime)
    assert snap["account"] == ("8", 16) and snap["charges"] == snap["records"] == snap["entries"] == 16
    spent = {pid: Decimal(e) for pid, e, _ in snap["budgets"]}  # type: ignore[attr-defined]
    assert sum(spent.values()) == 8 and all(spent[p] <= budgets[p] for p in pids)
    # a refusal by the project's own budget only once that budget was full; the rest by the account
    assert all(spent[pid] == budgets[pid] for pid, o in outcomes if o == "project")
    assert any(o == "dataset" for _, o in outcomes)
    with runtime.transaction() as s:
        per_project = dict(
            s.execute(
                select(DatasetChargeRow.project_id, func.count()).group_by(DatasetChargeRow.project_id)
            ).all()
        )
        assert runtime.ledger(s).verify().ok
    # both accounts agree, project by project
    assert {p: Decimal(n) / 2 for p, n in per_project.items()} == {p: e for p, e in spent.items() if e}


def account_state(runtime: Runtime, dataset: str) -> AccountState:
    with runtime.transaction() as s:
        account = CatalogReader(s).get(dataset).policy.account
        assert account is not None
        return state(s, dataset, account)


def test_gaussian_releases_on_a_zcdp_account_match_the_library(runtime: Runtime) -> None:
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    import_catalog(runtime, ["health_visits"])
    hv = "health_visits"
    pids = [project(runtime, org, "3", "0.00001", dataset=hv) for org in ("A", "B", "C")]
    k = 12
    for i in range(k):
        spend(runtime, pids[i % 3], "0.5", "0.000001", gaussian=True, dataset=hv)
    accountant = RdpAccountant()
    sigma = dp_accounting.get_sigma_gaussian(0.5, 1e-6)
    accountant.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma), k))
    acct = account_state(runtime, hv)
    expected = accountant.get_epsilon(float(acct.limit.delta))  # δ = 0.00005, the lifetime δ
    assert acct.spent.rule == "zcdp" and acct.spent.budget.delta == acct.limit.delta
    assert abs(float(acct.spent.budget.epsilon) - expected) < 1e-5
    assert acct.spent.budget.epsilon < Decimal("0.5") * k  # the saving over basic composition (ε = 6)
    with runtime.transaction() as s:
        risk = dataset_risk(s, hv)
    assert risk is not None and len(risk.steps) == k
    # the risk view's chart follows the account's own figure, not basic composition
    assert risk.steps[-1].accounted == acct.spent.budget and risk.steps[-1].cumulative == Budget.of(
        "6", "0.000012"
    )
    figures = [step.accounted.epsilon for step in risk.steps]
    assert figures == sorted(figures) and len(set(figures)) == k
    # the year's δ is the zCDP conversion δ, not δ consumed: ε ≈ 1.78 of 5 raises no alert
    assert acct.period_spent.rule == "zcdp" and risk.alert is None
    # a pure-ε release adds ρ = ε²/2 to Σρ: the library composing it as one more Gaussian agrees
    spend(runtime, pids[0], "0.25", dataset=hv)
    accountant.compose(dp_accounting.GaussianDpEvent(1 / math.sqrt(2 * 0.25**2 / 2)))
    after = account_state(runtime, hv)
    assert abs(float(after.spent.budget.epsilon) - accountant.get_epsilon(5e-5)) < 1e-5
    # the price of one rule: under zCDP a lone pure release costs more than its ε (≈ 0.30 here)
    assert after.spent.budget.epsilon > acct.spent.budget.epsilon + Decimal("0.25")


def test_a_zcdp_account_reports_and_refuses_by_zcdp_even_where_basic_composition_is_smaller(
    runtime: Runtime,
) -> None:
    import_catalog(runtime, ["health_visits"])
    hv = "health_visits"
    first, second = (project(runtime, org, "3", "0.00001", dataset=hv) for org in ("Alpha", "Beta"))
    spend(runtime, first, "1", dataset=hv)  # ρ = 0.5: ε ≈ 4.47 at the year's δ, of 5
    acct = account_state(runtime, hv)
    assert acct.spent.rule == acct.period_spent.rule == "zcdp"
    assert acct.period_spent.budget.epsilon > Decimal("4.4")  # basic composition would say 1
    before = snapshot_of(runtime, hv)
    # basic composition would be ε = 2 of the year's 5; zCDP says ≈ 6.72: refused, nothing charged
    with pytest.raises(BudgetExhausted, match="privacy-loss account of dataset health_visits") as exc:
        spend(runtime, second, "1", dataset=hv)
    assert exc.value.extra["account"] == {
        "kind": "dataset",
        "dataset": hv,
        "scope": "period",
        "period": acct.period,
        "composition": "zcdp",
    }
    assert snapshot_of(runtime, hv) == before
    # the operators' report asks the account: ε ≈ 0.53 is left, yet a release of ε = 0.5 would not fit
    small = project(runtime, "Gamma", "0.5", dataset=hv)
    with runtime.transaction() as s:
        (row,) = budgets_of(s, small)
    assert (row.dataset_composition, row.epsilon_remaining, row.binding) == ("zcdp", "0.5", "dataset")
    assert row.dataset_epsilon_remaining is not None and Decimal(row.dataset_epsilon_remaining) > Decimal(
        "0.5"
    )
    # a small Gaussian release still fits Σρ (ε ≈ 4.51): the account refuses by ρ, not by Σε
    spend(runtime, second, "0.5", "0.000001", gaussian=True, dataset=hv)
    after = account_state(runtime, hv)
    assert after.period_spent.rule == "zcdp" and after.period_spent.budget.epsilon < 5
    assert (
        after.period_spent.budget.epsilon
        == compose(
            "zcdp",
            [Charge(Budget.of("1")), Charge(Budget.of("0.5", "0.000001"), gaussian=True)],
            Decimal("0.00003"),
        ).budget.epsilon
    )


def test_a_basic_account_reports_and_refuses_by_basic_composition_even_where_zcdp_is_smaller(
    runtime: Runtime,
) -> None:
    import_catalog(runtime, ["population"])
    pids = [project(runtime, org, "5", "0.00001") for org in ("A", "B", "C", "D")]
    for i in range(16):  # Σε = 8, the year's allowance; zCDP would say ε ≈ 2.02
        spend(runtime, pids[i % 4], "0.5", "0.000001", gaussian=True)
    acct = account_state(runtime, "population")
    assert acct.spent.rule == acct.period_spent.rule == "basic"
    assert acct.period_spent.budget == Budget.of("8", "0.000016")
    gaussians = [Charge(Budget.of("0.5", "0.000001"), gaussian=True, count=16)]
    assert compose("zcdp", gaussians, acct.period_limit.delta).budget.epsilon < Decimal("2.1")
    with pytest.raises(BudgetExhausted, match="privacy-loss account") as exc:
        spend(runtime, pids[0], "0.5", "0.000001", gaussian=True)
    assert exc.value.extra["account"]["composition"] == "basic"
    assert exc.value.extra["account"]["scope"] == "period"
    with runtime.transaction() as s:
        risk = dataset_risk(s, "population")
    assert risk is not None and [st.accounted for st in risk.steps] == [st.cumulative for st in risk.steps]


def snapshot_of(runtime: Runtime, dataset: str) -> tuple[object, ...]:
    with runtime.transaction() as s:
        account = s.get(DatasetAccountRow, dataset)
        charges = s.execute(
            select(func.count()).select_from(DatasetChargeRow).where(DatasetChargeRow.dataset_id == dataset)
        ).scalar_one()
        budgets = sorted((b.project_id, b.epsilon_spent) for b in s.execute(select(BudgetRow)).scalars())
        return (account.epsilon_spent if account else None, charges, budgets)
