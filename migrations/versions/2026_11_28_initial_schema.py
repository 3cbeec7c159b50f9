"""Initial schema: API clients, messages, blind index, idempotency keys, audit log.

Revision ID: 8bc2f8f14b06
Revises:
Create Date: 2026-11-28 15:40:42.233682
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import commcentre.db
from commcentre.audit.models import genesis_head_values

revision: str = "8bc2f8f14b06"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_hint", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", commcentre.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_clients_key_hash")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=True),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("recipient", sa.String(length=128), nullable=True),
        sa.Column("justification", sa.String(length=500), nullable=True),
        sa.Column("details", commcentre.db.JSONType, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_entries_id")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_entries_occurred_at"), ["occurred_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_entries_subject_id"), ["subject_id"], unique=False
        )

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("updated_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", commcentre.db.JSONType, nullable=False),
        sa.Column("created_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("legal_basis", sa.String(length=64), nullable=False),
        sa.Column("handling_codes", sa.JSON(), nullable=False),
        sa.Column("subject_kinds", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("in_reply_to", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("purge_after", commcentre.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enc_format", sa.SmallInteger(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_messages_client_id_api_clients"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_client_id_id", ["client_id", "id"], unique=False)
        batch_op.create_index("ix_messages_direction_id", ["direction", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_key_version"), ["key_version"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_purge_after"), ["purge_after"], unique=False)

    op.create_table(
        "message_identifiers",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_identifiers_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "digest", name=op.f("pk_message_identifiers")),
    )
    with op.batch_alter_table("message_identifiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_identifiers_digest"), ["digest"], unique=False)

    # The audit chain's anchor: every append updates this one row first.
    audit_head = sa.table(
        "audit_head",
        sa.column("id", sa.Integer()),
        sa.column("seq", sa.BigInteger()),
        sa.column("hash", sa.LargeBinary()),
        sa.column("updated_at", commcentre.db.UTCDateTime()),
    )
    op.bulk_insert(audit_head, [genesis_head_values(datetime.now(UTC))])


def downgrade() -> None:
    with op.batch_alter_table("message_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_identifiers_digest"))

    op.drop_table("message_identifiers")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_purge_after"))
        batch_op.drop_index(batch_op.f("ix_messages_key_version"))
        batch_op.drop_index("ix_messages_direction_id")
        batch_op.drop_index("ix_messages_client_id_id")

    op.drop_table("messages")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_expires_at"))

    op.drop_table("idempotency_keys")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_subject_id"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_occurred_at"))

    op.drop_table("audit_entries")
    op.drop_table("api_clients")
