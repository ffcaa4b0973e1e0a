"""projects grants budgets records

Revision ID: 0002_projects
Revises: 0001_catalog_ledger
Create Date: 2026-11-27 17:34:05.580759
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002_projects"
down_revision = "0001_catalog_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "derived_records",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("epsilon", sa.String(length=40), nullable=False),
        sa.Column("delta", sa.String(length=40), nullable=False),
        sa.Column("result_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_records")),
    )
    with op.batch_alter_table("derived_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_derived_records_caller"), ["caller"], unique=False)
        batch_op.create_index(batch_op.f("ix_derived_records_channel"), ["channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_derived_records_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_derived_records_project_id"), ["project_id"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("organization", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("applicant", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("requested_days", sa.Integer(), nullable=False),
        sa.Column("requested", sa.JSON(), nullable=False),
        sa.Column("commitment", sa.Text(), nullable=False),
        sa.Column("commitment_signed_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projects_applicant"), ["applicant"], unique=False)
        batch_op.create_index(batch_op.f("ix_projects_status"), ["status"], unique=False)

    op.create_table(
        "project_budgets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("epsilon_total", sa.String(length=40), nullable=False),
        sa.Column("delta_total", sa.String(length=40), nullable=False),
        sa.Column("epsilon_spent", sa.String(length=40), nullable=False),
        sa.Column("delta_spent", sa.String(length=40), nullable=False),
        sa.Column("spends", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_budgets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_budgets")),
        sa.UniqueConstraint("project_id", "dataset_id", name=op.f("uq_project_budgets_project_id")),
    )
    with op.batch_alter_table("project_budgets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_budgets_project_id"), ["project_id"], unique=False)

    op.create_table(
        "project_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_events_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_events")),
    )
    with op.batch_alter_table("project_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_events_project_id"), ["project_id"], unique=False)

    op.create_table(
        "project_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_grants_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_grants")),
        sa.UniqueConstraint("project_id", "dataset_id", name=op.f("uq_project_grants_project_id")),
    )
    with op.batch_alter_table("project_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_grants_project_id"), ["project_id"], unique=False)

    op.create_table(
        "project_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_members_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_members")),
        sa.UniqueConstraint("project_id", "username", name=op.f("uq_project_members_project_id")),
    )
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_members_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_project_members_username"), ["username"], unique=False)

    op.create_table(
        "project_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_usage_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_usage")),
        sa.UniqueConstraint(
            "project_id", "dataset_id", "channel", "period", name=op.f("uq_project_usage_project_id")
        ),
    )
    with op.batch_alter_table("project_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_usage_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("project_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_usage_project_id"))

    op.drop_table("project_usage")
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_members_username"))
        batch_op.drop_index(batch_op.f("ix_project_members_project_id"))

    op.drop_table("project_members")
    with op.batch_alter_table("project_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_grants_project_id"))

    op.drop_table("project_grants")
    with op.batch_alter_table("project_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_events_project_id"))

    op.drop_table("project_events")
    with op.batch_alter_table("project_budgets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_budgets_project_id"))

    op.drop_table("project_budgets")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_status"))
        batch_op.drop_index(batch_op.f("ix_projects_applicant"))

    op.drop_table("projects")
    with op.batch_alter_table("derived_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_derived_records_project_id"))
        batch_op.drop_index(batch_op.f("ix_derived_records_created_at"))
        batch_op.drop_index(batch_op.f("ix_derived_records_channel"))
        batch_op.drop_index(batch_op.f("ix_derived_records_caller"))

    op.drop_table("derived_records")
