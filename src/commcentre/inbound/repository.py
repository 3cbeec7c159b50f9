"""SQL of the inbox (one row per (partner, webhook-id) received), and of our own ids,
which a push must never carry (a captured delivery of ours sent back)."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.delivery.models import Delivery
from commcentre.inbound.models import InboxEntry
from commcentre.messages.models import Message

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


@dataclass(frozen=True, slots=True)
class OwnDelivery:
    """One of our deliveries, by the destination it was signed for."""

    id: uuid.UUID
    partner_id: str | None
    subscription_id: uuid.UUID | None


async def own_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> OwnDelivery | None:
    """Our delivery with this id (our `webhook-id` on the wire), if there is one."""
    result = await session.execute(
        select(Delivery.partner_id, Delivery.subscription_id).where(Delivery.id == delivery_id)
    )
    row = result.one_or_none()
    return None if row is None else OwnDelivery(delivery_id, row.partner_id, row.subscription_id)


async def is_own_message(session: AsyncSession, message_id: uuid.UUID) -> bool:
    """Whether a message of ours (either direction) has this id."""
    result = await session.execute(select(Message.id).where(Message.id == message_id))
    return result.scalar_one_or_none() is not None
