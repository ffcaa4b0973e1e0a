"""he channel: registered public contexts

Revision ID: 0040_he_contexts
Revises: 0003_shared_artifacts
Create Date: 2026-11-28 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0040_he_contexts"
down_revision = "0003_shared_artifacts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "he_contexts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("param_set", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("object_key", sa.String(length=512), nullable=False),
        sa.Column("has_relin_keys", sa.Boolean(), nullable=False),
        sa.Column("has_galois_keys", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_he_contexts")),
    )
    with op.batch_alter_table("he_contexts", schema=None) as batch_op:
        batch_op.create_index("ix_he_contexts_project_owner", ["project_id", "owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("he_contexts", schema=None) as batch_op:
        batch_op.drop_index("ix_he_contexts_project_owner")
    op.drop_table("he_contexts")
