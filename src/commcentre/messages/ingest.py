"""Group commit: many accepted messages, one transaction, one fsync.

Per-request durability is what limits ingest (PERFORMANCE.md), so requests
hand their prepared rows to one writer task per process. It gathers what is
pending (up to `batch_max`, waiting at most `batch_wait` for more), writes it
all in one transaction, commits, and only then resolves each request's future:
a 202 always follows a durable commit. The idempotency check lives inside the
writer too, so it needs no extra round trip or lock per request.

When a batch fails, each of its messages is retried in a transaction of its
own, so one bad message never fails its neighbours.

The writer runs on a thread of its own with its own event loop and engine: a
request-handling loop under load takes milliseconds to come back to any one
await, and a batch makes about ten database round trips. On an idle loop of its
own, those round trips cost microseconds. Its transactions come from
`Database.write_transaction`: on SQLite that is the stdlib driver called
synchronously on this thread (aiosqlite would add thread hops to every
statement), on PostgreSQL an asyncpg session.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from commcentre import loops
from commcentre.audit.service import AuditRecord, append
from commcentre.clock import Clock
from commcentre.db import STORE_ERRORS, UNREACHABLE_ERRORS, Database, WriteSession
from commcentre.delivery.repository import insert_deliveries
from commcentre.errors import CommCentreError, Conflict, ServiceUnavailable, UnprocessableContent
from commcentre.idempotency import repository as idempotency_repository
from commcentre.messages import repository
from commcentre.messages.kinds import kinds_of
from commcentre.metrics import Metrics

log = structlog.get_logger(__name__)

IDEMPOTENCY_PURGE_INTERVAL = 600.0  # seconds; records live >= 24 h, so this is plenty


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(slots=True)
class PendingMessage:
    """Everything one accepted message writes, prepared outside the writer."""

    client_id: uuid.UUID
    operation: str
    idempotency_key: str | None
    fingerprint: bytes
    message_row: dict[str, Any]
    identifier_rows: list[dict[str, Any]]
    # The transactional outbox: one row per destination partner, same transaction.
    delivery_rows: list[dict[str, Any]]
    audit: AuditRecord
    response: dict[str, Any]
    # Runs in the same transaction after the message is inserted (e.g. a request's reply
    # moves the request to answered): both commit or neither does. A CommCentreError it
    # raises refuses this message alone, and nothing of it is stored.
    after_insert: Callable[[WriteSession, datetime], Awaitable[None]] | None = None
    future: "asyncio.Future[IngestOutcome]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class IngestWriter:
    """The single writer of accepted messages in this process."""

    def __init__(
        self,
        database_url: str,
        *,
        clock: Clock,
        batch_max: int,
        batch_wait: float,
        idempotency_ttl: timedelta,
        pool_size: int = 2,
        on_committed: Callable[[int], None] | None = None,
        metrics: Metrics | None = None,
        database: Database | None = None,
        session_info: Mapping[str, Any] | None = None,
    ) -> None:
        """`session_info`: what the writer's own Database gives its sessions (the audit
        keys); by default that of `database`."""
        self._database_url = database_url
        self._session_info = dict(
            session_info
            if session_info is not None
            else (database.session_info if database is not None else {})
        )
        # On SQLite, the process's Database: the writer then shares its one synchronous
        # write connection with the dispatcher's transactions (Database.run_write), and
        # they take turns at the connection pool, not through SQLite's busy-wait sleeps.
        self._shared = database if database is not None and database.is_sqlite else None
        self._pool_size = pool_size
        # Called from the writer thread with the number of new deliveries after each commit.
        self._on_committed = on_committed
        self._metrics = metrics
        self._clock = clock
        self._batch_max = batch_max
        self._batch_wait = batch_wait
        self._idempotency_ttl = idempotency_ttl
        self._in_flight: set[tuple[uuid.UUID, str]] = set()
        self._thread: threading.Thread | None = None
        self._closing = False
        # Set inside the writer thread.
        self._db: Database
        self._loop: asyncio.AbstractEventLoop
        self._queue: asyncio.Queue[PendingMessage]
        self._stopped: asyncio.Event
        self.batches_written = 0
        self.messages_written = 0

    async def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="ingest-writer", daemon=True
        )
        self._thread.start()
        await asyncio.to_thread(ready.wait)

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._loop.call_soon_threadsafe(self._stopped.set)
        await asyncio.to_thread(thread.join)

    @property
    def in_flight(self) -> int:
        """Submissions with an Idempotency-Key queued or being written now."""
        return len(self._in_flight)

    async def submit(self, pending: PendingMessage) -> IngestOutcome:
        """Queue a message and wait until it is durably committed (or refused)."""
        if self._closing or self._thread is None:
            raise ServiceUnavailable("the service is shutting down", headers={"Retry-After": "5"})
        key = (pending.client_id, pending.idempotency_key) if pending.idempotency_key else None
        if key is not None:
            if key in self._in_flight:
                raise Conflict("a request with this Idempotency-Key is still in flight")
            self._in_flight.add(key)
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, pending)
            # Shielded: a client that disconnects must not cancel a commit under way.
            return await asyncio.shield(pending.future)
        finally:
            if key is not None:
                self._in_flight.discard(key)

    def _thread_main(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            self._stopped = asyncio.Event()
            self._db = self._shared or Database(
                self._database_url, pool_size=self._pool_size, session_info=self._session_info
            )
            ready.set()
            runner = asyncio.create_task(self._run())
            await self._stopped.wait()
            await self._queue.join()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            if self._shared is None:
                await self._db.dispose()

        loops.run(main())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        while True:
            if loop.time() >= next_purge:
                await self._purge_expired_keys()
                next_purge = loop.time() + IDEMPOTENCY_PURGE_INTERVAL
            try:
                first = await asyncio.wait_for(self._queue.get(), next_purge - loop.time())
            except TimeoutError:
                continue
            batch = [first]
            try:
                await self._fill(batch)
                await self._write_resilient(batch)
            except Exception as exc:  # the writer must survive anything; requests get 503
                log.error("ingest_batch_crashed", error_type=type(exc).__name__)
                _fail_all(batch, _store_unavailable)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _purge_expired_keys(self) -> None:
        # Runs in the writer so that it never competes with it for SQLite's write lock.
        try:
            async with self._db.write_transaction() as session:
                removed = await idempotency_repository.delete_expired(session, now=self._clock())
        except Exception as exc:  # the writer must outlive a failed purge; the next one retries
            log.warning("idempotency_purge_failed", error_type=type(exc).__name__)
            return
        if removed:
            log.info("idempotency_keys_purged", count=removed)

    async def _fill(self, batch: list[PendingMessage]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                return

    async def _write_resilient(self, batch: list[PendingMessage]) -> None:
        try:
            await self._write(batch)
            return
        except CommCentreError as refusal:  # from an after_insert hook
            if len(batch) == 1:
                _settle(batch[0], refusal)
                return
        except STORE_ERRORS as exc:
            if isinstance(exc, UNREACHABLE_ERRORS):
                # Not a refusal of one message: trying each one alone would only wait again.
                log.error("ingest_write_failed", error_type=type(exc).__name__)
                _fail_all(batch, _store_unavailable)
                return
            if len(batch) == 1:
                if isinstance(exc, IntegrityError):
                    # Most likely a concurrent process stored the same Idempotency-Key
                    # first: a second pass finds its record and answers from it.
                    try:
                        await self._write(batch)
                        return
                    except STORE_ERRORS:
                        pass
                    _fail_all(batch, lambda: Conflict("the message conflicts with stored data"))
                else:
                    log.error("ingest_write_failed", error_type=type(exc).__name__)
                    _fail_all(batch, _store_unavailable)
                return
        for pending in batch:
            await self._write_resilient([pending])

    async def _write(self, batch: Sequence[PendingMessage]) -> None:
        now = self._clock()
        began = time.perf_counter()
        outcomes: list[tuple[PendingMessage, IngestOutcome | CommCentreError]] = []
        async with self._db.write_transaction() as session:
            keyed = [(p.client_id, p.idempotency_key) for p in batch if p.idempotency_key]
            stored = await idempotency_repository.find_many(session, keyed, now=now)
            if keyed and len(stored) < len(keyed):
                # An expired record for a reused key would block the insert below.
                await idempotency_repository.delete_expired(session, now=now, keys=keyed)
            fresh: list[PendingMessage] = []
            for pending in batch:
                record = (
                    stored.get((pending.client_id, pending.idempotency_key))
                    if pending.idempotency_key
                    else None
                )
                if record is None:
                    fresh.append(pending)
                elif (
                    record.fingerprint != pending.fingerprint
                    or record.operation != pending.operation
                ):
                    outcomes.append(
                        (
                            pending,
                            UnprocessableContent(
                                "this Idempotency-Key was used before with a different request body"
                            ),
                        )
                    )
                else:
                    outcomes.append(
                        (
                            pending,
                            IngestOutcome(record.status_code, dict(record.response), replayed=True),
                        )
                    )
            if fresh:
                # The audit entries first: their seqs, handed out under the chain head's
                # lock, number the messages in commit order (see Message.seq).
                seqs = await append(session, [p.audit for p in fresh], now=now)
                await repository.insert_messages(
                    session,
                    [{**p.message_row, "seq": seq} for p, seq in zip(fresh, seqs, strict=True)],
                )
                await repository.insert_identifiers(
                    session, [row for p in fresh for row in p.identifier_rows]
                )
                deliveries = [row for p in fresh for row in p.delivery_rows]
                await insert_deliveries(session, deliveries)
                for pending in fresh:
                    if pending.after_insert is not None:
                        await pending.after_insert(session, now)
                await idempotency_repository.insert_many(
                    session,
                    [
                        {
                            "client_id": p.client_id,
                            "key": p.idempotency_key,
                            "operation": p.operation,
                            "fingerprint": p.fingerprint,
                            "status_code": 202,
                            "response": p.response,
                            "created_at": now,
                            "expires_at": now + self._idempotency_ttl,
                        }
                        for p in fresh
                        if p.idempotency_key
                    ],
                )
        # Committed: only now may anyone hear "accepted".
        if self._metrics is not None:
            self._metrics.ingest_commit_seconds.observe(time.perf_counter() - began)
            self._metrics.ingest_batch_size.observe(len(fresh))
            for pending in fresh:
                kinds = kinds_of(pending.message_row["subject_kinds"])
                self._metrics.accepted(pending.message_row["direction"], kinds)
        self.batches_written += 1
        self.messages_written += len(fresh)
        if self._on_committed is not None and fresh:
            self._on_committed(sum(len(p.delivery_rows) for p in fresh))
        for pending in fresh:
            outcomes.append((pending, IngestOutcome(202, pending.response)))
        for pending, outcome in outcomes:
            _settle(pending, outcome)


def _store_unavailable() -> CommCentreError:
    return ServiceUnavailable("the message store is unavailable", headers={"Retry-After": "5"})


def _fail_all(batch: Sequence[PendingMessage], error: Callable[[], CommCentreError]) -> None:
    for pending in batch:
        _settle(pending, error())


def _settle(pending: PendingMessage, outcome: IngestOutcome | CommCentreError) -> None:
    """Resolve a request's future on the loop that owns it (another thread)."""

    def resolve() -> None:
        if pending.future.done():
            return
        if isinstance(outcome, CommCentreError):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)

    pending.future.get_loop().call_soon_threadsafe(resolve)
