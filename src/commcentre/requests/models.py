"""Request rows: routing metadata and deadlines in clear, free text sealed.

The sealed columns of a request hold its subject, delay reason and rejection
reason; those of a history entry hold its note and reason. Each is bound to its
own row (record id) and kind of record (context) in the AAD.
"""

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from commcentre.db import Base, UTCDateTime


class SupplementaryRequest(Base):
    __tablename__ = "supplementary_requests"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    reference: Mapped[str] = mapped_column(String(128))
    # The reference as identifiers are indexed (upper case, no separators): what inbound
    # replies are matched on.
    reference_key: Mapped[str] = mapped_column(String(128), index=True)
    form: Mapped[str] = mapped_column(String(1))
    alert_article: Mapped[int | None] = mapped_column(SmallInteger)
    # The point of Reg. 2018/1862 Art. 32(1) (a..e) of an Art. 32 alert.
    alert_category: Mapped[str | None] = mapped_column(String(1))
    alert_flags: Mapped[list[str]] = mapped_column(JSON)
    sis_alert_ref: Mapped[str | None] = mapped_column(String(64))
    eaw_ref: Mapped[str | None] = mapped_column(String(64))
    issuing_state: Mapped[str | None] = mapped_column(String(2))
    requesting_state: Mapped[str | None] = mapped_column(String(2), index=True)
    urgency: Mapped[str] = mapped_column(String(8))
    legal_basis: Mapped[str] = mapped_column(String(64))
    info_access: Mapped[str | None] = mapped_column(String(8))
    # Where replies and notices about the request go (the channel it came in on).
    channel: Mapped[str | None] = mapped_column(String(16))
    time_limit_rule: Mapped[str] = mapped_column(String(32))
    immediate: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(24))
    assignee: Mapped[str | None] = mapped_column(String(128))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_late: Mapped[bool] = mapped_column(Boolean)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Dir. (EU) 2023/977 Art. 5(2): the requester was told of a delay (reason sealed).
    delay_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delay_expected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # European Arrest Warrant follow-up (FD 2002/584 Art. 17 and 23).
    arrested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    arrest_consent: Mapped[bool | None] = mapped_column(Boolean)
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_extended: Mapped[bool] = mapped_column(Boolean)
    decision_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    surrender_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # FD 2002/584 Art. 23(3)/(4): a new surrender date agreed, and why.
    surrender_agreed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    surrender_postponement: Mapped[str | None] = mapped_column(String(24))
    surrendered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    surrender_escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Optimistic concurrency: every transition is UPDATE ... WHERE version = :read_version.
    version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enc_format: Mapped[int] = mapped_column(SmallInteger)
    key_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        # The listing: most urgent first, by (due_at, id), optionally within a status.
        Index("ix_supplementary_requests_due_at_id", "due_at", "id"),
        Index("ix_supplementary_requests_status_due_at_id", "status", "due_at", "id"),
        # The work queue: requests to act on immediately (Reg. 2018/1862 Art. 8(3)) first.
        Index("ix_supplementary_requests_immediate_due_at_id", "immediate", "due_at", "id"),
    )


class RequestHistoryEntry(Base):
    """One recorded step: a transition, an escalation or an EAW event."""

    __tablename__ = "supplementary_request_history"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("supplementary_requests.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    # Sealed {"note": ..., "reason": ...}; absent when the step carries no text.
    enc_format: Mapped[int | None] = mapped_column(SmallInteger)
    key_version: Mapped[int | None] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)


class RequestMessageLink(Base):
    """A message that belongs to a request: the request itself, a reply, or related traffic."""

    __tablename__ = "supplementary_request_messages"

    request_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("supplementary_requests.id", ondelete="CASCADE"), primary_key=True
    )
    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(8))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)
