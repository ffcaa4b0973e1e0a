"""The bureau's risk pages: every dataset account, one dataset's risk view, the request anomalies."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from lab.audit.service import Anomalies
from lab.budgets.risk import account_alerts, accounts_overview, dataset_risk
from lab.catalog.service import CatalogReader
from lab.catalog.visibility import CATALOG_EPSILON
from lab.errors import NotFound
from lab.identity import Principal
from lab.ledger import Ledger
from lab.records.service import get_record
from lab.web.charts import SpendPoint, spend_chart
from lab.web.i18n import Translator
from lab.web.render import fmt_decimal, fmt_time


def risk_overview(session: Session) -> dict[str, Any]:
    """Every dataset account with its state, and the allowance alerts."""
    catalog = CatalogReader(session)
    rows = [(ds, catalog.get(ds).policy.title, st) for ds, st in accounts_overview(session)]
    return {"accounts": rows, "alerts": account_alerts(session)}


def risk_detail(session: Session, dataset: str, t: Translator, lang: str) -> dict[str, Any]:
    """One dataset's account, spending per project and organization, chart and releases."""
    risk = dataset_risk(session, dataset)
    if risk is None:
        raise NotFound(f"dataset {dataset} is open and has no privacy-loss account")
    version = CatalogReader(session).get(dataset)
    acct = risk.account
    points = [
        SpendPoint(
            s.accounted.epsilon,
            t("risk.step", record=s.charge.record_id, project=s.charge.project_id, epsilon=s.charge.epsilon),
        )
        for s in risk.steps
    ]
    chart = spend_chart(
        points,
        [
            (t("risk.lifetime"), acct.limit.epsilon),
            (t("risk.period", period=acct.period), acct.period_limit.epsilon),
        ],
        title=t("risk.chart_title", dataset=dataset),
        desc=t(
            "risk.chart_desc",
            n=len(points),
            spent=fmt_decimal(risk.steps[-1].accounted.epsilon if risk.steps else 0),
            rule=t.of("risk.rule", acct.spent.rule),
        ),
        first=fmt_time(risk.steps[0].charge.at) if risk.steps else "",
        last=fmt_time(risk.steps[-1].charge.at) if risk.steps else "",
    )
    return {
        "dataset": dataset,
        "title": version.policy.title.zh if lang == "zh" else version.policy.title.en,
        "acct": acct,
        "alert": risk.alert,
        "by_project": risk.by_project,
        "by_organization": risk.by_organization,
        "steps": list(reversed(risk.steps)),
        "chart": chart,
        "catalog_size": catalog_size_cost(version.version),
    }


def catalog_size_cost(versions: int) -> dict[str, Any]:
    """The catalog's noisy size: a fixed ε per version, stated beside the account, never debited."""
    per = Decimal(str(CATALOG_EPSILON))
    return {"per_version": per, "versions": versions, "epsilon": per * versions}


def anomalies_view(report: Anomalies) -> dict[str, Any]:
    return {"report": report}


def release_detail(session: Session, ledger: Ledger, principal: Principal, record_id: str) -> dict[str, Any]:
    """A derived record behind a step of the risk view, and its ledger entry (canonical JSON)."""
    record = get_record(session, principal, record_id)
    entry = ledger.entry(int(record["ledger_index"]))
    return {
        "record": record,
        "parameters": json.dumps(record["parameters"], ensure_ascii=False, indent=2, sort_keys=True),
        "entry": entry,
        "entry_json": json.dumps(entry.entry, ensure_ascii=False, indent=2, sort_keys=True),
    }
