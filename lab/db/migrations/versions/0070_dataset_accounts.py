"""dataset accounts: one privacy-loss account per dataset and its charges, started at the sum spent

Revision ID: 0070_dataset_accounts
Revises: 0060_ledger_witnesses
Create Date: 2026-12-04 14:00:00

Every release already charged on a non-open dataset (a derived record with ε or δ > 0) becomes a
charge of that dataset's account, so each account starts at exactly what has been spent about its
people. Older releases are composed by basic composition (never RDP): nothing is forgotten.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0070_dataset_accounts"
down_revision = "0060_ledger_witnesses"
branch_labels = None
depends_on = None


def _fmt(d: Decimal) -> str:
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def upgrade() -> None:
    accounts = op.create_table(
        "dataset_accounts",
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("epsilon_spent", sa.String(length=40), nullable=False),
        sa.Column("delta_spent", sa.String(length=40), nullable=False),
        sa.Column("spends", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_dataset_accounts")),
    )
    charges = op.create_table(
        "dataset_charges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("organization", sa.String(length=200), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("epsilon", sa.String(length=40), nullable=False),
        sa.Column("delta", sa.String(length=40), nullable=False),
        sa.Column("gaussian", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_charges")),
    )
    for col in ("dataset_id", "period", "project_id", "record_id", "at"):
        op.create_index(op.f(f"ix_dataset_charges_{col}"), "dataset_charges", [col], unique=False)

    conn = op.get_bind()
    non_open = {
        ds
        for ds, policy in conn.execute(
            sa.text(
                "SELECT d.id, v.policy FROM datasets d JOIN dataset_versions v "
                "ON v.dataset_id = d.id AND v.version = d.current_version"
            )
        )
        if _json(policy).get("open") == "non-open"
    }
    orgs = dict(conn.execute(sa.text("SELECT id, organization FROM projects")).all())
    totals: dict[str, tuple[Decimal, Decimal, int]] = {}
    rows = []
    for rid, pid, channel, operation, datasets, eps, delta, at, index in conn.execute(
        sa.text(
            "SELECT id, project_id, channel, operation, datasets, epsilon, delta, created_at, ledger_index "
            "FROM derived_records ORDER BY created_at, id"
        )
    ):
        e, d = Decimal(eps or "0"), Decimal(delta or "0")
        ds = (_json(datasets) or [{}])[0].get("id")
        if ds not in non_open or (e == 0 and d == 0):
            continue
        when = _utc(at)
        rows.append(
            {
                "dataset_id": ds,
                "period": str(when.year),
                "project_id": pid,
                "organization": orgs.get(pid, ""),
                "record_id": rid,
                "ledger_index": index,
                "channel": channel,
                "operation": operation,
                "epsilon": _fmt(e),
                "delta": _fmt(d),
                "gaussian": False,
                "at": when,
            }
        )
        te, td, n = totals.get(ds, (Decimal(0), Decimal(0), 0))
        totals[ds] = (te + e, td + d, n + 1)
    if rows:
        op.bulk_insert(charges, rows)
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        accounts,
        [
            {"dataset_id": ds, "epsilon_spent": _fmt(e), "delta_spent": _fmt(d), "spends": n, "updated_at": now}
            for ds, (e, d, n) in totals.items()
        ],
    )


def downgrade() -> None:
    op.drop_table("dataset_charges")
    op.drop_table("dataset_accounts")
