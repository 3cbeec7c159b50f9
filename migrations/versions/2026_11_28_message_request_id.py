"""Messages keep the request id of the API call that stored them, for the dispatcher's logs.

Revision ID: c821d0ca1431
Revises: c6c3597fc5cb
Create Date: 2026-11-28 18:36:02.899014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c821d0ca1431"
down_revision: str | None = "c6c3597fc5cb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("request_id")
