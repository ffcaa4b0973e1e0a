"""he channel: how material was released (dp | published) and multi-part calls

Revision ID: 0080_he_release_and_calls
Revises: 0070_dataset_accounts
Create Date: 2026-12-04 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0080_he_release_and_calls"
down_revision = "0070_dataset_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("ml_models", "stat_tables"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("release", sa.String(length=16), nullable=True))
        # project-owned rows come from the DP channel (ε charged at release); bureau rows stay
        # unreleased (NULL) until the bureau republishes them as "dp" or "published"
        op.execute(sa.text(f"UPDATE {table} SET release = 'dp' WHERE project_id IS NOT NULL"))
    op.create_table(
        "he_calls",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("material_id", sa.String(length=40), nullable=False),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("part_batches", sa.Integer(), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_he_calls")),
    )
    with op.batch_alter_table("he_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_he_calls_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("he_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_he_calls_project_id"))
    op.drop_table("he_calls")
    for table in ("ml_models", "stat_tables"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("release")
