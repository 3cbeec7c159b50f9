"""Deliveries carry events about supplementary-information requests (request.overdue).

A delivery's subject is a message or a request (exactly one); a request event has
its type and metadata snapshot and goes to a subscriber, once per subscriber.

Revision ID: 566f4d0e2abd
Revises: c821d0ca1431
Create Date: 2026-11-28 18:39:07.918594
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import commcentre.db

revision: str = "566f4d0e2abd"
down_revision: str | None = "c821d0ca1431"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_SUBJECT = "(message_id IS NULL) <> (request_id IS NULL)"
REQUEST_EVENT = (
    "(request_id IS NULL AND event IS NULL AND event_data IS NULL) OR "
    "(request_id IS NOT NULL AND event IS NOT NULL AND event_data IS NOT NULL "
    "AND subscription_id IS NOT NULL)"
)


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("event", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("event_data", commcentre.db.JSONType, nullable=True))
        batch_op.alter_column("message_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_request_id"), ["request_id", "event", "subscription_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_deliveries_request_id_supplementary_requests"),
            "supplementary_requests",
            ["request_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_check_constraint("one_subject", ONE_SUBJECT)
        batch_op.create_check_constraint("request_event", REQUEST_EVENT)


def downgrade() -> None:
    # Request events have no message: they cannot exist in the older schema.
    op.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE message_id IS NULL)"
    )
    op.execute("DELETE FROM deliveries WHERE message_id IS NULL")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_deliveries_request_event"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_deliveries_one_subject"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_deliveries_request_id_supplementary_requests"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_deliveries_request_id"), type_="unique")
        batch_op.alter_column("message_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("event_data")
        batch_op.drop_column("event")
        batch_op.drop_column("request_id")
