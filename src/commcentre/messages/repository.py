"""SQL for messages and their blind-index entries."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.db import WriteSession
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


async def insert_messages(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        # Core insert on the table (not the ORM entity): a plain executemany, no unit of work.
        await session.execute(insert(_messages), list(rows))


async def insert_identifiers(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(_identifiers), list(rows))


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
    after: uuid.UUID | None,
    descending: bool,
    limit: int,
) -> Sequence[Any]:
    """One page of message metadata in id (= time) order."""
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
        conditions.append(
            Message.id.in_(
                select(MessageIdentifier.message_id).where(
                    MessageIdentifier.digest == filters.case_ref_digest
                )
            )
        )
    if after is not None:
        conditions.append(Message.id < after if descending else Message.id > after)
    order = Message.id.desc() if descending else Message.id.asc()
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


async def count_by_key_version(session: AsyncSession) -> dict[int, int]:
    result = await session.execute(
        select(Message.key_version, func.count()).group_by(Message.key_version)
    )
    return {int(version): int(count) for version, count in result.all()}


async def sealed_batch_below(session: AsyncSession, version: int, *, limit: int) -> Sequence[Any]:
    """Messages still sealed under a KEK older than `version`, oldest first."""
    result = await session.execute(
        select(Message.id, Message.enc_format, Message.key_version, Message.wrapped_key)
        .where(Message.key_version < version)
        .order_by(Message.id)
        .limit(limit)
    )
    return result.all()


async def update_wrapped_key(
    session: AsyncSession,
    message_id: uuid.UUID,
    *,
    old_version: int,
    version: int,
    wrapped_key: bytes,
) -> bool:
    """Swap the wrapped data key, unless another process already did."""
    result = await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.key_version == old_version)
        .values(key_version=version, wrapped_key=wrapped_key)
    )
    return bool(getattr(result, "rowcount", 0))
