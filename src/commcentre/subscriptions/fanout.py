"""Fan-out: the subscriber deliveries an inbound message gets when it is stored.

Called by the inbound endpoint inside its write transaction, so the message
and its delivery rows commit together (transactional outbox), exactly like
outbound messages and their partner deliveries.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.delivery.models import DeliveryStatus
from commcentre.ids import new_id
from commcentre.subscriptions import repository
from commcentre.subscriptions.filters import matches
from commcentre.subscriptions.schemas import SubscriptionEvent

__all__ = ["deliveries_for"]


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
        {
            "id": new_id(),
            "message_id": message_row["id"],
            "partner_id": None,
            "subscription_id": row.id,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for row in candidates
        if matches(row.filter or {}, row.case_digest, message_row, event=event)
    ]
