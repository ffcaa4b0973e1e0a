"""DP training without I/O: noisy sizes, naive Bayes from noisy statistics, leak warnings as errors."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diffprivlib.utils import PrivacyLeakWarning

from lab.catalog.policy import load_policy
from lab.dp import training
from lab.dp.plan import plan_training
from lab.dp.spec import TrainSpec
from lab.errors import PrivacyLeak

ROOT = Path(__file__).resolve().parents[2]
POPULATION = load_policy(ROOT / "policies" / "population.yaml")


def plan(model: str, target: str) -> Any:
    spec = TrainSpec.model_validate(
        {
            "dataset": "population",
            "model": model,
            "features": ["age", "monthly_income"],
            "target": target,
            "epsilon": "1",
        }
    )
    return plan_training(spec, POPULATION)


def data(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    x = np.column_stack([rng.randint(18, 80, n), rng.uniform(0, 30000, n)]).astype(float)
    return x, (x[:, 1] > 12000).astype(np.int64)


def test_a_diffprivlib_privacy_leak_warning_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    original = training.LinearRegression.fit

    def leaky(self: Any, x: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        warnings.warn("bounds computed from the data", PrivacyLeakWarning, stacklevel=2)
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(training.LinearRegression, "fit", leaky)  # the third-party library misbehaving
    spec = TrainSpec.model_validate(
        {
            "dataset": "population",
            "model": "linear",
            "features": ["age"],
            "target": "monthly_income",
            "epsilon": "1",
        }
    )
    x, _ = data()
    with pytest.raises(PrivacyLeak):
        training.fit(plan_training(spec, POPULATION), x[:, :1], x[:, 1], np.random.RandomState(1))


def test_regressions_train_on_a_released_noisy_size() -> None:
    x, y = data()
    sizes = {
        training.fit(plan("logistic", "employed"), x, y, np.random.RandomState(s))["noisy_rows"]
        for s in range(6)
    }
    assert len(sizes) > 1 and all(abs(n - 400) < 200 for n in sizes)


def test_naive_bayes_priors_come_from_noisy_counts_not_the_row_count() -> None:
    x, y = data()
    p = plan("gaussian_nb", "employed")
    totals = []
    for seed in range(8):
        params = training.fit(p, x, y, np.random.RandomState(seed))
        counts = params["noisy_class_counts"]
        assert params["class_prior"] == pytest.approx(np.maximum(counts, 1) / np.maximum(counts, 1).sum())
        totals.append(sum(counts))
    assert len(set(totals)) > 1 and totals != [400] * 8
    assert np.array(params["theta"]).shape == (2, 2) and np.all(np.array(params["var"]) > 0)


def test_logistic_regression_regularizes_its_intercept_so_the_noisy_objective_stays_bounded() -> None:
    """Objective perturbation needs a regularizer strongly convex in every weight. scikit-learn leaves
    a fitted intercept unregularized, so with noise larger than the loss's slope the noisy objective
    had no minimum and the optimizer returned intercepts of about -1e17 on small data.
    The intercept is now the weight of a constant feature, regularized like the others."""
    rng = np.random.RandomState(0)
    x = rng.randint(18, 80, 41).astype(float).reshape(-1, 1)
    y = np.arange(41, dtype=np.int64) % 2
    spec = TrainSpec.model_validate(
        {
            "dataset": "population",
            "model": "logistic",
            "features": ["age"],
            "target": "employed",
            "epsilon": "1",
        }
    )
    p = plan_training(spec, POPULATION)
    fitted = [training.fit(p, x, y, np.random.RandomState(s)) for s in range(30)]
    assert all(abs(f["intercept"]) < 1e3 and abs(f["coef"][0]) < 1e3 for f in fitted), [
        f["intercept"] for f in fitted
    ]
    model = training._LogisticRegression(
        epsilon=1.0, data_norm=1.0, max_iter=10, random_state=None, accountant=training.BudgetAccountant()
    )
    assert model.fit_intercept is False  # the intercept is an appended constant column instead
