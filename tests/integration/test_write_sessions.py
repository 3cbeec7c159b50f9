"""Database.write_transaction: the write session of hot paths (the ingest writer).

On SQLite it is the stdlib driver run synchronously on the calling thread; on
PostgreSQL the usual AsyncSession. Either way it commits on success, rolls back
on error, and stores values exactly as the async sessions do.
"""

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.db import Database, SyncWriteSession
from commcentre.idempotency import repository as idempotency_repository
from commcentre.idempotency.models import IdempotencyRecord
from commcentre.migrate import upgrade
from tests.databases import driver_statements

# Values that a careless conversion would change: microseconds, a non-UTC
# offset, NUL and high bytes, non-ASCII and nested JSON.
WHEN = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
RESPONSE = {
    "id": "018f3b0e-0000-7000-8000-000000000000",
    "deliveries": [{"partner": "interpol-ncb", "status": "pending"}],
    "note": "Ärzte — 東京 \u2603",
    "n": 1.5,
    "flag": None,
}
FINGERPRINT = bytes([0, 255, 10, 128] * 8)


class Boom(Exception):
    pass


def record_row(key: str, client_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "client_id": client_id or uuid.uuid4(),
        "key": key,
        "operation": "POST /v1/messages",
        "fingerprint": FINGERPRINT,
        "status_code": 202,
        "response": RESPONSE,
        "created_at": WHEN,
        "expires_at": WHEN + timedelta(days=1, microseconds=1),
    }


async def count_keys(db: Database, *keys: str) -> int:
    async with db.read_sessions() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(IdempotencyRecord)
            .where(IdempotencyRecord.key.in_(keys))
        )
    return int(found or 0)


@pytest.fixture(scope="module")
def private_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite: a store of this module's own.

    A sync write transaction blocks the loop it is called on (that is why only the
    ingest writer's own thread uses it). Here the tests call it on the suite's loop,
    where the session app's dispatcher may hold SQLite's write lock while it waits for
    that very loop: on the shared store, that is a deadlock until the busy timeout.
    """
    if not database_url.startswith("sqlite"):
        return database_url
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('write-sessions') / 'w.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
async def db(private_url: str) -> AsyncIterator[Database]:
    database = Database(private_url)
    yield database
    await database.dispose()


@pytest.fixture
async def own_db(db: Database) -> AsyncIterator[Database]:
    """A Database of our own on the suite's store (to dispose of it, or to compete)."""
    database = Database(db.url)
    yield database
    await database.dispose()


def sqlite_path(db: Database) -> str:
    return db.url.split("///", 1)[1]


async def test_the_session_is_sync_on_sqlite_and_async_on_postgresql(db: Database) -> None:
    async with db.write_transaction() as session:
        if db.is_sqlite:
            assert isinstance(session, SyncWriteSession)
        else:
            assert isinstance(session, AsyncSession)
        assert session.get_bind().dialect.name == ("sqlite" if db.is_sqlite else "postgresql")


async def test_commits_on_success(db: Database) -> None:
    key = f"commit-{uuid.uuid4()}"
    async with db.write_transaction() as session:
        await idempotency_repository.insert_many(session, [record_row(key)])
        # The transaction sees its own write; nobody else does yet.
        assert await session.scalar(select(IdempotencyRecord.key).filter_by(key=key)) == key
    assert await count_keys(db, key) == 1


async def test_rolls_back_on_error(db: Database) -> None:
    key = f"rollback-{uuid.uuid4()}"

    async def insert_then_fail() -> None:
        async with db.write_transaction() as session:
            await idempotency_repository.insert_many(session, [record_row(key)])
            raise Boom

    with pytest.raises(Boom):
        await insert_then_fail()
    assert await count_keys(db, key) == 0
    # The connection went back clean: the next transaction works.
    async with db.write_transaction() as session:
        await idempotency_repository.insert_many(session, [record_row(key)])
    assert await count_keys(db, key) == 1


async def test_a_database_error_rolls_back_the_whole_transaction(db: Database) -> None:
    first, duplicate = f"dup-a-{uuid.uuid4()}", f"dup-b-{uuid.uuid4()}"
    client = uuid.uuid4()

    async def insert_duplicates() -> None:
        async with db.write_transaction() as session:
            await idempotency_repository.insert_many(session, [record_row(first)])
            await idempotency_repository.insert_many(
                session, [record_row(duplicate, client), record_row(duplicate, client)]
            )

    with pytest.raises(IntegrityError):  # a DBAPIError, as the ingest writer expects
        await insert_duplicates()
    assert await count_keys(db, first, duplicate) == 0


async def test_orm_add_flush_and_reads(db: Database) -> None:
    key = f"orm-{uuid.uuid4()}"
    row = record_row(key)
    async with db.write_transaction() as session:
        session.add(IdempotencyRecord(**row))
        await session.flush()
        found = await idempotency_repository.find_many(
            session, [(row["client_id"], key), (uuid.uuid4(), "absent")], now=WHEN
        )
        assert [record.key for record in found.values()] == [key]
        result = await session.execute(
            select(IdempotencyRecord.client_id, IdempotencyRecord.created_at).filter_by(key=key)
        )
        assert result.all() == [(row["client_id"], WHEN)]
    assert await count_keys(db, key) == 1


async def test_values_round_trip_exactly_as_through_the_async_session(db: Database) -> None:
    via_async, via_write = f"rt-async-{uuid.uuid4()}", f"rt-write-{uuid.uuid4()}"
    client = uuid.uuid4()
    async with db.write_sessions() as session, session.begin():
        await session.execute(insert(IdempotencyRecord), [record_row(via_async, client)])
    async with db.write_transaction() as write:
        await idempotency_repository.insert_many(write, [record_row(via_write, client)])

    async with db.read_sessions() as session:
        records = {
            record.key: record
            for record in (
                await session.execute(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.key.in_([via_async, via_write])
                    )
                )
            ).scalars()
        }
        # What the driver hands back, before any type processing: the stored form.
        raw = {
            row[0]: tuple(row[1:])
            for row in (
                await session.execute(
                    text(
                        "SELECT key, client_id, fingerprint, response, created_at, expires_at "
                        "FROM idempotency_keys WHERE key IN (:a, :b)"
                    ),
                    {"a": via_async, "b": via_write},
                )
            ).all()
        }
    written = records[via_write]
    assert written.client_id == client
    assert written.fingerprint == FINGERPRINT
    assert written.response == RESPONSE
    assert written.created_at == WHEN
    assert written.created_at.tzinfo is UTC
    assert written.expires_at == WHEN + timedelta(days=1, microseconds=1)
    stored = records[via_async]
    for column in ("client_id", "fingerprint", "response", "created_at", "expires_at"):
        assert getattr(written, column) == getattr(stored, column), column
    assert raw[via_write] == raw[via_async]


async def test_statements_run_on_the_calling_thread(db: Database) -> None:
    """No thread hop on SQLite: the driver runs where write_transaction was entered."""
    if not db.is_sqlite:
        pytest.skip("PostgreSQL keeps asyncpg")
    threads: list[int] = []

    def on_execute(*_args: Any) -> None:
        threads.append(threading.get_ident())

    async with db.write_transaction() as session:
        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", on_execute)
        try:
            await session.execute(select(1))
            await idempotency_repository.insert_many(session, [record_row(f"t-{uuid.uuid4()}")])
        finally:
            event.remove(engine, "before_cursor_execute", on_execute)
    assert threads
    assert set(threads) == {threading.get_ident()}


async def test_an_executemany_insert_goes_out_in_multi_row_pages(db: Database) -> None:
    """Each sqlite3 step releases the GIL: a page of rows per step, not one row."""
    if not db.is_sqlite:
        pytest.skip("asyncpg keeps its own executemany")
    client = uuid.uuid4()
    keys = [f"page-{uuid.uuid4()}" for _ in range(1500)]
    async with db.write_transaction() as session:
        with driver_statements(session) as statements:
            await idempotency_repository.insert_many(
                session, [record_row(key, client) for key in keys]
            )
    inserts = [statement for statement in statements if statement.startswith("INSERT")]
    assert len(inserts) == 2  # 1000 rows, then 500
    assert await count_keys(db, *keys) == len(keys)


async def test_begin_immediate_makes_another_writer_wait_not_fail(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite locking")
    key = f"other-{uuid.uuid4()}"
    outcome: dict[str, Any] = {}
    trying = threading.Event()

    def other_writer() -> None:
        conn = sqlite3.connect(sqlite_path(db), timeout=10, isolation_level=None)
        try:
            started = time.monotonic()
            trying.set()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO idempotency_keys (client_id, key, operation, fingerprint, "
                "status_code, response, created_at, expires_at) "
                "VALUES (?, ?, 'x', x'00', 200, '{}', '2026-01-01 00:00:00.000000', "
                "'2026-01-02 00:00:00.000000')",
                (uuid.uuid4().hex, key),
            )
            conn.execute("COMMIT")
            outcome["waited"] = time.monotonic() - started
            outcome["done_at"] = time.monotonic()
        except sqlite3.Error as exc:  # pragma: no cover - the failure this test is about
            outcome["error"] = exc
        finally:
            conn.close()

    thread = threading.Thread(target=other_writer)
    async with db.write_transaction() as session:
        # Only a read so far: BEGIN IMMEDIATE has nonetheless taken the write lock.
        await session.execute(select(1))
        thread.start()
        # Hold the lock a while from the moment the other writer asks for it, however
        # late its thread gets going.
        assert trying.wait(10)
        time.sleep(0.3)  # noqa: ASYNC251 - the other writer needs the lock now, not the loop
        assert thread.is_alive(), "the other writer did not wait for our transaction"
        await idempotency_repository.insert_many(session, [record_row(f"mine-{uuid.uuid4()}")])
        committing_at = time.monotonic()
    thread.join(10)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["waited"] >= 0.25
    assert outcome["done_at"] >= committing_at
    assert await count_keys(db, key) == 1


async def test_waits_for_a_writer_in_another_connection(own_db: Database, db: Database) -> None:
    """The reverse: a lock held elsewhere delays write_transaction, which then succeeds."""
    if not db.is_sqlite:
        pytest.skip("SQLite locking")
    locked = threading.Event()
    locked_at: list[float] = []

    def holder() -> None:
        conn = sqlite3.connect(sqlite_path(db), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            locked_at.append(time.monotonic())
            locked.set()
            time.sleep(0.3)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert locked.wait(5)
    key = f"after-lock-{uuid.uuid4()}"
    async with own_db.write_transaction() as session:
        await idempotency_repository.insert_many(session, [record_row(key)])
    # Counted from when the lock was taken, not from when this task got to run after it.
    assert time.monotonic() - locked_at[0] >= 0.2
    thread.join(5)
    assert await count_keys(db, key) == 1


async def test_dispose_closes_the_sync_engine_and_it_comes_back(own_db: Database) -> None:
    key, again = f"d1-{uuid.uuid4()}", f"d2-{uuid.uuid4()}"
    async with own_db.write_transaction() as session:
        await idempotency_repository.insert_many(session, [record_row(key)])
    await own_db.dispose()
    async with own_db.write_transaction() as session:
        await idempotency_repository.insert_many(session, [record_row(again)])
    assert await count_keys(own_db, key, again) == 2


async def test_run_write_commits_what_returns_and_nothing_of_what_raises(db: Database) -> None:
    kept, lost = f"run-{uuid.uuid4()}", f"run-{uuid.uuid4()}"

    async def write(session: Any, key: str) -> str:
        await idempotency_repository.insert_many(session, [record_row(key)])
        return key

    assert await db.run_write(lambda session: write(session, kept)) == kept

    async def write_then_fail(session: Any) -> None:
        await write(session, lost)
        raise LookupError("refused after the insert")

    with pytest.raises(LookupError):
        await db.run_write(write_then_fail)
    assert await count_keys(db, kept) == 1
    assert await count_keys(db, lost) == 0


async def test_run_write_on_sqlite_runs_on_a_thread_of_its_own(own_db: Database) -> None:
    if not own_db.is_sqlite:
        pytest.skip("PostgreSQL runs it on the loop, through asyncpg")
    threads: list[str] = []
    key = f"thread-{uuid.uuid4()}"

    async def where(session: Any) -> None:
        assert isinstance(session, SyncWriteSession)
        threads.append(threading.current_thread().name)
        await idempotency_repository.insert_many(session, [record_row(key)])

    await own_db.run_write(where)
    await own_db.run_write(where)
    assert len(set(threads)) == 1  # one thread, in order, for every transaction
    assert threads[0].startswith("sqlite-write")

    async def suspends(session: Any) -> None:
        await idempotency_repository.insert_many(session, [record_row(f"{key}-x")])
        await asyncio.sleep(0)  # nothing but the session may be awaited there

    with pytest.raises(RuntimeError, match="suspend"):
        await own_db.run_write(suspends)
    assert await count_keys(own_db, f"{key}-x") == 0  # rolled back

    await own_db.dispose()
    with pytest.raises(RuntimeError, match="disposed"):
        await own_db.run_write(where)
