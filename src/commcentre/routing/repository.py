"""SQL for routing rules and the routing version counter."""

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.routing.models import RoutingRule, RoutingState

STATE_ID = 1


async def bump_version(session: AsyncSession) -> None:
    """Tell every process that rules or partners changed (in the caller's transaction)."""
    await session.execute(
        update(RoutingState)
        .where(RoutingState.id == STATE_ID)
        .values(version=RoutingState.version + 1)
    )


async def current_version(session: AsyncSession) -> int:
    result = await session.execute(select(RoutingState.version).where(RoutingState.id == STATE_ID))
    return int(result.scalar_one())


def add(session: AsyncSession, rule: RoutingRule) -> None:
    session.add(rule)


async def get(session: AsyncSession, rule_id: uuid.UUID) -> RoutingRule | None:
    return await session.get(RoutingRule, rule_id)


async def remove(session: AsyncSession, rule_id: uuid.UUID) -> None:
    await session.execute(delete(RoutingRule).where(RoutingRule.id == rule_id))


async def list_page(
    session: AsyncSession, *, after: tuple[int, uuid.UUID] | None, limit: int
) -> Sequence[RoutingRule]:
    """One page of rules in evaluation order (position, then id)."""
    stmt = select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id).limit(limit)
    if after is not None:
        position, rule_id = after
        stmt = stmt.where(
            or_(
                RoutingRule.position > position,
                (RoutingRule.position == position) & (RoutingRule.id > rule_id),
            )
        )
    return (await session.execute(stmt)).scalars().all()


async def all_rules(session: AsyncSession) -> Sequence[RoutingRule]:
    """Every rule, in evaluation order (the routing directory loads them all)."""
    result = await session.execute(
        select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)
    )
    return result.scalars().all()
