"""psi channel: key epochs, setup cache index, sessions

Revision ID: 0030_psi_channel
Revises: 0003_shared_artifacts
Create Date: 2026-11-28 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0030_psi_channel"
down_revision = "0003_shared_artifacts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "psi_key_epochs",
        sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("epoch", name=op.f("pk_psi_key_epochs")),
    )
    with op.batch_alter_table("psi_key_epochs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_psi_key_epochs_status"), ["status"], unique=False)

    op.create_table(
        "psi_setups",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("client_bound", sa.BigInteger(), nullable=False),
        sa.Column("data_structure", sa.String(length=16), nullable=False),
        sa.Column("fpr", sa.String(length=32), nullable=False),
        sa.Column("server_size", sa.BigInteger(), nullable=False),
        sa.Column("items_sha256", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("object_key", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sealed", sa.Boolean(), nullable=False),
        sa.Column("build_seconds", sa.String(length=32), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psi_setups")),
        sa.UniqueConstraint(
            "kind",
            "dataset_id",
            "dataset_version",
            "column",
            "epoch",
            "client_bound",
            name=op.f("uq_psi_setups_kind"),
        ),
    )
    with op.batch_alter_table("psi_setups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_psi_setups_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_psi_setups_epoch"), ["epoch"], unique=False)

    op.create_table(
        "psi_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("declared_size", sa.BigInteger(), nullable=False),
        sa.Column("client_bound", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.String(length=40), nullable=False),
        sa.Column("nonce_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("parts_received", sa.JSON(), nullable=False),
        sa.Column("items_received", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("record_id", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psi_sessions")),
    )
    with op.batch_alter_table("psi_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_psi_sessions_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_psi_sessions_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("psi_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_psi_sessions_status"))
        batch_op.drop_index(batch_op.f("ix_psi_sessions_project_id"))
    op.drop_table("psi_sessions")
    with op.batch_alter_table("psi_setups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_psi_setups_epoch"))
        batch_op.drop_index(batch_op.f("ix_psi_setups_dataset_id"))
    op.drop_table("psi_setups")
    with op.batch_alter_table("psi_key_epochs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_psi_key_epochs_status"))
    op.drop_table("psi_key_epochs")
