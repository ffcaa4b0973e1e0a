"""catalog: distinct-entity count of each dataset version (the size non-bureau readers see, noisy)

Revision ID: 0090_catalog_entity_counts
Revises: 0080_he_release_and_calls
Create Date: 2026-12-04 17:10:00.000000

Versions imported before this revision keep ``entity_count`` NULL: counting them would need the
object store, which migrations do not reach. Their readers keep seeing the noisy row count already
released for them (``lab.catalog.visibility``); a re-import counts entities.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0090_catalog_entity_counts"
down_revision = "0080_he_release_and_calls"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entity_count", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.drop_column("entity_count")
