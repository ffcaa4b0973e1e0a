"""The DP channel's service: authorize → prepare → compute → commit, the channels' one shape.

Each charged call authorizes and reads its inputs in a read transaction
(:meth:`lab.runtime.Runtime.reading`), computes outside any transaction through an
:class:`~lab.dp.workers.Offload` (in production a pool of worker processes, see
:mod:`lab.dp.workers`), then authorizes again and calls
:func:`~lab.projects.access.commit_result` in one short write transaction. A failed call charges
nothing, and no result leaves without its charge, derived record and ledger entry.

Repeated queries: an identical query (same normalized spec, same dataset version, same project)
returns the answer released the first time — same values, same derived record — and is charged
nothing. Fresh noise for the same question would let an operator average it away; replaying the
answer costs no privacy. Table releases and trainings create new artifacts and are charged each time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lab.artifacts.cohorts import get_cohort, load_cohort_keys
from lab.artifacts.models import StatTableRow
from lab.artifacts.release import reveals
from lab.budgets import Budget
from lab.catalog.service import CatalogFetcher, CatalogReader, DatasetVersion
from lab.db.base import utcnow
from lab.dp.models import DpAnswerRow
from lab.dp.plan import QueryPlan, plan_query
from lab.dp.release import CONFIDENCE, AggRelease, Value, describe, mechanisms_for
from lab.dp.schemas import PreviewOut, QueryOut, TableOut
from lab.dp.spec import QuerySpec, TableSpec, canonical
from lab.dp.workers import Offload, Source, inline, query_job
from lab.errors import BudgetExhausted, Conflict, InvalidQuery
from lab.identity import Principal
from lab.ledger.entries import canonical_json
from lab.mechanisms import Rng
from lab.projects.access import (
    Access,
    Ask,
    authorize,
    budget_remaining,
    commit_result,
    load_project,
    no_channel_params,
    readable_project,
)
from lab.runtime import Runtime

REPEAT_POLICY = (
    "an identical query (same spec, dataset version and project) returns the answer first released, "
    "at no further cost"
)


def salt_for(runtime: Runtime) -> str:
    """The contribution-bounding salt (derived from the lab's secret key)."""
    return hmac.new(runtime.settings.encryption_key, b"lab.dp.contribution-bounding", "sha256").hexdigest()


def digest(value: Any) -> str:
    """SHA-256 of a JSON value (floats written by ``repr``, so the digest is reproducible)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def spec_digest(spec: QuerySpec, version: DatasetVersion) -> str:
    body = {"dataset": version.dataset, "version": version.version, "spec": canonical(spec)}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def source_for(
    runtime: Runtime, session: Session, access: Access, cohort_id: str | None, rows_per_entity: int
) -> Source:
    """The job's input: the verified Parquet of the granted version and the cohort's keys, if any."""
    version = access.dataset
    cohort = None
    if cohort_id is not None:
        row = get_cohort(session, access.project.id, cohort_id)
        if row.dataset_id != version.dataset:
            raise InvalidQuery(
                f"cohort {cohort_id} holds keys of {row.dataset_id}, not {version.dataset}", field="cohort"
            )
        cohort = load_cohort_keys(runtime.store, row)
    parquet = CatalogFetcher(runtime.store).fetch(version, runtime.cache_dir)
    return Source(
        cache_dir=runtime.cache_dir,
        salt=salt_for(runtime),
        parquet=parquet,
        sha256=version.sha256,
        entity_key=version.policy.entity_key,
        columns=[c.name for c in version.policy.columns],
        rows_per_entity=rows_per_entity,
        cohort=cohort,
    )


def reauthorize(session: Session, first: Access) -> Access:
    """Authorize ``first``'s ask again in the committing transaction; the dataset version must not
    have moved."""
    access = authorize(
        session,
        first.principal,
        first.project.id,
        first.dataset.dataset,
        "dp",
        first.operation,
        first.ask,
        check=no_channel_params,
    )
    return same_version(first.dataset, access)


def same_version(computed_on: DatasetVersion, access: Access) -> Access:
    """``access`` if it grants the version the result was computed on; :class:`Conflict` if not."""
    if access.dataset.version != computed_on.version:  # a new version may change data or policy
        raise Conflict(
            f"{computed_on.dataset} changed to version {access.dataset.version} while the request ran; "
            "nothing was charged — run it again"
        )
    return access


def _ask(spec: QuerySpec) -> Ask:
    """What the query asks of the access rules: its cost, and whether it is one Gaussian release."""
    return Ask(spec.cost(), _gaussian(spec))


def _gaussian(spec: QuerySpec) -> bool:
    """Is the whole release one Gaussian mechanism (RDP-composable on the dataset account)?"""
    return spec.delta > 0 and spec.mechanism == "gaussian" and all(a.agg != "quantile" for a in spec.select)


def _rows(plan: QueryPlan, values: list[Value]) -> list[dict[str, Any]]:
    keys = plan.cell_keys()
    return [
        {
            "group": list(keys[v.cell]),
            "name": v.name,
            "agg": v.agg,
            "column": v.column,
            "key": v.key,
            "value": v.value,
            "error_95": v.error_95,
            "unit": v.unit,
            "mechanism": v.mechanism,
            "flag": v.flag,
        }
        for v in values
    ]


def _lookup(session: Session, project_id: str, key: str) -> DpAnswerRow | None:
    return session.execute(
        select(DpAnswerRow).where(DpAnswerRow.project_id == project_id, DpAnswerRow.spec_sha256 == key)
    ).scalar_one_or_none()


def _replay(session: Session, row: DpAnswerRow) -> QueryOut:
    left = budget_remaining(session, row.project_id, row.dataset_id) or Budget.zero()
    return QueryOut.model_validate(
        {
            **row.answer,
            "cached": True,
            "epsilon_spent": "0",
            "delta_spent": "0",
            "remaining": left.as_strings(),
        }
    )


def _authorize_or_replay(
    session: Session, principal: Principal, project_id: str, spec: QuerySpec, operation: str
) -> tuple[Access | None, DpAnswerRow | None]:
    """Authorize the query; when only the budget says no, a replayable answer may still be served."""
    try:
        access = authorize(
            session,
            principal,
            project_id,
            spec.dataset,
            "dp",
            operation,
            _ask(spec),
            check=no_channel_params,
        )
    except BudgetExhausted:
        version = CatalogReader(session).get(spec.dataset)
        hit = _lookup(session, project_id, spec_digest(spec, version))
        if hit is None:
            raise
        return None, hit
    return access, _lookup(session, project_id, spec_digest(spec, access.dataset))


def query(
    runtime: Runtime,
    principal: Principal,
    project_id: str,
    spec: QuerySpec,
    rng: Rng = None,
    offload: Offload = inline,
) -> QueryOut:
    """Run a DP query and charge it (or replay the identical query's earlier answer for free).

    Authorize and read the inputs in a read transaction, compute through ``offload`` outside any
    transaction, then authorize again and commit the charge, record and ledger entry in one short one.
    """
    with runtime.reading() as session:
        access, hit = _authorize_or_replay(session, principal, project_id, spec, "query")
        if hit is not None:
            return _replay(session, hit)
        assert access is not None
        plan = plan_query(spec, access.policy)
        source = source_for(runtime, session, access, spec.cohort, plan.rows_per_entity)
    values, infos = offload(query_job, source, plan, rng)
    version, key = access.dataset, spec_digest(spec, access.dataset)
    answer: dict[str, Any] = {
        "dataset": version.dataset,
        "version": version.version,
        "group_by": list(spec.group_by),
        "cohort": spec.cohort,
        "noise": plan.noise,
        "epsilon": plan.cost.as_strings()["epsilon"],
        "delta": plan.cost.as_strings()["delta"],
        "confidence": CONFIDENCE,
        "rows": _rows(plan, values),
        "aggregations": [i.as_dict() for i in infos],
        "repeat_policy": REPEAT_POLICY,
    }
    with runtime.transaction() as session:
        load_project(session, project_id, lock=True)  # serialize with identical concurrent queries
        again, hit = _authorize_or_replay(session, principal, project_id, spec, "query")
        if hit is not None:
            return _replay(session, hit)
        assert again is not None
        record = commit_result(
            session,
            runtime.ledger(session),
            same_version(version, again),
            cost=plan.cost,
            gaussian=_gaussian(spec),
            parameters={"spec": canonical(spec), "spec_sha256": key, "noise": plan.noise},
            result_digest=digest(answer["rows"]),
        )
        answer["record_id"] = record.id
        session.add(
            DpAnswerRow(
                project_id=project_id,
                spec_sha256=key,
                dataset_id=version.dataset,
                dataset_version=version.version,
                record_id=record.id,
                answer=answer,
                created_by=principal.name,
                created_at=utcnow(),
            )
        )
        session.flush()
        left = budget_remaining(session, project_id, version.dataset) or Budget.zero()
    spent = plan.cost.as_strings()
    return QueryOut.model_validate(
        {
            **answer,
            "cached": False,
            "epsilon_spent": spent["epsilon"],
            "delta_spent": spent["delta"],
            "remaining": left.as_strings(),
        }
    )


def _expected(plan: QueryPlan, infos: list[AggRelease], assumed_count: int | None) -> list[dict[str, Any]]:
    """Per aggregation: the 95% error bound of its values (for means etc. at ``assumed_count`` rows)."""
    out = []
    for a, info in zip(plan.aggs, infos, strict=True):
        first = info.components[0]
        row: dict[str, Any] = {"name": a.label, "agg": a.agg, "unit": first.unit, "error_95": first.error_95}
        if a.agg in ("mean", "variance", "stddev"):
            row["formula"] = (
                "(t_sum + h·t_count) / n" if a.agg == "mean" else "d_sq + 2h·d_sum (stddev: its square root)"
            )
            row["error_95"] = None
            if assumed_count:
                mechs = mechanisms_for(a, plan.rows_per_entity)
                conf = 1 - (1 - CONFIDENCE) / len(mechs)
                t = {k: m.bound(conf) for k, m in mechs.items()}
                n, h = float(assumed_count), a.half
                d_s = (t["centered_sum"] + h * t["count"]) / n
                if a.agg == "mean":
                    row["error_95"] = min(d_s, 2 * h)
                else:
                    d_v = min((t["centered_sum_of_squares"] + h * h * t["count"]) / n + 2 * h * d_s, h * h)
                    row["error_95"] = d_v if a.agg == "variance" else min(d_v**0.5, h)
        elif a.agg == "quantile":
            row["formula"] = "score excess (2Δ/ε)(ln m + ln 20), Δ = k·max(q, 1-q); tie-aware score"
        out.append(row)
    return out


def preview(
    runtime: Runtime,
    principal: Principal,
    project_id: str,
    spec: QuerySpec,
    assumed_count: int | None = None,
) -> PreviewOut:
    """What a query would cost and how accurate it would be — without touching any data."""
    with runtime.reading() as session:
        return _preview(session, principal, project_id, spec, assumed_count)


def _preview(
    session: Session, principal: Principal, project_id: str, spec: QuerySpec, assumed_count: int | None
) -> PreviewOut:
    allowed, reason = True, None
    try:
        access, hit = _authorize_or_replay(session, principal, project_id, spec, "query")
    except BudgetExhausted as exc:
        allowed, reason, hit = False, exc.detail, None
        access = None
    version = access.dataset if access else CatalogReader(session).get(spec.dataset)
    plan = plan_query(spec, version.policy)
    if spec.cohort is not None:
        row = get_cohort(session, project_id, spec.cohort)
        if row.dataset_id != version.dataset:
            raise InvalidQuery(f"cohort {spec.cohort} holds keys of {row.dataset_id}", field="cohort")
    infos = describe(plan)
    cost = Budget.zero() if hit is not None else plan.cost
    left = budget_remaining(session, project_id, spec.dataset) or Budget.zero()
    return PreviewOut.model_validate(
        {
            "dataset": version.dataset,
            "version": version.version,
            "allowed": allowed or hit is not None,
            "reason": reason if hit is None else None,
            "cached": hit is not None,
            "cost": cost.as_strings(),
            "remaining": left.as_strings(),
            "cells": plan.cells,
            "values": plan.cells * sum(a.values_per_cell for a in plan.aggs),
            "noise": plan.noise,
            "confidence": CONFIDENCE,
            "aggregations": [i.as_dict() for i in infos],
            "expected": _expected(plan, infos, assumed_count),
            "repeat_policy": REPEAT_POLICY,
        }
    )


def release_table(
    runtime: Runtime,
    principal: Principal,
    project_id: str,
    spec: TableSpec,
    rng: Rng = None,
    offload: Offload = inline,
) -> TableOut:
    """Release one statistic over the dims' full domains as a stored table (for HE lookups)."""
    q = spec.as_query()
    with runtime.reading() as session:
        first = authorize(
            session,
            principal,
            project_id,
            spec.dataset,
            "dp",
            "release_table",
            _ask(q),
            check=no_channel_params,
        )
        plan = plan_query(q, first.policy)
        source = source_for(runtime, session, first, q.cohort, plan.rows_per_entity)
    values, infos = offload(query_job, source, plan, rng)
    stat = spec.statistic
    statistic = stat.agg if stat.column is None else f"{stat.agg}({stat.column})"
    if stat.agg == "quantile":
        statistic = f"quantile({stat.column},{stat.levels[0]})"
    with runtime.transaction() as session:
        access = reauthorize(session, first)
        record = commit_result(
            session,
            runtime.ledger(session),
            access,
            cost=plan.cost,
            gaussian=_gaussian(q),
            parameters={"spec": canonical(spec), "noise": plan.noise},
            result_digest=digest([v.value for v in values]),
        )
        row = StatTableRow(
            id="t_" + uuid.uuid4().hex,
            project_id=project_id,
            name=spec.label,
            dataset_id=access.dataset.dataset,
            dataset_version=access.dataset.version,
            dims=[{"column": d.column, "domain": list(d.domain)} for d in plan.dims],
            statistic=statistic,
            values=[v.value for v in values],
            epsilon=plan.cost.as_strings()["epsilon"],
            created_by=principal.name,
            created_at=utcnow(),
            record_id=record.id,
            release="dp",
        )
        session.add(row)
        session.flush()
        left = budget_remaining(session, project_id, spec.dataset) or Budget.zero()
        out = table_out(row)
    return TableOut.model_validate(
        {
            **out.model_dump(),
            "errors_95": [v.error_95 for v in values],
            "bounds": list(infos[0].bounds) if infos[0].bounds else None,
            "aggregation": infos[0].as_dict(),
            "delta": plan.cost.as_strings()["delta"],
            "epsilon_spent": plan.cost.as_strings()["epsilon"],
            "delta_spent": plan.cost.as_strings()["delta"],
            "remaining": left.as_strings(),
        }
    )


def table_out(row: StatTableRow, *, reveal: bool = True) -> TableOut:
    """A table as the API shows it; values only if ``reveal`` (:func:`lab.artifacts.release.reveals`)."""
    return TableOut.model_validate(
        {
            "id": row.id,
            "name": row.name,
            "project": row.project_id,
            "dataset": row.dataset_id,
            "version": row.dataset_version,
            "dims": row.dims,
            "statistic": row.statistic,
            "values": row.values if reveal else None,
            "epsilon": row.epsilon,
            "record_id": row.record_id,
            "created_by": row.created_by,
            "created_at": row.created_at.isoformat(),
        }
    )


def list_tables(session: Session, principal: Principal, project_id: str) -> list[TableOut]:
    """The project's DP statistics tables, then bureau-published ones (values as
    :func:`lab.artifacts.release.reveals` decides)."""
    readable_project(session, principal, project_id)  # members, the bureau and auditors
    rows = session.execute(
        select(StatTableRow)
        .where(or_(StatTableRow.project_id == project_id, StatTableRow.project_id.is_(None)))
        .order_by(StatTableRow.created_at)
    ).scalars()
    return [table_out(r, reveal=reveals(session, principal, project_id, "table", r)) for r in rows]
