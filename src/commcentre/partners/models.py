"""Partner rows. Adapter config and signing secrets are sealed with the keyring."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, LargeBinary, SmallInteger, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from commcentre.db import Base, JSONType, UTCDateTime


class Partner(Base):
    __tablename__ = "partners"

    # A readable slug, e.g. "interpol-ncb": it appears in routing rules and URLs.
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    # Binds the sealed config to this row (envelope associated data needs a UUID).
    uid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2), index=True)
    channels: Mapped[list[str]] = mapped_column(JSON)
    adapter: Mapped[str] = mapped_column(String(64))
    # {"config": {...}, "secrets": ["whsec_..."]} sealed as one envelope.
    enc_format: Mapped[int] = mapped_column(SmallInteger)
    key_version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    allow_loopback: Mapped[bool] = mapped_column(Boolean)
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float)
    rate_burst: Mapped[int] = mapped_column(Integer)
    # Generic cell rate algorithm state: when the next delivery may start, shared by all workers.
    rate_tat: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
