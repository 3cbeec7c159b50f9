"""SQL of retention: expired messages without open work, shredding, removal."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.delivery.models import Delivery
from commcentre.messages.models import Message, MessageIdentifier
from commcentre.partners.models import Partner
from commcentre.requests.models import RequestMessageLink, SupplementaryRequest
from commcentre.subscriptions.models import Subscription

OPEN_DELIVERY_STATUSES = ("pending", "retrying", "in_flight")
SETTLED_REQUEST_STATUSES = ("closed", "rejected")
SHREDDED = b""
SHREDDED_VERSION = 0


async def expired(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    lock: bool,
    among: Sequence[uuid.UUID] | None = None,
) -> Sequence[Any]:
    """Messages past purge_after with no delivery still to be made (oldest first).

    With `lock` (PostgreSQL) they are locked, skipping those another worker holds, so
    that two workers never erase one message twice.
    """
    # Work still to be done: a delivery the dispatcher would still make. Deliveries held
    # for a disabled partner or subscription (or one deleted) do not keep a message past
    # its retention: they go with it.
    open_delivery = exists().where(
        Delivery.message_id == Message.id,
        Delivery.status.in_(OPEN_DELIVERY_STATUSES),
        or_(
            Delivery.partner_id.in_(select(Partner.id).where(Partner.enabled.is_(True))),
            Delivery.subscription_id.in_(
                select(Subscription.id).where(
                    Subscription.enabled.is_(True), Subscription.deleted_at.is_(None)
                )
            ),
        ),
    )
    # A request still being worked on (answered counts: it is not closed yet) keeps its
    # messages, whatever their age.
    open_request = exists().where(
        RequestMessageLink.message_id == Message.id,
        RequestMessageLink.request_id == SupplementaryRequest.id,
        SupplementaryRequest.status.not_in(SETTLED_REQUEST_STATUSES),
    )
    query = (
        select(Message.id, Message.direction, Message.legal_basis, Message.purge_after)
        .where(Message.purge_after <= now, ~open_delivery, ~open_request)
        .order_by(Message.purge_after)
        .limit(limit)
    )
    if among is not None:
        query = query.where(Message.id.in_(among))
    if lock:
        query = query.with_for_update(of=Message, skip_locked=True)
    return (await session.execute(query)).all()


async def shred(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    """Destroy the data keys: the ciphertext can never be opened again."""
    await session.execute(
        update(Message)
        .where(Message.id.in_(ids))
        # Version 0 is no KEK: key status, rewrap and retire leave shredded rows alone.
        .values(wrapped_key=SHREDDED, ciphertext=SHREDDED, key_version=SHREDDED_VERSION)
    )


async def remove(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    """Remove the rows: blind-index entries first, then the message (deliveries, attempts
    and inbox rows go with it; a forwarded copy keeps its own content and loses the link)."""
    await session.execute(delete(MessageIdentifier).where(MessageIdentifier.message_id.in_(ids)))
    await session.execute(delete(Message).where(Message.id.in_(ids)))
