"""SQL for API clients."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.auth.models import ApiClient


async def get_by_key_hash(session: AsyncSession, key_hash: bytes) -> ApiClient | None:
    result = await session.execute(select(ApiClient).where(ApiClient.key_hash == key_hash))
    return result.scalar_one_or_none()


async def get(session: AsyncSession, client_id: uuid.UUID) -> ApiClient | None:
    return await session.get(ApiClient, client_id)


async def list_clients(session: AsyncSession) -> Sequence[ApiClient]:
    result = await session.execute(select(ApiClient).order_by(ApiClient.created_at, ApiClient.id))
    return result.scalars().all()


def add(session: AsyncSession, client: ApiClient) -> None:
    session.add(client)


async def revoke(session: AsyncSession, client: ApiClient, *, at: datetime) -> None:
    client.revoked_at = at
    await session.flush()
