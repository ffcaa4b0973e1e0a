"""DP model training: diffprivlib ``LogisticRegression`` / ``LinearRegression`` and a naive Bayes
built from the lab's own noisy sufficient statistics.

* Privacy unit: one entity, added or removed. Training keeps **one row per entity** (the
  deterministic-random choice of :mod:`lab.dp.engine` with ``k = 1``).
* **Naive Bayes** releases nothing derived from the exact row count: per class a geometric count,
  per class and feature a fixed-point centered sum and sum of squares (:mod:`lab.mechanisms`);
  classes are disjoint, so ε is split only across the three statistics and the features
  (counts ε/3, each feature's sums ε/(3d) each). Means, variances and ``class_prior`` are
  post-processing of those noisy values (the prior is the noisy counts, floored at 1, normalized).
* **Regressions**: diffprivlib analyses them for neighbouring datasets of equal, public size. The
  lab first draws a noisy size ``n' = max(0, n + Z)`` (two-sided geometric, ``ε/10``), then trains
  on exactly ``n'`` rows — a uniformly random ``n'``-subset when ``n' < n``, the rows plus ``n' - n``
  data-independent anchor rows when ``n' > n`` — with the remaining ``9ε/10``. An added or removed
  entity then becomes a replaced row (for the subset, by the usual coupling), which is what
  diffprivlib's guarantee covers. ``n'`` is released in the model's params (``noisy_rows``).
* diffprivlib's ``PrivacyLeakWarning`` is an error (:class:`~lab.errors.PrivacyLeak`): nothing is
  stored, released or charged.
* Bounds come from the policy (a spec may narrow them). Features are clamped to them and, for the
  regressions, rescaled to ``[0, 1]``; logistic regression's intercept is the weight of an appended
  constant 1, regularized like the others as objective perturbation requires (``data_norm = √(d + 1)``,
  see :class:`_LogisticRegression`); coefficients are converted back to raw feature units before
  they are stored, so a scorer computes ``coef · clamp(x, bounds) + intercept`` on raw values.
* Classes come from the policy (domain or integer bounds), never from the data. Regressions append
  data-independent anchor rows (one per class; linear: one) at the bounds' midpoints, so training
  never fails — and leaks nothing — because the selected rows miss a class or are empty.
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
from diffprivlib.models import LinearRegression, LogisticRegression
from diffprivlib.utils import PrivacyLeakWarning
from sklearn import linear_model as sk_linear
from sklearn.exceptions import ConvergenceWarning
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lab.artifacts.models import ModelRow
from lab.artifacts.release import reveals
from lab.budgets import Budget
from lab.catalog.visibility import shown_size
from lab.db.base import utcnow
from lab.dp.plan import TrainPlan, plan_training
from lab.dp.schemas import ModelOut
from lab.dp.service import digest, reauthorize, source_for
from lab.dp.spec import TrainSpec, canonical
from lab.dp.workers import Offload, inline, training_job
from lab.errors import PrivacyLeak
from lab.identity import Principal
from lab.mechanisms import GeometricCount, Rng, count_noise, sum_noise
from lab.projects.access import (
    Ask,
    authorize,
    budget_remaining,
    commit_result,
    no_channel_params,
    readable_project,
)
from lab.runtime import Runtime

MAX_TRAINING_ROWS = 2_000_000


class _LogisticRegression(LogisticRegression):  # type: ignore[misc]
    """diffprivlib 0.6.6's ``LogisticRegression`` passes ``multi_class="ovr"`` to scikit-learn, which 1.8
    removed; this shim builds the same estimator without it (diffprivlib's own ``fit`` is unchanged).

    It never fits a separate intercept: scikit-learn's loss leaves the intercept unregularized, while
    objective perturbation (Chaudhuri, Monteleoni & Sarwate 2011, which diffprivlib's ``Vector``
    implements) needs the regularizer strongly convex in *every* parameter. With a free intercept the
    noisy objective is unbounded below whenever the noise term outweighs the loss's slope, and the
    optimizer walks off to intercepts of -1e17 (seen at n ≈ 40, ε = 1). The caller appends a constant
    column of ones instead (counted in ``data_norm``), so the intercept is an ordinary, regularized weight.
    """

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
            fit_intercept=False,
            random_state=random_state,
            solver="lbfgs",
            max_iter=max_iter,
        )
        self.epsilon, self.data_norm, self.classes_ = epsilon, data_norm, None
        self.accountant = BudgetAccountant.load_default(accountant)


def _secure_rng() -> np.random.RandomState:
    return np.random.RandomState(np.random.MT19937(np.random.SeedSequence(secrets.randbits(128))))


#: Share of a regression's ε spent on its noisy training-set size.
SIZE_SHARE = 0.1


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
        warnings.simplefilter("error", PrivacyLeakWarning)
        # diffprivlib 0.6.6 still passes L-BFGS-B options that SciPy deprecates; nothing to act on here
        warnings.filterwarnings(
            "ignore", message=r".*L-BFGS-B solver are deprecated", category=DeprecationWarning
        )
        try:
            if spec.model == "gaussian_nb":
                params = naive_bayes(plan, x, y, lo, hi, eps, rng)
            else:
                params = _regression(plan, x, y, lo, width, eps, rng)
        except PrivacyLeakWarning as exc:
            raise PrivacyLeak(f"training refused: diffprivlib reported a privacy leak ({exc})") from None
    if any(issubclass(c.category, ConvergenceWarning) for c in caught):
        notes.append("the optimizer stopped before converging (common at small ε)")
    return {**params, "features": list(feats), "bounds": bounds, "notes": notes}


def noisy_size(n: int, epsilon: float, rng: Rng) -> int:
    """``max(0, n + Z)`` with two-sided geometric ``Z`` at ``epsilon`` (sensitivity 1)."""
    return max(0, int(GeometricCount(epsilon, 1).randomise(np.array([n]), rng)[0]))


def _resize(
    x: np.ndarray, y: np.ndarray, size: int, pad_x: np.ndarray, pad_y: np.ndarray, rng: Rng
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``size`` rows: a uniformly random subset, or every row plus cycled anchor rows."""
    n = len(x)
    if size <= n:
        keep = rng.permutation(n)[:size]
        return x[keep], y[keep]
    extra = np.arange(size - n) % len(pad_x)
    return np.vstack([x, pad_x[extra]]), np.concatenate([y, pad_y[extra]])


def _regression(
    plan: TrainPlan, x: np.ndarray, y: np.ndarray, lo: np.ndarray, width: np.ndarray, eps: float, rng: Rng
) -> dict[str, Any]:
    spec, feats = plan.spec, plan.spec.features
    d = len(feats)
    scaled = (x - lo) / width
    size_eps, model_eps = eps * SIZE_SHARE, eps * (1 - SIZE_SHARE)
    if spec.model == "linear":
        ylo, yhi = plan.bounds[spec.target]
        yv = np.clip(y.astype(np.float64), ylo, yhi)
        anchors_x, anchors_y = np.full((1, d), 0.5), np.array([(ylo + yhi) / 2])
        size = noisy_size(len(scaled), size_eps, rng)
        xs, ys = _resize(scaled, yv, size, anchors_x, anchors_y, rng)
        model: Any = LinearRegression(
            epsilon=model_eps,
            bounds_X=(np.zeros(d), np.ones(d)),
            bounds_y=(ylo, yhi),
            random_state=rng,
            accountant=BudgetAccountant(),
        )
        model.fit(np.vstack([xs, anchors_x]), np.append(ys, anchors_y))
        w, b = np.ravel(model.coef_), float(np.ravel([model.intercept_])[0])
        extra: dict[str, Any] = {"target_bounds": [ylo, yhi]}
    else:
        index = {c: i for i, c in enumerate(plan.classes)}
        keep = np.array([v in index for v in y.tolist()], dtype=bool)
        yi = np.array([index[v] for v in y[keep].tolist()], dtype=np.int64)
        anchors_x, anchors_y = np.full((2, d), 0.5), np.array([0, 1], dtype=np.int64)
        size = noisy_size(len(yi), size_eps, rng)
        xs, ys = _resize(scaled[keep], yi, size, anchors_x, anchors_y, rng)
        model = _LogisticRegression(
            epsilon=model_eps,
            data_norm=math.sqrt(d + 1),  # features in [0, 1] and the constant 1 of the intercept
            max_iter=200,
            random_state=rng,
            accountant=BudgetAccountant(),
        )
        xa = np.vstack([xs, anchors_x])
        model.fit(np.hstack([xa, np.ones((len(xa), 1))]), np.append(ys, anchors_y))
        w, b = np.ravel(model.coef_[0])[:d], float(np.ravel(model.coef_[0])[d])
        extra = {"classes": list(plan.classes), "link": "logistic"}
    coef = w / width
    return {
        "coef": [float(c) for c in coef],
        "intercept": float(b - np.sum(w * lo / width)),
        "noisy_rows": size,
        **extra,
    }


def naive_bayes(
    plan: TrainPlan, x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, eps: float, rng: Rng
) -> dict[str, Any]:
    """Gaussian naive Bayes from noisy per-class counts, centered sums and sums of squares."""
    k, d = len(plan.classes), len(plan.spec.features)
    index = {c: i for i, c in enumerate(plan.classes)}
    labels = np.array([index.get(v, -1) for v in y.tolist()], dtype=np.int64)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    counts = count_noise(eps / 3, 0.0, 1).randomise(
        np.array([int(np.sum(labels == c)) for c in range(k)], dtype=object), rng
    )
    n = np.maximum(counts.astype(np.float64), 1.0)
    theta, var = np.tile(mid, (k, 1)), np.tile(half**2 / 3, (k, 1))  # no data: uniform on the bounds
    for f in range(d):
        if not half[f] > 0:
            continue
        first = sum_noise(eps / 3 / d, 0.0, 1, float(half[f]))
        second = sum_noise(eps / 3 / d, 0.0, 1, float(half[f] ** 2))
        centered = x[:, f] - mid[f] if len(x) else np.zeros(0)
        s1 = [int(np.sum(np.rint(centered[labels == c] / first.quantum))) for c in range(k)]
        s2 = [int(np.sum(np.rint(centered[labels == c] ** 2 / second.quantum))) for c in range(k)]
        shift = np.clip(first.randomise(np.array(s1, dtype=object), rng) / n, -half[f], half[f])
        second_moment = second.randomise(np.array(s2, dtype=object), rng) / n
        ok = counts >= 1
        theta[ok, f] = mid[f] + shift[ok]
        var[ok, f] = np.clip(second_moment[ok] - shift[ok] ** 2, 0.0, half[f] ** 2)
    var = var + 1e-9 * float(np.max(half**2)) + 1e-12  # smoothing, as scikit-learn's var_smoothing
    prior = n / n.sum()
    return {
        "classes": list(plan.classes),
        "theta": theta.tolist(),
        "var": var.tolist(),
        "class_prior": prior.tolist(),
        "noisy_class_counts": [int(c) for c in counts],
    }


def model_out(row: ModelRow, *, reveal: bool = True) -> ModelOut:
    """A model as the API shows it; parameters only if ``reveal`` (:func:`lab.artifacts.release.reveals`)."""
    params = row.params if reveal else {}
    return ModelOut.model_validate(
        {
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
    )


def train(
    runtime: Runtime,
    principal: Principal,
    project_id: str,
    spec: TrainSpec,
    rng: Rng = None,
    offload: Offload = inline,
) -> ModelOut:
    """Train a DP model, charge its ε, store it as a project artifact and return its parameters.

    Same shape as a query (:mod:`lab.dp.service`): read, fit through ``offload``, then commit.
    """
    with runtime.reading() as session:
        first = authorize(
            session,
            principal,
            project_id,
            spec.dataset,
            "dp",
            "train",
            Ask.spend(spec.epsilon),
            check=no_channel_params,
        )
        plan = plan_training(spec, first.policy)
        source = source_for(runtime, session, first, spec.cohort, 1)
    # the sampling rate comes from the size everyone may see (noisy entities: training takes one row
    # per entity and samples entities), never from an exact count
    shown = shown_size(
        first.dataset.row_count,
        first.dataset.entity_count,
        runtime.settings.encryption_key,
        first.dataset.dataset,
        first.dataset.version,
    )
    params = offload(training_job, source, plan, MAX_TRAINING_ROWS, max(shown, 1), rng)
    with runtime.transaction() as session:
        access = reauthorize(session, first)
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
        out = model_out(row)
        return ModelOut.model_validate(
            {**out.model_dump(), "epsilon_spent": row.epsilon, "remaining": left.as_strings()}
        )


def list_models(session: Session, principal: Principal, project_id: str) -> list[ModelOut]:
    """The project's DP models, then bureau-published ones (parameters as
    :func:`lab.artifacts.release.reveals` decides)."""
    readable_project(session, principal, project_id)  # members, the bureau and auditors
    rows = session.execute(
        select(ModelRow)
        .where(or_(ModelRow.project_id == project_id, ModelRow.project_id.is_(None)))
        .order_by(ModelRow.created_at)
    ).scalars()
    return [model_out(r, reveal=reveals(session, principal, project_id, "model", r)) for r in rows]
