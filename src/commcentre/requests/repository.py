"""SQL for supplementary-information requests, their history and message links.

Functions used by the automation hooks take a `WriteSession` (an AsyncSession, or
the ingest path's synchronous session on SQLite) and use Core statements only.
"""

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.db import WriteSession
from commcentre.delivery.models import Delivery
from commcentre.messages.models import Message
from commcentre.partners.models import Partner
from commcentre.requests.models import (
    RequestHistoryEntry,
    RequestMessageLink,
    SupplementaryRequest,
)

_requests = cast(Table, SupplementaryRequest.__table__)
_history = cast(Table, RequestHistoryEntry.__table__)
_links = cast(Table, RequestMessageLink.__table__)


@dataclass(frozen=True, slots=True)
class RequestFilter:
    statuses: Collection[str] | None = None
    overdue: bool | None = None
    form: str | None = None
    requesting_state: str | None = None
    due_before: datetime | None = None
    immediate: bool | None = None


@dataclass(frozen=True, slots=True)
class ListPosition:
    """Where a page ended, in the listing's order (immediate first, then due_at, id)."""

    immediate: bool
    due_at: datetime
    id: uuid.UUID


async def insert_request(session: WriteSession, row: dict[str, Any]) -> None:
    await session.execute(insert(_requests), [row])


async def insert_history(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(_history), list(rows))


async def insert_links(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(_links), list(rows))


async def get(session: WriteSession, request_id: uuid.UUID) -> Any:
    """The request's row (a Core row, a snapshot), or None."""
    result = await session.execute(select(_requests).where(_requests.c.id == request_id))
    return result.one_or_none()


async def update_if_version(
    session: WriteSession, request_id: uuid.UUID, *, version: int, values: dict[str, Any]
) -> bool:
    """Apply `values` and bump the version if nobody changed the row since `version` was read.

    On PostgreSQL a concurrent writer of the same row waits for the first to commit,
    then finds the version changed: exactly one of them wins.
    """
    result = await session.execute(
        update(_requests)
        .where(_requests.c.id == request_id, _requests.c.version == version)
        .values(**values, version=version + 1)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def latest_by_reference(
    session: WriteSession, reference_key: str, *, requesting_state: str | None = None
) -> Any:
    """The most recently received request with this reference (optionally from a state)."""
    query = select(_requests).where(_requests.c.reference_key == reference_key)
    if requesting_state is not None:
        query = query.where(_requests.c.requesting_state == requesting_state)
    query = query.order_by(_requests.c.received_at.desc(), _requests.c.id.desc()).limit(1)
    return (await session.execute(query)).one_or_none()


async def request_linked_to(session: WriteSession, message_id: uuid.UUID) -> uuid.UUID | None:
    """The request a message is linked to, if any (the most recent link)."""
    query = (
        select(_links.c.request_id)
        .where(_links.c.message_id == message_id)
        .order_by(_links.c.linked_at.desc())
        .limit(1)
    )
    value: uuid.UUID | None = await session.scalar(query)
    return value


async def link_exists(session: WriteSession, request_id: uuid.UUID, message_id: uuid.UUID) -> bool:
    query = select(_links.c.role).where(
        _links.c.request_id == request_id, _links.c.message_id == message_id
    )
    return await session.scalar(query) is not None


async def existing_messages(
    session: AsyncSession, message_ids: Collection[uuid.UUID], *, now: datetime
) -> set[uuid.UUID]:
    """Those of the messages that exist and are within their retention period."""
    if not message_ids:
        return set()
    rows = await session.scalars(
        select(Message.id).where(Message.id.in_(list(message_ids)), Message.purge_after > now)
    )
    return set(rows)


async def partner_facts(session: WriteSession, partner_id: str) -> tuple[str | None, str] | None:
    """(country, adapter) of a partner, or None when it does not exist."""
    row = (
        await session.execute(
            select(Partner.country, Partner.adapter).where(Partner.id == partner_id)
        )
    ).one_or_none()
    return None if row is None else (row.country, row.adapter)


async def partner_country(session: WriteSession, partner_id: str) -> str | None:
    value: str | None = await session.scalar(
        select(Partner.country).where(Partner.id == partner_id)
    )
    return value


async def history_of(session: AsyncSession, request_id: uuid.UUID) -> Sequence[Any]:
    result = await session.execute(
        select(_history)
        .where(_history.c.request_id == request_id)
        .order_by(_history.c.occurred_at, _history.c.id)
    )
    return result.all()


async def links_of(session: AsyncSession, request_id: uuid.UUID) -> Sequence[Any]:
    result = await session.execute(
        select(_links)
        .where(_links.c.request_id == request_id)
        .order_by(_links.c.linked_at, _links.c.message_id)
    )
    return result.all()


async def list_requests(
    session: AsyncSession,
    filters: RequestFilter,
    *,
    open_statuses: Collection[str],
    now: datetime,
    after: ListPosition | None,
    limit: int,
) -> Sequence[Any]:
    """One page, the most urgent first: those to act on immediately, then by (due_at, id)."""
    query = select(_requests)
    if filters.statuses:
        query = query.where(_requests.c.status.in_(list(filters.statuses)))
    if filters.form is not None:
        query = query.where(_requests.c.form == filters.form)
    if filters.requesting_state is not None:
        query = query.where(_requests.c.requesting_state == filters.requesting_state)
    if filters.due_before is not None:
        query = query.where(_requests.c.due_at < filters.due_before)
    if filters.immediate is not None:
        query = query.where(_requests.c.immediate == filters.immediate)
    overdue = and_(_requests.c.status.in_(list(open_statuses)), _requests.c.due_at < now)
    if filters.overdue is True:
        query = query.where(overdue)
    elif filters.overdue is False:
        query = query.where(~overdue)
    if after is not None:
        later_in_group = and_(
            _requests.c.immediate == after.immediate,
            or_(
                _requests.c.due_at > after.due_at,
                and_(_requests.c.due_at == after.due_at, _requests.c.id > after.id),
            ),
        )
        # Immediate requests come first: after one of them, every other request follows.
        query = query.where(
            or_(later_in_group, _requests.c.immediate.is_(False))
            if after.immediate
            else later_in_group
        )
    query = query.order_by(*_MOST_URGENT_FIRST).limit(limit)
    return (await session.execute(query)).all()


# Reg. 2018/1862 Art. 8(3): requests to act on immediately before the others, then the
# earliest deadline.
_MOST_URGENT_FIRST = (_requests.c.immediate.desc(), _requests.c.due_at, _requests.c.id)


async def overdue_unescalated(
    session: AsyncSession, *, open_statuses: Collection[str], now: datetime, limit: int
) -> list[uuid.UUID]:
    query = (
        select(_requests.c.id)
        .where(
            _requests.c.status.in_(list(open_statuses)),
            _requests.c.due_at < now,
            _requests.c.escalated_at.is_(None),
        )
        .order_by(*_MOST_URGENT_FIRST)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def claim_escalations(
    session: AsyncSession,
    request_ids: Sequence[uuid.UUID],
    *,
    open_statuses: Collection[str],
    now: datetime,
) -> list[tuple[uuid.UUID, str]]:
    """Stamp escalated_at on those still unescalated and open; returns (id, status) claimed.

    The condition is checked again under the row lock on PostgreSQL: of two workers
    claiming the same request, the one that waited finds escalated_at set and skips it.
    """
    if not request_ids:
        return []
    result = await session.execute(
        update(_requests)
        .where(
            _requests.c.id.in_(list(request_ids)),
            _requests.c.escalated_at.is_(None),
            _requests.c.status.in_(list(open_statuses)),
        )
        .values(escalated_at=now)
        .returning(_requests.c.id, _requests.c.status)
    )
    return sorted((row.id, row.status) for row in result.all())


# Arrest-warrant deadlines: (due column, done column, escalation stamp) per deadline.
_WARRANT_DEADLINES = {
    "decision": ("decision_due_at", "decided_at", "decision_escalated_at"),
    "surrender": ("surrender_due_at", "surrendered_at", "surrender_escalated_at"),
}


async def overdue_warrant_steps(
    session: AsyncSession, *, deadline: str, now: datetime, limit: int
) -> list[uuid.UUID]:
    """Requests whose warrant `deadline` (decision or surrender) passed unmet, unescalated."""
    due, done, stamp = (_requests.c[name] for name in _WARRANT_DEADLINES[deadline])
    query = (
        select(_requests.c.id)
        .where(due.is_not(None), due < now, done.is_(None), stamp.is_(None))
        .order_by(due, _requests.c.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def claim_warrant_escalations(
    session: AsyncSession, request_ids: Sequence[uuid.UUID], *, deadline: str, now: datetime
) -> list[uuid.UUID]:
    """Stamp the escalation of `deadline` on those still unmet and unescalated; the claimed."""
    if not request_ids:
        return []
    due, done, stamp = (_requests.c[name] for name in _WARRANT_DEADLINES[deadline])
    result = await session.execute(
        update(_requests)
        .where(
            _requests.c.id.in_(list(request_ids)),
            due < now,
            done.is_(None),
            stamp.is_(None),
        )
        .values({stamp.name: now})
        .returning(_requests.c.id)
    )
    return sorted(row.id for row in result.all())


async def subscriptions_told(
    session: AsyncSession, request_id: uuid.UUID, event: str
) -> set[uuid.UUID]:
    """Subscriptions that already have a delivery of `event` about this request."""
    rows = await session.scalars(
        select(Delivery.subscription_id).where(
            Delivery.request_id == request_id, Delivery.event == event
        )
    )
    return {row for row in rows if row is not None}
