"""Requests keep their channel, a Dir. 2023/977 delay notice, and the EAW consent,
postponed surrender and per-deadline escalations.

`channel` is where replies and notices go (filled for existing rows from the
legal basis: Dir. 2023/977 requests were SIENA ones, the rest SIRENE ones).

Revision ID: 9d3c2e71b5a4
Revises: 566f4d0e2abd
Create Date: 2026-12-05 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import commcentre.db

revision: str = "9d3c2e71b5a4"
down_revision: str | None = "566f4d0e2abd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOMENTS = (
    "delay_notified_at",
    "delay_expected_at",
    "consented_at",
    "surrender_agreed_at",
    "surrendered_at",
    "decision_escalated_at",
    "surrender_escalated_at",
)


def upgrade() -> None:
    with op.batch_alter_table("supplementary_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=True))
        for name in _MOMENTS:
            batch_op.add_column(sa.Column(name, commcentre.db.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("surrender_postponement", sa.String(length=24), nullable=True)
        )
    op.execute(
        "UPDATE supplementary_requests SET channel = CASE WHEN legal_basis = 'DIR_2023_977' "
        "THEN 'europol' ELSE 'sirene' END"
    )


def downgrade() -> None:
    with op.batch_alter_table("supplementary_requests", schema=None) as batch_op:
        batch_op.drop_column("surrender_postponement")
        for name in reversed(_MOMENTS):
            batch_op.drop_column(name)
        batch_op.drop_column("channel")
