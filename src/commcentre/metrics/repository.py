"""The store's gauges, read at scrape time: the same answer from every process."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.delivery.models import Delivery
from commcentre.metrics.collectors import SUBSCRIBER
from commcentre.requests.models import SupplementaryRequest

_OPEN = ("pending", "retrying", "in_flight")


@dataclass(frozen=True, slots=True)
class QueueRow:
    destination: str
    status: str
    count: int
    oldest_due: datetime | None


async def queue(session: AsyncSession, *, now: datetime) -> list[QueueRow]:
    """Open and dead deliveries per destination and status, with the oldest due time."""
    destination = func.coalesce(Delivery.partner_id, literal(SUBSCRIBER)).label("destination")
    due = case((Delivery.next_attempt_at <= now, Delivery.next_attempt_at), else_=None)
    result = await session.execute(
        select(destination, Delivery.status, func.count(), func.min(due))
        .where(Delivery.status.in_((*_OPEN, "dead")))
        .group_by(destination, Delivery.status)
    )
    return [QueueRow(d, s, int(n), oldest) for d, s, n, oldest in result.all()]


_SETTLED = ("closed", "rejected")


async def requests_by_status(session: AsyncSession, *, now: datetime) -> dict[str, tuple[int, int]]:
    """{status: (requests, of which past due)} over requests not closed or rejected."""
    overdue = func.sum(case((SupplementaryRequest.due_at < now, 1), else_=0))
    result = await session.execute(
        select(SupplementaryRequest.status, func.count(), overdue)
        .where(SupplementaryRequest.status.not_in(_SETTLED))
        .group_by(SupplementaryRequest.status)
    )
    return {status: (int(n), int(late or 0)) for status, n, late in result.all()}
