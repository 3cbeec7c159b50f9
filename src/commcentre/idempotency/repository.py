"""SQL for idempotency records."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, insert, or_, select

from commcentre.db import WriteSession
from commcentre.idempotency.models import IdempotencyRecord

ClientKey = tuple[uuid.UUID, str]

_records = cast(Table, IdempotencyRecord.__table__)


async def find_many(
    session: WriteSession, keys: Iterable[ClientKey], *, now: datetime
) -> dict[ClientKey, IdempotencyRecord]:
    """The live records for these (client, key) pairs."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    found: dict[ClientKey, IdempotencyRecord] = {}
    for start in range(0, len(wanted), 200):
        chunk = wanted[start : start + 200]
        condition = or_(
            *(and_(IdempotencyRecord.client_id == c, IdempotencyRecord.key == k) for c, k in chunk)
        )
        result = await session.execute(
            select(IdempotencyRecord).where(condition, IdempotencyRecord.expires_at > now)
        )
        for record in result.scalars():
            found[(record.client_id, record.key)] = record
    return found


async def insert_many(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(_records), list(rows))


async def delete_expired(
    session: WriteSession, *, now: datetime, keys: Iterable[ClientKey] = ()
) -> int:
    """Remove expired records (all of them, or only these keys)."""
    stmt = delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
    wanted = list(keys)
    if wanted:
        stmt = stmt.where(
            or_(
                *(
                    and_(IdempotencyRecord.client_id == c, IdempotencyRecord.key == k)
                    for c, k in wanted
                )
            )
        )
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)
