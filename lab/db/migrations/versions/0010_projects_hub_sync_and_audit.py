"""projects: Hub sync versions; audit_requests

Revision ID: 0010_projects_audit
Revises: 0003_shared_artifacts
Create Date: 2026-11-28 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0010_projects_audit"
down_revision = "0003_shared_artifacts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hub_version", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("hub_synced_version", sa.Integer(), server_default="0", nullable=False)
        )

    op.create_table(
        "audit_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=True),
        sa.Column("project_id", sa.String(length=32), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_requests")),
    )
    with op.batch_alter_table("audit_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_requests_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_requests_principal"), ["principal"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_requests_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_requests_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_requests_status"))
        batch_op.drop_index(batch_op.f("ix_audit_requests_project_id"))
        batch_op.drop_index(batch_op.f("ix_audit_requests_principal"))
        batch_op.drop_index(batch_op.f("ix_audit_requests_at"))
    op.drop_table("audit_requests")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("hub_synced_version")
        batch_op.drop_column("hub_version")
