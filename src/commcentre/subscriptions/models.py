"""Subscription rows: a callback, a sealed secret and a filter over inbound messages."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from commcentre.db import Base, JSONType, UTCDateTime


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # The API client that made it: only it (or an admin) sees, changes or deletes it.
    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("api_clients.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    # Filter in clear where it is routing metadata: {"subject_kinds": [...], "channels":
    # [...], "partners": [...], "priorities": [...], "events": [...]}; empty list = any.
    filter: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # HMAC of the normalised case_ref when the filter names one (the case_ref is sealed).
    case_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # {"secrets": ["whsec_..."], "case_ref": "..."} sealed as one envelope, bound to `id`.
    enc_format: Mapped[int] = mapped_column(SmallInteger)
    key_version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Deleting keeps the row (deliveries and the audit log name it); it matches nothing more.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_subscriptions_enabled_deleted_at", "enabled", "deleted_at"),)
