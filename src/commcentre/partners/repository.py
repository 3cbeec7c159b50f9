"""SQL for partners."""

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.partners.models import Partner

# What routing needs of a partner: never the sealed columns.
ROUTING_COLUMNS = (Partner.id, Partner.country, Partner.channels, Partner.enabled)


def add(session: AsyncSession, partner: Partner) -> None:
    session.add(partner)


async def save(session: AsyncSession, partner: Partner) -> None:
    """Write the changes made to a loaded partner."""
    await session.flush()


async def get(session: AsyncSession, partner_id: str) -> Partner | None:
    return await session.get(Partner, partner_id)


async def exists(session: AsyncSession, partner_id: str) -> bool:
    result = await session.execute(select(Partner.id).where(Partner.id == partner_id))
    return result.scalar_one_or_none() is not None


async def existing_ids(session: AsyncSession, partner_ids: Collection[str]) -> set[str]:
    """Those of `partner_ids` that name a partner."""
    if not partner_ids:
        return set()
    result = await session.execute(select(Partner.id).where(Partner.id.in_(list(partner_ids))))
    return set(result.scalars())


async def list_page(session: AsyncSession, *, after: str | None, limit: int) -> Sequence[Partner]:
    """One page of partners ordered by id."""
    stmt = select(Partner).order_by(Partner.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Partner.id > after)
    return (await session.execute(stmt)).scalars().all()


async def routing_entries(session: AsyncSession) -> Sequence[Any]:
    """id, country, channels and enabled of every partner."""
    return (await session.execute(select(*ROUTING_COLUMNS).order_by(Partner.id))).all()
