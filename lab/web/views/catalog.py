"""Catalog browser: every dataset's entry, its column schema and its channel policies (never data)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from lab.catalog.policy import Policy
from lab.catalog.service import CatalogReader, DatasetVersion
from lab.catalog.visibility import shown_entry
from lab.identity import Principal
from lab.web.i18n import Translator
from lab.web.render import fmt_decimal


def _catalog(session: Session) -> CatalogReader:
    return CatalogReader(session)


def _shown(v: DatasetVersion, principal: Principal | None, key: bytes) -> dict[str, Any]:
    return shown_entry(v.entry(), v.policy, principal, key)


def catalog_list(session: Session, principal: Principal | None = None, key: bytes = b"") -> dict[str, Any]:
    """The current entry of every dataset (non-open sizes noisy except to the bureau)."""
    return {"entries": [_shown(v, principal, key) for v in _catalog(session).list()]}


def _join(t: Translator, values: Any) -> str:
    return t("common.sep").join(str(v) for v in values) if values else t("common.none")


def channel_rows(policy: Policy, t: Translator) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each open channel with its policy limits as (label key, formatted value) rows."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    ch = policy.channels
    if ch.dp is not None:
        out.append(
            (
                "dp",
                [
                    ("epsilon_per_project", fmt_decimal(ch.dp.epsilon_per_project)),
                    ("epsilon_per_query", fmt_decimal(ch.dp.epsilon_per_query)),
                    ("delta_per_project", fmt_decimal(ch.dp.delta_per_project)),
                    ("delta_per_query", fmt_decimal(ch.dp.delta_per_query)),
                    ("max_rows_per_entity", str(ch.dp.max_rows_per_entity)),
                    ("min_cell_count", str(ch.dp.min_cell_count)),
                    ("filterable", _join(t, ch.dp.filterable)),
                    ("group_by", _join(t, ch.dp.group_by)),
                ],
            )
        )
    if ch.psi is not None:
        columns = [
            f"{name} ({_join(t, [t.of('psimode', m.value) for m in col.modes])})"
            for name, col in ch.psi.columns.items()
        ]
        out.append(
            (
                "psi",
                [
                    ("columns", _join(t, columns)),
                    ("min_client_set", str(ch.psi.min_client_set)),
                    ("max_client_set", str(ch.psi.max_client_set)),
                    ("daily_quota", str(ch.psi.daily_quota)),
                    ("cohort_epsilon", fmt_decimal(ch.psi.cohort_epsilon)),
                ],
            )
        )
    if ch.he is not None:
        out.append(
            (
                "he",
                [
                    ("models", _join(t, ch.he.models)),
                    ("tables", _join(t, ch.he.tables)),
                    ("record_quota", str(ch.he.record_quota)),
                ],
            )
        )
    return out


def catalog_entry(
    session: Session, dataset: str, t: Translator, principal: Principal | None = None, key: bytes = b""
) -> dict[str, Any]:
    """One dataset: entry, schema, channel policies, versions. Raises ``DatasetNotFound``."""
    cat = _catalog(session)
    version = cat.get(dataset)
    return {
        "e": _shown(version, principal, key),
        "entity_key": version.policy.entity_key,
        "columns": version.policy.model_dump(mode="json")["columns"],
        "channels": channel_rows(version.policy, t),
        "versions": [_shown(v, principal, key) for v in reversed(cat.versions(dataset))],
    }
