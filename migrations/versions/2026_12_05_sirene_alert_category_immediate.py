"""Requests keep the Art. 32(1) category of their alert; "immediate" is a priority.

Reg. (EU) 2018/1862 Art. 8(3) sets a 12-hour limit for every SIRENE reply and asks the
SIRENE Bureaux to act immediately on alerts for terrorist offences and on Art. 32(1)(c)
child alerts. Requests under the old `sirene_immediate` rule were due at the moment of
receipt, so every answer was late: they get the 12-hour limit back (and `answered_late`
is recomputed against it); `immediate` stays set and now orders the work queue, for
which an index on (immediate, due_at, id) is added.

Revision ID: 3b7e21c9d4a5
Revises: 9d3c2e71b5a4
Create Date: 2026-12-05 12:50:00
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

import commcentre.db

revision: str = "3b7e21c9d4a5"
down_revision: str | None = "9d3c2e71b5a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIRENE_LIMIT = timedelta(hours=12)
_requests = sa.table(
    "supplementary_requests",
    sa.column("id", sa.Uuid()),
    sa.column("time_limit_rule", sa.String(32)),
    sa.column("received_at", commcentre.db.UTCDateTime()),
    sa.column("due_at", commcentre.db.UTCDateTime()),
    sa.column("answered_at", commcentre.db.UTCDateTime()),
    sa.column("answered_late", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("supplementary_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alert_category", sa.String(length=1), nullable=True))
        batch_op.create_index(
            "ix_supplementary_requests_immediate_due_at_id",
            ["immediate", "due_at", "id"],
            unique=False,
        )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_requests.c.id, _requests.c.received_at, _requests.c.answered_at).where(
            _requests.c.time_limit_rule == "sirene_immediate"
        )
    ).all()
    for row in rows:
        due = row.received_at + SIRENE_LIMIT
        bind.execute(
            _requests.update()
            .where(_requests.c.id == row.id)
            .values(
                time_limit_rule="sirene_supplementary",
                due_at=due,
                answered_late=row.answered_at is not None and row.answered_at > due,
            )
        )


def downgrade() -> None:
    # The 12-hour deadlines stay: the older code reads `sirene_supplementary` rows too.
    with op.batch_alter_table("supplementary_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_supplementary_requests_immediate_due_at_id")
        batch_op.drop_column("alert_category")
