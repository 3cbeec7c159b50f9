"""Fan-out: the subscriber deliveries an inbound message, or a request event, gets.

Called inside the write transaction that stores the message (the inbound
endpoint) or records the event (the escalation job), so both commit with
their delivery rows (transactional outbox), exactly like outbound messages and
their partner deliveries.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.delivery.repository import pending_row
from commcentre.subscriptions import repository
from commcentre.subscriptions.filters import matches, wants_request_event
from commcentre.subscriptions.schemas import SubscriptionEvent

__all__ = ["deliveries_for", "request_event_deliveries"]


async def deliveries_for(
    session: AsyncSession, message_row: Mapping[str, Any], *, now: datetime
) -> list[dict[str, Any]]:
    """Delivery rows (not yet inserted) for every enabled, live subscription that matches.

    `message_row` is the messages row being inserted, as a dict of column
    values. Only inbound messages fan out (event `message.inbound`). Insert the
    rows with `delivery.repository.insert_deliveries` in the same transaction.
    """
    if message_row.get("direction") != "inbound":
        return []
    event = SubscriptionEvent.MESSAGE_INBOUND.value
    candidates = await repository.fanout_candidates(session, message_row.get("case_digest"))
    return [
        pending_row(now, message_id=message_row["id"], partner_id=None, subscription_id=row.id)
        for row in candidates
        if matches(row.filter or {}, row.case_digest, message_row, event=event)
    ]


async def request_event_deliveries(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    event: SubscriptionEvent,
    data: Mapping[str, Any],
    reference_digest: bytes | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Delivery rows (not yet inserted) of a request event, one per subscription that
    lists `event` (and whose case_ref, if any, is the request's reference).

    `data` is the event's body: request metadata only, never free text. Without a
    `reference_digest` only subscriptions that name no case can match.
    """
    candidates = await repository.fanout_candidates(session, reference_digest)
    return [
        pending_row(
            now,
            message_id=None,
            request_id=request_id,
            event=event.value,
            event_data=dict(data),
            partner_id=None,
            subscription_id=row.id,
        )
        for row in candidates
        if wants_request_event(
            row.filter or {},
            row.case_digest,
            event=event.value,
            reference_digest=reference_digest,
        )
    ]
