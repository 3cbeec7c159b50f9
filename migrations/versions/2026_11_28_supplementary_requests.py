"""Supplementary-information requests, their history and links to messages.

Revision ID: c6c3597fc5cb
Revises: ed62a1d762fe
Create Date: 2026-11-28 18:16:11.919430
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import commcentre.db

revision: str = "c6c3597fc5cb"
down_revision: str | None = "ed62a1d762fe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "supplementary_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("reference_key", sa.String(length=128), nullable=False),
        sa.Column("form", sa.String(length=1), nullable=False),
        sa.Column("alert_article", sa.SmallInteger(), nullable=True),
        sa.Column("alert_flags", sa.JSON(), nullable=False),
        sa.Column("sis_alert_ref", sa.String(length=64), nullable=True),
        sa.Column("eaw_ref", sa.String(length=64), nullable=True),
        sa.Column("issuing_state", sa.String(length=2), nullable=True),
        sa.Column("requesting_state", sa.String(length=2), nullable=True),
        sa.Column("urgency", sa.String(length=8), nullable=False),
        sa.Column("legal_basis", sa.String(length=64), nullable=False),
        sa.Column("info_access", sa.String(length=8), nullable=True),
        sa.Column("time_limit_rule", sa.String(length=32), nullable=False),
        sa.Column("immediate", sa.Boolean(), nullable=False),
        sa.Column("received_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("answered_at", commcentre.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_late", sa.Boolean(), nullable=False),
        sa.Column("closed_at", commcentre.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", commcentre.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("arrested_at", commcentre.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("arrest_consent", sa.Boolean(), nullable=True),
        sa.Column("decision_extended", sa.Boolean(), nullable=False),
        sa.Column("decision_due_at", commcentre.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", commcentre.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("surrender_due_at", commcentre.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enc_format", sa.SmallInteger(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supplementary_requests")),
    )
    with op.batch_alter_table("supplementary_requests", schema=None) as batch_op:
        batch_op.create_index("ix_supplementary_requests_due_at_id", ["due_at", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_supplementary_requests_key_version"), ["key_version"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_supplementary_requests_reference_key"), ["reference_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_supplementary_requests_requesting_state"),
            ["requesting_state"],
            unique=False,
        )
        batch_op.create_index(
            "ix_supplementary_requests_status_due_at_id", ["status", "due_at", "id"], unique=False
        )

    op.create_table(
        "supplementary_request_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("enc_format", sa.SmallInteger(), nullable=True),
        sa.Column("key_version", sa.Integer(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["supplementary_requests.id"],
            name=op.f("fk_supplementary_request_history_request_id_supplementary_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supplementary_request_history")),
    )
    with op.batch_alter_table("supplementary_request_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_supplementary_request_history_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "supplementary_request_messages",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("linked_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_supplementary_request_messages_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["supplementary_requests.id"],
            name=op.f("fk_supplementary_request_messages_request_id_supplementary_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "request_id", "message_id", name=op.f("pk_supplementary_request_messages")
        ),
    )
    with op.batch_alter_table("supplementary_request_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_supplementary_request_messages_message_id"), ["message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("supplementary_request_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supplementary_request_messages_message_id"))

    op.drop_table("supplementary_request_messages")
    with op.batch_alter_table("supplementary_request_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supplementary_request_history_request_id"))

    op.drop_table("supplementary_request_history")
    with op.batch_alter_table("supplementary_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_supplementary_requests_status_due_at_id")
        batch_op.drop_index(batch_op.f("ix_supplementary_requests_requesting_state"))
        batch_op.drop_index(batch_op.f("ix_supplementary_requests_reference_key"))
        batch_op.drop_index(batch_op.f("ix_supplementary_requests_key_version"))
        batch_op.drop_index("ix_supplementary_requests_due_at_id")

    op.drop_table("supplementary_requests")
