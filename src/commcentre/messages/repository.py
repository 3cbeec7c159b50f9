"""SQL for messages and their blind-index entries."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.bulk import insert_rows
from commcentre.db import WriteSession
from commcentre.delivery.models import Delivery
from commcentre.messages.models import Message, MessageIdentifier

_messages = cast(Table, Message.__table__)
_identifiers = cast(Table, MessageIdentifier.__table__)

# Columns a listing returns: never the sealed payload.
METADATA_COLUMNS = (
    Message.id,
    Message.direction,
    Message.type,
    Message.channel,
    Message.recipients,
    Message.priority,
    Message.legal_basis,
    Message.handling_codes,
    Message.subject_kinds,
    Message.status,
    Message.in_reply_to,
    Message.client_id,
    Message.created_at,
    Message.source_partner_id,
    Message.partner_ref,
    Message.forwarded_from,
    Message.seq,
)


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which messages a caller may see."""

    client_id: uuid.UUID
    sees_all: bool
    sees_inbound: bool

    def clause(self) -> ColumnElement[bool]:
        if self.sees_all:
            return true()
        own = Message.client_id == self.client_id
        if self.sees_inbound:
            return or_(own, Message.direction == "inbound")
        return own


@dataclass(frozen=True, slots=True)
class MessageFilter:
    direction: str | None = None
    status: str | None = None
    subject_kind_bit: int | None = None
    case_ref_digest: bytes | None = None
    since: datetime | None = None
    until: datetime | None = None
    partner: str | None = None


async def insert_messages(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    # Rows into the table (not the ORM entity): an executemany, no unit of work.
    await insert_rows(session, _messages, rows)


async def insert_identifiers(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    await insert_rows(session, _identifiers, rows)


async def case_digest_of(session: AsyncSession, message_id: uuid.UUID) -> bytes | None:
    """The thread (case_ref digest) of a stored message; None when unknown or unthreaded."""
    result = await session.execute(select(Message.case_digest).where(Message.id == message_id))
    return result.scalar_one_or_none()


async def get_visible(
    session: AsyncSession, message_id: uuid.UUID, visibility: Visibility
) -> Message | None:
    result = await session.execute(
        select(Message).where(Message.id == message_id, visibility.clause())
    )
    return result.scalar_one_or_none()


async def list_metadata(
    session: AsyncSession,
    visibility: Visibility,
    filters: MessageFilter,
    *,
    after: int | None,
    descending: bool,
    limit: int,
) -> Sequence[Any]:
    """One page of message metadata in seq order: the order messages were committed in.

    Paging forward by seq never misses a message that commits later (Message.seq), so
    `order=asc` with the cursor is a gap-free feed.
    """
    conditions: list[ColumnElement[bool]] = [visibility.clause()]
    if filters.direction is not None:
        conditions.append(Message.direction == filters.direction)
    if filters.status is not None:
        conditions.append(Message.status == filters.status)
    if filters.subject_kind_bit is not None:
        conditions.append(Message.subject_kinds.op("&")(filters.subject_kind_bit) != 0)
    if filters.since is not None:
        conditions.append(Message.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(Message.created_at < filters.until)
    if filters.case_ref_digest is not None:
        # The thread: messages with this case_ref, and replies that joined it without one
        # (the identifier index covers messages stored before threads were recorded).
        conditions.append(
            or_(
                Message.case_digest == filters.case_ref_digest,
                Message.id.in_(
                    select(MessageIdentifier.message_id).where(
                        MessageIdentifier.digest == filters.case_ref_digest
                    )
                ),
            )
        )
    if filters.partner is not None:
        # Received from the partner, or sent (addressed) to it.
        conditions.append(
            or_(
                Message.source_partner_id == filters.partner,
                exists().where(
                    Delivery.message_id == Message.id, Delivery.partner_id == filters.partner
                ),
            )
        )
    if after is not None:
        conditions.append(Message.seq < after if descending else Message.seq > after)
    order = Message.seq.desc() if descending else Message.seq.asc()
    result = await session.execute(
        select(*METADATA_COLUMNS).where(and_(*conditions)).order_by(order).limit(limit)
    )
    return result.all()


@dataclass(frozen=True, slots=True)
class DigestHits:
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    message_ids: list[uuid.UUID]


async def find_by_digests(
    session: AsyncSession, digests: Sequence[bytes], visibility: Visibility, *, max_ids: int
) -> DigestHits:
    """Visible messages carrying any of these blind-index digests."""
    if not digests:
        return DigestHits(0, None, None, [])
    matching = (
        select(MessageIdentifier.message_id)
        .where(MessageIdentifier.digest.in_(list(digests)))
        .distinct()
        .scalar_subquery()
    )
    base = select(Message.id, Message.created_at).where(
        Message.id.in_(matching), visibility.clause()
    )
    visible = base.subquery()
    summary = (
        await session.execute(
            select(func.count(), func.min(visible.c.created_at), func.max(visible.c.created_at))
        )
    ).one()
    ids = (await session.execute(base.order_by(Message.id.desc()).limit(max_ids))).scalars().all()
    return DigestHits(int(summary[0]), summary[1], summary[2], list(ids))
