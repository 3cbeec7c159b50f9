"""The group-commit writer: batching, isolation of bad messages, outages, shutdown."""

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from commcentre import loops
from commcentre.audit.service import audit_session_info, verify_chain
from commcentre.auth.deps import Principal
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.crypto import BlindIndex, Envelope, FileKeyring
from commcentre.db import Database, WriteSession
from commcentre.errors import Conflict, ServiceUnavailable
from commcentre.idempotency.models import IdempotencyRecord
from commcentre.messages.ingest import IngestWriter, PendingMessage
from commcentre.messages.models import Message
from commcentre.messages.schemas import MessageIn
from commcentre.messages.service import MessageVault, prepare_outbound
from commcentre.migrate import upgrade
from tests.conftest import ApiUser
from tests.factories import EXAMPLE_MESSAGE


@pytest.fixture
def vault(tmp_path: Path) -> MessageVault:
    keyring = FileKeyring.generate(tmp_path / "keyring.json", dev=True)
    return MessageVault(
        envelope=Envelope(keyring),
        blind_index=BlindIndex(keyring.blind_index_key()),
        retention=timedelta(days=30),
    )


def writer_for(db: Database, *, wait: float = 0.05, batch_max: int = 100) -> IngestWriter:
    return IngestWriter(
        db.url,
        clock=utcnow,
        batch_max=batch_max,
        batch_wait=wait,
        idempotency_ttl=timedelta(hours=24),
        session_info=db.session_info,  # the audit keys
    )


@asynccontextmanager
async def batch_writer(db: Database, size: int) -> AsyncIterator[IngestWriter]:
    """A writer whose batch closes once `size` messages are queued.

    Its long wait lets a slow machine queue them all; when they are all there,
    the batch is written at once.
    """
    ingest = writer_for(db, wait=10.0, batch_max=size)
    await ingest.start()
    try:
        yield ingest
    finally:
        await ingest.stop()


def pending_for(user: ApiUser, vault: MessageVault, key: str | None = None) -> PendingMessage:
    principal = Principal(user.id, "test", frozenset({"messages:write"}))
    return prepare_outbound(
        MessageIn.model_validate(EXAMPLE_MESSAGE),
        principal=principal,
        idempotency_key=key,
        vault=vault,
        destinations=[],
        now=utcnow(),
    )


async def stored_ids(db: Database, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    async with db.read_sessions() as session:
        result = await session.execute(select(Message.id).where(Message.id.in_(ids)))
        return set(result.scalars())


async def test_a_bad_message_does_not_fail_its_neighbours(
    db: Database, user: ApiUser, vault: MessageVault
) -> None:
    batch = [pending_for(user, vault) for _ in range(5)]
    # A submitter that does not exist breaks the foreign key: only this one may fail.
    batch[2].message_row["client_id"] = uuid.uuid4()
    async with batch_writer(db, len(batch)) as writer:
        before = writer.batches_written
        outcomes = await asyncio.gather(*(writer.submit(p) for p in batch), return_exceptions=True)
        written = writer.batches_written - before
    assert isinstance(outcomes[2], Conflict)
    good = [p for i, p in enumerate(batch) if i != 2]
    assert all(o.status_code == 202 for i, o in enumerate(outcomes) if i != 2)  # type: ignore[union-attr]
    ids = [p.message_row["id"] for p in batch]
    assert await stored_ids(db, ids) == {p.message_row["id"] for p in good}
    # One failed batch, then each message alone.
    assert written == len(good)
    async with db.read_sessions() as session:
        assert (await verify_chain(session)).ok


async def test_concurrent_messages_share_one_transaction(
    db: Database, user: ApiUser, vault: MessageVault
) -> None:
    batch = [pending_for(user, vault) for _ in range(40)]
    async with batch_writer(db, len(batch)) as writer:
        before = writer.batches_written
        outcomes = await asyncio.gather(*(writer.submit(p) for p in batch))
        assert {o.status_code for o in outcomes} == {202}
        assert writer.batches_written - before == 1


async def test_the_writer_thread_runs_on_the_loop_commcentre_runs_on(
    db: Database, user: ApiUser, vault: MessageVault
) -> None:
    async with batch_writer(db, 1) as writer:
        outcome = await writer.submit(pending_for(user, vault))
        assert outcome.status_code == 202
        # uvloop where installed, as `commcentre serve` (uvicorn) and `commcentre worker` run.
        kind = loops.new_event_loop()
        kind.close()
        assert type(writer._loop) is type(kind)
        assert writer._loop is not asyncio.get_running_loop()


async def test_an_unreachable_store_answers_503_and_the_writer_survives(
    tmp_path: Path, user: ApiUser, vault: MessageVault
) -> None:
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    ingest = writer_for(broken, wait=0)
    await ingest.start()
    try:
        for _ in range(2):
            with pytest.raises(ServiceUnavailable):
                await ingest.submit(pending_for(user, vault))
    finally:
        await ingest.stop()
        await broken.dispose()


async def test_a_busy_shared_connection_fails_the_batch_at_once_and_the_writer_survives(
    tmp_path: Path, vault: MessageVault
) -> None:
    """On SQLite the writer shares the process's one synchronous write connection: held
    by another transaction past the wait, the whole batch answers 503 after one wait
    (not one per message), and the writer goes on once the connection is free."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}"
    await asyncio.to_thread(upgrade, url)
    keyring = FileKeyring.load(tmp_path / "keyring.json")  # the vault's
    shared = Database(url, write_wait=0.3, session_info=audit_session_info(keyring))
    async with shared.write_sessions() as session, session.begin():
        issued = await create_client(
            session, name="busy", scopes=["messages:write"], actor="test", now=utcnow()
        )
    user = ApiUser(issued.client.id, issued.api_key)
    ingest = IngestWriter(
        url,
        clock=utcnow,
        batch_max=3,
        batch_wait=0.5,
        idempotency_ttl=timedelta(hours=24),
        database=shared,
    )
    held, release = threading.Event(), threading.Event()

    async def hold(session: WriteSession) -> None:
        await session.execute(select(1))
        held.set()
        release.wait(30)  # blocks the transaction's own thread, holding the connection

    await ingest.start()
    holder = asyncio.create_task(shared.run_write(hold))
    try:
        assert await asyncio.to_thread(held.wait, 10)
        began = time.monotonic()
        outcomes = await asyncio.gather(
            *(ingest.submit(pending_for(user, vault)) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(o, ServiceUnavailable) for o in outcomes), outcomes
        assert time.monotonic() - began < 3  # one 0.3 s wait for the batch of three
        release.set()
        await holder
        accepted = await asyncio.wait_for(ingest.submit(pending_for(user, vault)), 10)
        assert accepted.status_code == 202
    finally:
        release.set()
        await asyncio.gather(holder, return_exceptions=True)
        await ingest.stop()
        await shared.dispose()


async def test_stop_writes_what_is_queued(db: Database, user: ApiUser, vault: MessageVault) -> None:
    ingest = writer_for(db, wait=0.2)
    await ingest.start()
    batch = [pending_for(user, vault) for _ in range(10)]
    tasks = [asyncio.create_task(ingest.submit(p)) for p in batch]
    await asyncio.sleep(0.01)
    await ingest.stop()
    assert {(await t).status_code for t in tasks} == {202}
    assert len(await stored_ids(db, [p.message_row["id"] for p in batch])) == 10
    with pytest.raises(ServiceUnavailable):
        await ingest.submit(pending_for(user, vault))


async def test_expired_idempotency_keys_are_purged_and_reusable(
    db: Database, user: ApiUser, vault: MessageVault
) -> None:
    key = f"purge-{uuid.uuid4()}"
    past = utcnow() - timedelta(days=3)
    ingest = IngestWriter(
        db.url,
        clock=lambda: past,
        batch_max=10,
        batch_wait=0,
        idempotency_ttl=timedelta(hours=24),
        session_info=db.session_info,
    )
    await ingest.start()
    first = await ingest.submit(pending_for(user, vault, key))
    await ingest.stop()
    # Two days later the record has expired: the same key makes a new message.
    ingest = writer_for(db, wait=0)
    await ingest.start()
    try:
        second = await ingest.submit(pending_for(user, vault, key))
        assert second.body["id"] != first.body["id"]
        assert not second.replayed
    finally:
        await ingest.stop()
    async with db.write_sessions() as session, session.begin():
        record = IdempotencyRecord(
            client_id=user.id,
            key=f"old-{uuid.uuid4()}",
            operation="POST /v1/messages",
            fingerprint=bytes(32),
            status_code=202,
            response={},
            created_at=past,
            expires_at=past + timedelta(hours=24),
        )
        session.add(record)

    async def expired_left() -> int:
        async with db.read_sessions() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(IdempotencyRecord)
                .where(IdempotencyRecord.expires_at <= utcnow())
            )
        return int(left or 0)

    ingest = writer_for(db, wait=0)
    await ingest.start()  # the writer purges expired records when it starts, then every 10 min
    try:
        deadline = time.monotonic() + 10
        while await expired_left():
            assert time.monotonic() < deadline, "expired records were not purged"
            await asyncio.sleep(0.02)
    finally:
        await ingest.stop()
