"""Audit entries record the audit key version that keyed their hash (NULL: unkeyed v1).

Entries written before the chain was keyed keep NULL and verify as before (plain
SHA-256); new entries carry the version of the HMAC key from the keyring. Going
down removes the column: keyed entries then no longer verify with the old code,
which knows only the unkeyed form.

Revision ID: 7b3e9c1d2a4f
Revises: 3b7e21c9d4a5
Create Date: 2026-12-05 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b3e9c1d2a4f"
down_revision: str | None = "3b7e21c9d4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_column("key_id")
