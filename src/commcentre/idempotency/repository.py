"""SQL for idempotency records."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, tuple_

from commcentre.bulk import insert_rows
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
        result = await session.execute(_FIND, {"pairs": chunk, "now": now})
        for record in result.scalars():
            found[(record.client_id, record.key)] = record
    return found


_PAIR = tuple_(_records.c.client_id, _records.c.key)
_FIND = select(IdempotencyRecord).where(
    tuple_(IdempotencyRecord.client_id, IdempotencyRecord.key).in_(
        bindparam("pairs", expanding=True)
    ),
    IdempotencyRecord.expires_at > bindparam("now"),
)
_DELETE_KEYS = _records.delete().where(
    _records.c.expires_at <= bindparam("now"),
    _PAIR.in_(bindparam("pairs", expanding=True)),
)


async def insert_many(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    await insert_rows(session, _records, rows)


async def delete_expired(
    session: WriteSession, *, now: datetime, keys: Iterable[ClientKey] = ()
) -> int:
    """Remove expired records (all of them, or only these keys)."""
    wanted = list(keys)
    if wanted:
        result = await session.execute(_DELETE_KEYS, {"now": now, "pairs": wanted})
    else:
        result = await session.execute(_records.delete().where(_records.c.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
