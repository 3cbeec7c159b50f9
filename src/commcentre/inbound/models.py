"""The inbox: one row per (partner, webhook-id) received, so a retried webhook is a duplicate."""

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from commcentre.db import Base, UTCDateTime


class InboxEntry(Base):
    __tablename__ = "inbox"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    partner_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("partners.id", ondelete="RESTRICT")
    )
    webhook_id: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("partner_id", "webhook_id"),)
