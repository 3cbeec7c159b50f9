"""SQL of the inbox: one row per (partner, webhook-id) received."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.inbound.models import InboxEntry

_inbox = cast(Table, InboxEntry.__table__)


@dataclass(frozen=True, slots=True)
class Received:
    """What the inbox knows of a webhook-id already received."""

    message_id: uuid.UUID
    received_at: datetime


async def find(session: AsyncSession, partner_id: str, webhook_id: str) -> Received | None:
    result = await session.execute(
        select(InboxEntry.message_id, InboxEntry.received_at).where(
            InboxEntry.partner_id == partner_id, InboxEntry.webhook_id == webhook_id
        )
    )
    row = result.one_or_none()
    return None if row is None else Received(row.message_id, row.received_at)


async def insert_entry(session: AsyncSession, row: dict[str, Any]) -> None:
    """Add an inbox row; a second (partner, webhook-id) raises IntegrityError."""
    await session.execute(insert(_inbox), [row])
