"""DP model training with diffprivlib (``LogisticRegression``, ``LinearRegression``, ``GaussianNB``).

* Privacy unit: diffprivlib's guarantee is per training row, so training keeps **one row per entity**
  (the deterministic-random choice of :mod:`lab.dp.engine` with ``k = 1``).
* Bounds come from the policy (a spec may narrow them). Features are clamped to them and, for the
  regressions, rescaled to ``[0, 1]`` (so ``data_norm = √d`` for logistic regression); coefficients
  are converted back to raw feature units before they are stored, so a scorer computes
  ``coef · clamp(x, bounds) + intercept`` on raw values.
* Classes come from the policy (domain or integer bounds), never from the data. One data-independent
  anchor row per class (linear: one row) at the bounds' midpoints is appended, so training never
  fails — and leaks nothing — because the selected rows miss a class or are empty.
* Datasets larger than ``MAX_TRAINING_ROWS`` are Bernoulli-sampled by entity (see the engine).

The stored ``ModelRow.params`` shapes are documented in ``docs/dp.md`` (the HE channel reads them).
"""

from __future__ import annotations

import math
import secrets
import uuid
import warnings
from typing import Any

import numpy as np
from diffprivlib import BudgetAccountant
from diffprivlib.models import GaussianNB, LinearRegression, LogisticRegression
from sklearn import linear_model as sk_linear
from sklearn.exceptions import ConvergenceWarning
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lab.artifacts.models import ModelRow
from lab.artifacts.release import reveals
from lab.budgets import Budget
from lab.db.base import utcnow
from lab.dp.mechanisms import Rng
from lab.dp.plan import TrainPlan, plan_training
from lab.dp.service import digest, engine_for, prepare, require_reader
from lab.dp.spec import TrainSpec, canonical
from lab.identity import Principal
from lab.projects.access import authorize, budget_remaining, commit_result
from lab.runtime import Runtime

MAX_TRAINING_ROWS = 2_000_000


class _LogisticRegression(LogisticRegression):  # type: ignore[misc]
    """diffprivlib 0.6.6's ``LogisticRegression`` passes ``multi_class="ovr"`` to scikit-learn, which 1.8
    removed; this shim builds the same estimator without it (diffprivlib's own ``fit`` is unchanged)."""

    def __init__(
        self,
        *,
        epsilon: float,
        data_norm: float,
        max_iter: int,
        random_state: Rng,
        accountant: BudgetAccountant,
    ) -> None:
        sk_linear.LogisticRegression.__init__(
            self,
            C=1.0,
            tol=1e-4,
            fit_intercept=True,
            random_state=random_state,
            solver="lbfgs",
            max_iter=max_iter,
        )
        self.epsilon, self.data_norm, self.classes_ = epsilon, data_norm, None
        self.accountant = BudgetAccountant.load_default(accountant)


def _secure_rng() -> np.random.RandomState:
    return np.random.RandomState(np.random.MT19937(np.random.SeedSequence(secrets.randbits(128))))


def fit(plan: TrainPlan, x: np.ndarray, y: np.ndarray, rng: Rng = None) -> dict[str, Any]:
    """Train ``plan``'s model on clamped ``x`` (raw units) and ``y``; returns the params to store."""
    spec, feats = plan.spec, plan.spec.features
    rng = rng if rng is not None else _secure_rng()
    lo = np.array([plan.bounds[f][0] for f in feats])
    hi = np.array([plan.bounds[f][1] for f in feats])
    width = hi - lo
    x = np.clip(x, lo, hi) if len(x) else x.reshape(0, len(feats))
    eps = float(spec.epsilon)
    bounds = {f: [float(a), float(b)] for f, a, b in zip(feats, lo, hi, strict=True)}
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        # diffprivlib 0.6.6 still passes L-BFGS-B options that SciPy deprecates; nothing to act on here
        warnings.filterwarnings(
            "ignore", message=r".*L-BFGS-B solver are deprecated", category=DeprecationWarning
        )
        if spec.model == "gaussian_nb":
            params = _naive_bayes(plan, x, y, lo, hi, eps, rng)
        else:
            scaled = (x - lo) / width
            if spec.model == "linear":
                ylo, yhi = plan.bounds[spec.target]
                xs = np.vstack([scaled, np.full((1, len(feats)), 0.5)])
                ys = np.append(np.clip(y.astype(np.float64), ylo, yhi), (ylo + yhi) / 2)
                model: Any = LinearRegression(
                    epsilon=eps,
                    bounds_X=(np.zeros(len(feats)), np.ones(len(feats))),
                    bounds_y=(ylo, yhi),
                    random_state=rng,
                    accountant=BudgetAccountant(),
                )
                model.fit(xs, ys)
                w, b = np.ravel(model.coef_), float(np.ravel([model.intercept_])[0])
                extra: dict[str, Any] = {"target_bounds": [ylo, yhi]}
            else:
                index = {c: i for i, c in enumerate(plan.classes)}
                keep = np.array([v in index for v in y.tolist()], dtype=bool)
                yi = np.array([index[v] for v in y[keep].tolist()], dtype=np.int64)
                xs = np.vstack([scaled[keep], np.full((2, len(feats)), 0.5)])
                yi = np.append(yi, [0, 1])
                model = _LogisticRegression(
                    epsilon=eps,
                    data_norm=math.sqrt(len(feats)),
                    max_iter=200,
                    random_state=rng,
                    accountant=BudgetAccountant(),
                )
                model.fit(xs, yi)
                w, b = np.ravel(model.coef_[0]), float(model.intercept_[0])
                extra = {"classes": list(plan.classes), "link": "logistic"}
            coef = w / width
            params = {
                "coef": [float(c) for c in coef],
                "intercept": float(b - np.sum(w * lo / width)),
                **extra,
            }
    if any(issubclass(c.category, ConvergenceWarning) for c in caught):
        notes.append("the optimizer stopped before converging (common at small ε)")
    return {**params, "features": list(feats), "bounds": bounds, "notes": notes}


def _naive_bayes(
    plan: TrainPlan, x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, eps: float, rng: Rng
) -> dict[str, Any]:
    index = {c: i for i, c in enumerate(plan.classes)}
    keep = np.array([v in index for v in y.tolist()], dtype=bool)
    yi = np.array([index[v] for v in y[keep].tolist()], dtype=np.int64)
    k = len(plan.classes)
    xs = np.vstack([x[keep], np.tile((lo + hi) / 2, (k, 1))])
    yi = np.append(yi, np.arange(k))
    model = GaussianNB(epsilon=eps, bounds=(lo, hi), random_state=rng, accountant=BudgetAccountant())
    model.partial_fit(xs, yi, classes=np.arange(k))
    return {
        "classes": list(plan.classes),
        "theta": model.theta_.tolist(),
        "var": model.var_.tolist(),
        "class_prior": model.class_prior_.tolist(),
    }


def model_out(row: ModelRow, *, reveal: bool = True) -> dict[str, Any]:
    """A model as the API shows it; parameters only if ``reveal`` (:func:`lab.artifacts.release.reveals`)."""
    params = row.params if reveal else {}
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "project": row.project_id,
        "dataset": row.dataset_id,
        "version": row.dataset_version,
        "features": row.features,
        "target": row.target,
        "coef": params.get("coef"),
        "intercept": params.get("intercept"),
        "classes": params.get("classes"),
        "params": params,
        "epsilon": row.epsilon,
        "record_id": row.record_id,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }


def train(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    project_id: str,
    spec: TrainSpec,
    rng: Rng = None,
) -> dict[str, Any]:
    """Train a DP model, charge its ε, store it as a project artifact and return its parameters."""
    access = authorize(session, principal, project_id, spec.dataset, "dp", "train", {"epsilon": spec.epsilon})
    plan = plan_training(spec, access.policy)
    source, cohort = prepare(runtime, session, access, spec.cohort, 1)
    x, y = engine_for(runtime).training_rows(
        plan, source, cohort, MAX_TRAINING_ROWS, access.dataset.row_count
    )
    params = fit(plan, x, y, rng)
    record = commit_result(
        session,
        runtime.ledger(session),
        access,
        cost=plan.cost,
        parameters={"spec": canonical(spec)},
        result_digest=digest(params),
    )
    row = ModelRow(
        id="m_" + uuid.uuid4().hex,
        project_id=project_id,
        name=spec.name or f"{spec.model}_{spec.target}",
        kind=spec.model,
        dataset_id=access.dataset.dataset,
        dataset_version=access.dataset.version,
        features=list(spec.features),
        target=spec.target,
        params=params,
        epsilon=plan.cost.as_strings()["epsilon"],
        created_by=principal.name,
        created_at=utcnow(),
        record_id=record.id,
        release="dp",
    )
    session.add(row)
    session.flush()
    left = budget_remaining(session, project_id, spec.dataset) or Budget.zero()
    return {**model_out(row), "epsilon_spent": row.epsilon, "remaining": left.as_strings()}


def list_models(session: Session, principal: Principal, project_id: str) -> list[dict[str, Any]]:
    """The project's DP models, then bureau-published ones (parameters as
    :func:`lab.artifacts.release.reveals` decides)."""
    require_reader(session, principal, project_id)
    rows = session.execute(
        select(ModelRow)
        .where(or_(ModelRow.project_id == project_id, ModelRow.project_id.is_(None)))
        .order_by(ModelRow.created_at)
    ).scalars()
    return [model_out(r, reveal=reveals(session, principal, project_id, "model", r)) for r in rows]
