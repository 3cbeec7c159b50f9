"""SQL for subscriptions."""

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.auth.models import ApiClient
from commcentre.db import WriteSession
from commcentre.subscriptions.models import Subscription


def add(session: AsyncSession, subscription: Subscription) -> None:
    session.add(subscription)


async def save(session: AsyncSession, subscription: Subscription) -> None:
    """Write the changes made to a loaded subscription."""
    await session.flush()


async def get_live(session: AsyncSession, subscription_id: uuid.UUID) -> Subscription | None:
    """A subscription that is not deleted."""
    result = await session.execute(
        select(Subscription).where(
            Subscription.id == subscription_id, Subscription.deleted_at.is_(None)
        )
    )
    return result.scalar_one_or_none()


async def get_any(session: AsyncSession, subscription_id: uuid.UUID) -> Subscription | None:
    """A subscription, deleted or not."""
    return await session.get(Subscription, subscription_id)


# Built once (the dispatcher loads subscriptions with every claim that has some).
_BY_IDS = select(Subscription).where(Subscription.id.in_(bindparam("ids", expanding=True)))


async def by_ids(
    session: WriteSession, subscription_ids: Collection[uuid.UUID]
) -> Sequence[Subscription]:
    """Subscriptions by id, deleted ones included (the dispatcher dead-letters those)."""
    if not subscription_ids:
        return []
    result = await session.execute(_BY_IDS, {"ids": list(subscription_ids)})
    return result.scalars().all()


async def list_page(
    session: AsyncSession, *, owner: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> Sequence[Subscription]:
    """One page of live subscriptions ordered by id; `owner` None: everyone's."""
    stmt = (
        select(Subscription)
        .where(Subscription.deleted_at.is_(None))
        .order_by(Subscription.id)
        .limit(limit)
    )
    if owner is not None:
        stmt = stmt.where(Subscription.client_id == owner)
    if after is not None:
        stmt = stmt.where(Subscription.id > after)
    return (await session.execute(stmt)).scalars().all()


async def fanout_candidates(session: AsyncSession, case_digest: bytes | None) -> Sequence[Any]:
    """id, filter and case_digest of every enabled, live subscription that could match.

    One query; a subscription naming a case is a candidate only for that case.
    """
    # The owner must still hold a live key: a revoked client's callbacks receive nothing.
    live_owner = select(ApiClient.id).where(ApiClient.revoked_at.is_(None))
    stmt = select(Subscription.id, Subscription.filter, Subscription.case_digest).where(
        Subscription.enabled.is_(True),
        Subscription.deleted_at.is_(None),
        Subscription.client_id.in_(live_owner),
    )
    if case_digest is None:
        stmt = stmt.where(Subscription.case_digest.is_(None))
    else:
        stmt = stmt.where(
            or_(Subscription.case_digest.is_(None), Subscription.case_digest == case_digest)
        )
    return (await session.execute(stmt.order_by(Subscription.id))).all()


async def disable_for_client(
    session: AsyncSession, client_id: uuid.UUID, *, reason: str, now: datetime
) -> list[uuid.UUID]:
    """Disable every live, enabled subscription of a client; their ids."""
    result = await session.execute(
        update(Subscription)
        .where(
            Subscription.client_id == client_id,
            Subscription.enabled.is_(True),
            Subscription.deleted_at.is_(None),
        )
        .values(enabled=False, disabled_reason=reason, updated_at=now)
        .returning(Subscription.id)
    )
    return list(result.scalars())
