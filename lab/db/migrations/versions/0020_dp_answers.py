"""dp answers: released DP query answers, replayed for identical repeated queries

Revision ID: 0020_dp_answers
Revises: 0003_shared_artifacts
Create Date: 2026-11-28 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_dp_answers"
down_revision = "0003_shared_artifacts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dp_answers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("spec_sha256", sa.String(length=64), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dp_answers")),
        sa.UniqueConstraint("project_id", "spec_sha256", name=op.f("uq_dp_answers_project_id")),
    )
    with op.batch_alter_table("dp_answers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dp_answers_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dp_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dp_answers_project_id"))
    op.drop_table("dp_answers")
