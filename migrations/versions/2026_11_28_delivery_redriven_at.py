"""Deliveries remember when they were redriven: a redriven dead letter ages from then.

Revision ID: 515e36221e59
Revises: c691e48db0e4
Create Date: 2026-11-28 16:48:08.901745
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import commcentre.db

revision: str = "515e36221e59"
down_revision: str | None = "c691e48db0e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("redriven_at", commcentre.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("redriven_at")
