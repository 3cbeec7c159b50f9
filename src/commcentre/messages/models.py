"""Message rows: routing metadata in clear, everything else sealed."""

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from commcentre.db import Base, UTCDateTime


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    priority: Mapped[str] = mapped_column(String(8))
    legal_basis: Mapped[str] = mapped_column(String(64))
    handling_codes: Mapped[list[str]] = mapped_column(JSON)
    # Bit set of SubjectKind (see messages.kinds): filterable on SQLite and PostgreSQL alike.
    subject_kinds: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(24))
    in_reply_to: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    client_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("api_clients.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    purge_after: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    enc_format: Mapped[int] = mapped_column(SmallInteger)
    key_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_messages_client_id_id", "client_id", "id"),
        Index("ix_messages_direction_id", "direction", "id"),
    )


class MessageIdentifier(Base):
    """Blind-index entry: an HMAC of one normalised identifier found in a message."""

    __tablename__ = "message_identifiers"

    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True, index=True)
