"""Audit rows: the hash-chained entries and the head that anchors the chain's end."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from commcentre.db import Base, JSONType, UTCDateTime

GENESIS_HASH = bytes(32)
"""The `prev_hash` of entry 1 and the head's hash while the log is empty."""

HEAD_ID = 1

# Column lengths, shared with the checks in AuditRecord so that SQLite (which
# ignores them) and PostgreSQL (which enforces them) accept the same entries.
EVENT_MAX = 64
ACTOR_MAX = 128
SUBJECT_TYPE_MAX = 32
SUBJECT_ID_MAX = 64
RECIPIENT_MAX = 128
JUSTIFICATION_MAX = 500


class AuditAction(StrEnum):
    """The processing operations that Law Enforcement Directive 2016/680 Art. 25 logs."""

    COLLECTION = "collection"
    ALTERATION = "alteration"
    CONSULTATION = "consultation"
    DISCLOSURE = "disclosure"
    COMBINATION = "combination"
    ERASURE = "erasure"


class AuditEntry(Base):
    """One logged processing operation; never updated or deleted once written."""

    __tablename__ = "audit_entries"

    # Assigned by the append path from the head row, so that seqs are gap-free
    # and a missing number means a deleted entry.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    action: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(EVENT_MAX))
    actor: Mapped[str] = mapped_column(String(ACTOR_MAX))
    subject_type: Mapped[str | None] = mapped_column(String(SUBJECT_TYPE_MAX))
    subject_id: Mapped[str | None] = mapped_column(String(SUBJECT_ID_MAX), index=True)
    recipient: Mapped[str | None] = mapped_column(String(RECIPIENT_MAX))
    justification: Mapped[str | None] = mapped_column(String(JUSTIFICATION_MAX))
    # Identifiers and counts only: never plaintext payload data.
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The audit key version whose HMAC `hash` is; NULL for an entry written before
    # the chain was keyed (plain SHA-256, chain.py's v1).
    key_id: Mapped[int | None] = mapped_column(Integer)


class AuditHead(Base):
    """The single row holding the last seq and hash, so a deleted tail is detected.

    Every append updates it first, which also serialises concurrent writers.
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint(f"id = {HEAD_ID}", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def genesis_head_values(now: datetime) -> dict[str, Any]:
    """The head row of an empty log, for the migration that creates the tables."""
    return {"id": HEAD_ID, "seq": 0, "hash": GENESIS_HASH, "updated_at": now}
