"""Message rows: routing metadata in clear, everything else sealed."""

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
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
    # The thread: HMAC of the normalised case_ref (the case_ref itself is sealed). A reply
    # without a case_ref joins the thread of the message it answers.
    case_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)
    # Inbound: the partner that sent it and the partner's own id of it.
    source_partner_id: Mapped[str | None] = mapped_column(
        String(63), ForeignKey("partners.id", ondelete="RESTRICT")
    )
    partner_ref: Mapped[str | None] = mapped_column(String(200))
    # A forwarded copy names the received message it was made from.
    forwarded_from: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="SET NULL")
    )
    # The seq of the message's collection entry in the audit log. Audit appends hold the
    # chain head's lock until commit, so `seq` order is commit order: a reader paging by
    # seq never skips a message that commits after it read (the pull feed relies on it).
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    # The X-Request-ID of the request that stored it: the dispatcher's log lines of its
    # deliveries carry it, so one id follows a message from the API to the partner.
    request_id: Mapped[str | None] = mapped_column(String(64))
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
        Index("ix_messages_direction_seq", "direction", "seq"),
    )


class MessageIdentifier(Base):
    """Blind-index entry: an HMAC of one normalised identifier found in a message."""

    __tablename__ = "message_identifiers"

    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True, index=True)
