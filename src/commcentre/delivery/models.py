"""Outbox rows: one delivery per (message, partner), and every attempt made.

A delivery carries a message (to a partner, or to an internal subscriber as
`message.inbound`) or an event about a supplementary-information request (to a
subscriber only, e.g. `request.overdue`): exactly one of `message_id` and
`request_id` is set. A request event keeps its metadata snapshot in
`event_data` (never free text or payload), taken when the event happened.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from commcentre.db import Base, JSONType, UTCDateTime


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"


class Delivery(Base):
    __tablename__ = "deliveries"

    # Also the `webhook-id` the partner sees: stable across retries, so it can deduplicate.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # Exactly one subject: a message, or a request an event is about.
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("supplementary_requests.id", ondelete="CASCADE")
    )
    # A request event: its type (`request.overdue`) and its metadata as sent in `data`.
    event: Mapped[str | None] = mapped_column(String(32))
    event_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Exactly one destination: a partner (outbound, forwarded) or an internal subscriber.
    partner_id: Mapped[str | None] = mapped_column(
        String(63), ForeignKey("partners.id", ondelete="RESTRICT"), index=True
    )
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("subscriptions.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A redriven dead letter ages from its redrive, so the retry policy's max age
    # gives it a full set of attempts again.
    redriven_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        CheckConstraint(
            "(partner_id IS NULL) <> (subscription_id IS NULL)", name="one_destination"
        ),
        CheckConstraint("(message_id IS NULL) <> (request_id IS NULL)", name="one_subject"),
        # A request event goes to a subscriber, with its type and data; a message has neither.
        CheckConstraint(
            "(request_id IS NULL AND event IS NULL AND event_data IS NULL) OR "
            "(request_id IS NOT NULL AND event IS NOT NULL AND event_data IS NOT NULL "
            "AND subscription_id IS NOT NULL)",
            name="request_event",
        ),
        # One delivery of an event per subscriber (also the index of request_id).
        UniqueConstraint("request_id", "event", "subscription_id"),
    )


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    # delivered | retry | permanent | gone | expired
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
