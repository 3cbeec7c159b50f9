"""Idempotency-Key for ordinary (non-ingest) POSTs that create something.

The record is written in the same transaction as what the POST creates, so a
stored response always describes something that exists. A concurrent duplicate
in another process meets the primary key, rolls back and replays the winner's
response; within this process a duplicate that arrives while the first is still
running gets 409.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commcentre.errors import Conflict, UnprocessableContent
from commcentre.idempotency import repository


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    replayed: bool


class IdempotentRunner:
    """Runs a create operation at most once per (client, key)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: timedelta) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._in_flight: set[tuple[uuid.UUID, str]] = set()

    async def run(
        self,
        *,
        client_id: uuid.UUID,
        key: str | None,
        operation: str,
        fingerprint: bytes,
        now: datetime,
        create: Callable[[AsyncSession], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> StoredResponse:
        """Run `create` in a transaction (it flushes, never commits) unless `key` was seen."""
        if key is None:
            async with self._sessions() as session, session.begin():
                status, body = await create(session)
            return StoredResponse(status, body, replayed=False)
        marker = (client_id, key)
        if marker in self._in_flight:
            raise Conflict("a request with this Idempotency-Key is still in flight")
        self._in_flight.add(marker)
        try:
            for _ in range(2):
                try:
                    return await self._run_once(client_id, key, operation, fingerprint, now, create)
                except IntegrityError:
                    continue  # another process stored this key first: replay its answer
            raise Conflict("this Idempotency-Key is being used concurrently; retry")
        finally:
            self._in_flight.discard(marker)

    async def _run_once(
        self,
        client_id: uuid.UUID,
        key: str,
        operation: str,
        fingerprint: bytes,
        now: datetime,
        create: Callable[[AsyncSession], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> StoredResponse:
        async with self._sessions() as session, session.begin():
            found = await repository.find_many(session, [(client_id, key)], now=now)
            record = found.get((client_id, key))
            if record is not None:
                if record.fingerprint != fingerprint or record.operation != operation:
                    raise UnprocessableContent(
                        "this Idempotency-Key was used before with a different request"
                    )
                return StoredResponse(record.status_code, dict(record.response), replayed=True)
            await repository.delete_expired(session, now=now, keys=[(client_id, key)])
            status, body = await create(session)
            await repository.insert_many(
                session,
                [
                    {
                        "client_id": client_id,
                        "key": key,
                        "operation": operation,
                        "fingerprint": fingerprint,
                        "status_code": status,
                        "response": body,
                        "created_at": now,
                        "expires_at": now + self._ttl,
                    }
                ],
            )
        return StoredResponse(status, body, replayed=False)
