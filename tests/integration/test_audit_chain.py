"""The audit hash chain: appending, tamper detection, concurrency, and the HTTP API.

Attacks against the keyed chain and its signed checkpoints (an attacker with
database access but not the keyring) are in test_audit_keyed.py."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from commcentre.audit.chain import canonical_bytes, entry_hash, entry_mac
from commcentre.audit.export import CheckpointAnchor
from commcentre.audit.models import GENESIS_HASH, AuditEntry, AuditHead, genesis_head_values
from commcentre.audit.router import router
from commcentre.audit.service import (
    AuditAction,
    AuditRecord,
    ChainBreak,
    ChainVerification,
    append,
    audit_session_info,
    verify_chain,
)
from commcentre.auth.deps import Principal
from commcentre.clock import utcnow
from commcentre.crypto import AuditKey, FileKeyring
from commcentre.db import Base, Database
from commcentre.errors import install_error_handlers
from commcentre.pagination import encode_cursor

PG_URL = os.environ.get("COMMCENTRE_TEST_DATABASE_URL")
AUDIT_TABLES = [AuditEntry.__table__, AuditHead.__table__]


async def _create_audit_tables(database: Database) -> None:
    async with database.write_engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all, tables=AUDIT_TABLES)
        await conn.execute(insert(AuditHead).values(**genesis_head_values(utcnow())))


@pytest.fixture
def keyring(tmp_path: Path) -> FileKeyring:
    return FileKeyring.generate(tmp_path / "keyring.json", dev=True)


def _keyed_database(url: str, keyring: FileKeyring) -> Database:
    return Database(url, session_info=audit_session_info(keyring))


@pytest.fixture
async def audit_db(tmp_path: Path, keyring: FileKeyring) -> AsyncIterator[Database]:
    database = _keyed_database(f"sqlite+aiosqlite:///{tmp_path}/a.db", keyring)
    try:
        await _create_audit_tables(database)
        yield database
    finally:
        await database.dispose()


def _records(count: int, *, tag: str = "t") -> list[AuditRecord]:
    return [
        AuditRecord(
            action=AuditAction.CONSULTATION,
            event="message.read",
            actor=f"client:{tag}",
            subject_type="message",
            subject_id=f"{tag}-{i}",
            justification=f"case 2026/{i}, {tag}",
            details={"n": i, "kinds": ["person", "document"], "hit": i % 2 == 0, "x": None},
        )
        for i in range(count)
    ]


async def _append(database: Database, records: Sequence[AuditRecord]) -> list[int]:
    async with database.write_sessions() as session, session.begin():
        return await append(session, records, now=utcnow())


async def _verify(database: Database) -> ChainVerification:
    async with database.read_sessions() as session:
        return await verify_chain(session)


def _summary(result: ChainVerification) -> tuple[Any, ...]:
    """What a test states about a verification: ok, intact count, head, first broken, why."""
    return (
        result.ok,
        result.entries_checked,
        result.head_seq,
        result.first_broken_seq,
        result.reason,
    )


async def _tamper(database: Database, *statements: str, **params: Any) -> None:
    async with database.write_engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


async def test_empty_log_verifies(audit_db: Database) -> None:
    assert _summary(await _verify(audit_db)) == (True, 0, 0, None, None)


async def test_appends_in_one_call_and_several_transactions_verify(audit_db: Database) -> None:
    # More than one verification chunk (1,000 entries) in a single call.
    assert await _append(audit_db, _records(1200)) == list(range(1, 1201))
    for batch in range(5):
        seqs = await _append(audit_db, _records(7, tag=f"b{batch}"))
        assert seqs == list(range(1201 + 7 * batch, 1208 + 7 * batch))
    assert await _append(audit_db, []) == []

    assert _summary(await _verify(audit_db)) == (True, 1235, 1235, None, None)


async def test_first_entry_links_to_genesis_and_keeps_its_fields(
    audit_db: Database, keyring: FileKeyring
) -> None:
    at = datetime(2026, 11, 28, 14, 0, 0, 123456, tzinfo=UTC)
    record = AuditRecord(
        action=AuditAction.DISCLOSURE,
        event="message.delivered",
        actor="system",
        recipient="partner:se-bureau",
        details={"attempt": 2},
        occurred_at=at,
    )
    await _append(audit_db, [record])
    async with audit_db.read_sessions() as session:
        entry = await session.get(AuditEntry, 1)
    assert entry is not None
    assert entry.prev_hash == GENESIS_HASH
    assert entry.occurred_at == at
    assert (entry.action, entry.recipient, entry.details) == (
        "disclosure",
        "partner:se-bureau",
        {"attempt": 2},
    )
    assert entry.key_id == keyring.audit_key().version == 1
    assert entry.hash == entry_mac(vars(entry), keyring.audit_key())


def test_canonical_form_is_pinned() -> None:
    # Changing the canonical form breaks every existing chain: this must fail first.
    fields: dict[str, Any] = {
        "seq": 1,
        "id": uuid.UUID("0193a0c2-7d1e-7c3a-9f0e-2b7f1c9d4e51"),
        "occurred_at": datetime(
            2026, 11, 28, 16, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))
        ),
        "action": AuditAction.CONSULTATION,
        "event": "message.read",
        "actor": "client:x",
        "subject_type": "message",
        "subject_id": "m-1",
        "recipient": None,
        "justification": "case 2026/4411",
        "details": {"b": [1, "x", True, None], "a": "é"},
        "prev_hash": GENESIS_HASH,
    }
    assert (
        canonical_bytes(fields)
        == (
            '["commcentre.audit.v1",1,"0193a0c2-7d1e-7c3a-9f0e-2b7f1c9d4e51",'
            '"2026-11-28T14:00:00.123456+00:00","consultation","message.read","client:x",'
            '"message","m-1",null,"case 2026/4411",{"a":"é","b":[1,"x",true,null]},'
            f'"{"0" * 64}"]'
        ).encode()
    )
    assert entry_hash(fields).hex() == (
        "8262bef65b275b0fbcb0e958b2d3a7036c20d9dc9c76abb9e52a933b62d7daa9"
    )
    # v2: the key version follows the tag, and the hash is an HMAC under that key.
    key = AuditKey.build(3, utcnow(), bytes(range(32)), bytes(32))
    keyed = fields | {"key_id": 3}
    assert canonical_bytes(keyed).startswith(b'["commcentre.audit.v2",3,1,"0193a0c2-')
    assert (
        canonical_bytes(keyed)[len(b'["commcentre.audit.v2",3') :]
        == canonical_bytes(fields)[len(b'["commcentre.audit.v1"') :]
    )
    assert entry_mac(keyed, key).hex() == (
        "f84a6b20054231f64acf65f27d91d1bf40add5bd995632945e059f8f4ca37203"
    )
    with pytest.raises(ValueError):
        entry_mac(fields | {"key_id": 2}, key)  # an entry cannot be moved under another key
    with pytest.raises(ValueError):
        entry_hash(keyed)  # nor a keyed entry checked as an unkeyed one


@pytest.mark.parametrize(
    ("statements", "broken_seq", "reason", "intact"),
    [
        (
            ["UPDATE audit_entries SET justification = 'none' WHERE seq = 4"],
            4,
            ChainBreak.HASH_MISMATCH,
            3,
        ),
        (
            ["UPDATE audit_entries SET details = '{\"n\": 6}' WHERE seq = 6"],
            6,
            ChainBreak.HASH_MISMATCH,
            5,
        ),
        (
            ['UPDATE audit_entries SET details = \'{"n": 1' + "0" * 23 + "}' WHERE seq = 2"],
            2,
            ChainBreak.HASH_MISMATCH,
            1,
        ),
        (["DELETE FROM audit_entries WHERE seq = 5"], 5, ChainBreak.MISSING_ENTRY, 4),
        (["DELETE FROM audit_entries WHERE seq = 1"], 1, ChainBreak.MISSING_ENTRY, 0),
        (
            [  # swap the positions (all contents) of entries 3 and 7
                "UPDATE audit_entries SET seq = -3 WHERE seq = 3",
                "UPDATE audit_entries SET seq = 3 WHERE seq = 7",
                "UPDATE audit_entries SET seq = 7 WHERE seq = -3",
            ],
            3,
            ChainBreak.BROKEN_LINK,
            2,
        ),
        (["DELETE FROM audit_entries WHERE seq > 7"], 8, ChainBreak.TRUNCATED, 7),
    ],
    ids=[
        "edit",
        "edit-details",
        "unhashable-details",
        "delete-middle",
        "delete-first",
        "reorder",
        "truncate",
    ],
)
async def test_tampered_entries_are_detected_at_the_exact_entry(
    audit_db: Database, statements: list[str], broken_seq: int, reason: ChainBreak, intact: int
) -> None:
    await _append(audit_db, _records(6))
    await _append(audit_db, _records(4, tag="second"))
    await _tamper(audit_db, *statements)

    result = await _verify(audit_db)

    assert _summary(result) == (False, intact, 10, broken_seq, reason)


@pytest.mark.parametrize(
    ("statement", "broken_seq", "reason", "head_seq"),
    [
        ("UPDATE audit_head SET hash = :forged", 10, ChainBreak.HEAD_MISMATCH, 10),
        ("UPDATE audit_head SET seq = 9", 10, ChainBreak.HEAD_MISMATCH, 9),
        ("UPDATE audit_head SET seq = 12", 11, ChainBreak.TRUNCATED, 12),
        ("DELETE FROM audit_head", None, ChainBreak.MISSING_HEAD, None),
    ],
    ids=["hash", "seq-rolled-back", "seq-advanced", "deleted"],
)
async def test_tampered_head_is_detected(
    audit_db: Database,
    statement: str,
    broken_seq: int | None,
    reason: ChainBreak,
    head_seq: int | None,
) -> None:
    await _append(audit_db, _records(10))
    await _tamper(audit_db, statement, forged=bytes(range(32)))

    result = await _verify(audit_db)

    assert (result.ok, result.first_broken_seq, result.reason) == (False, broken_seq, reason)
    assert result.head_seq == head_seq


async def test_chain_continues_after_verification_and_across_databases(
    tmp_path: Path, keyring: FileKeyring
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    first = _keyed_database(url, keyring)
    try:
        await _create_audit_tables(first)
        await _append(first, _records(3))
    finally:
        await first.dispose()
    # A restarted process picks up the head; its keyring read again from the file.
    second = _keyed_database(url, FileKeyring.load(keyring.path))
    try:
        assert await _append(second, _records(2)) == [4, 5]
        assert _summary(await _verify(second)) == (True, 5, 5, None, None)
    finally:
        await second.dispose()


async def _append_concurrently(databases: Sequence[Database], *, tasks: int) -> None:
    """Each task appends 1..5 entries in its own session and transaction."""

    async def one(task: int) -> list[int]:
        database = databases[task % len(databases)]
        async with database.write_sessions() as session, session.begin():
            seqs = await append(session, _records(1 + task % 5, tag=f"task{task}"), now=utcnow())
            await asyncio.sleep(0.001)  # hold the head a while so the others must wait for it
            return seqs

    results = await asyncio.gather(*(one(task) for task in range(tasks)))
    total = sum(1 + task % 5 for task in range(tasks))
    for seqs in results:
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert sorted(seq for seqs in results for seq in seqs) == list(range(1, total + 1))
    assert _summary(await _verify(databases[0])) == (True, total, total, None, None)


async def test_concurrent_appends_on_sqlite_stay_linear(
    tmp_path: Path, keyring: FileKeyring
) -> None:
    # Several Database objects: separate write connections contending for the
    # file's lock, as separate processes would.
    databases = [_keyed_database(f"sqlite+aiosqlite:///{tmp_path}/a.db", keyring) for _ in range(4)]
    try:
        await _create_audit_tables(databases[0])
        await _append_concurrently(databases, tasks=20)
    finally:
        for database in databases:
            await database.dispose()


def _database_in_schema(url: str, schema: str, keyring: FileKeyring) -> Database:
    database = _keyed_database(url, keyring)

    @event.listens_for(database.write_engine.sync_engine, "connect", insert=True)
    def _set_search_path(dbapi_connection: Any, _record: Any) -> None:
        # Our own schema, so that others using this database in parallel are untouched.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET SESSION search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.autocommit = autocommit

    return database


@pytest.mark.postgres
async def test_concurrent_appends_on_postgresql_stay_linear(keyring: FileKeyring) -> None:
    assert PG_URL is not None
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        databases = [_database_in_schema(PG_URL, schema, keyring) for _ in range(3)]
        try:
            await _create_audit_tables(databases[0])
            await _append_concurrently(databases, tasks=20)
        finally:
            for database in databases:
                await database.dispose()
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@pytest.mark.parametrize(
    "changes",
    [
        {"action": "deletion"},
        {"event": ""},
        {"event": "e" * 65},
        {"actor": "a\x00b"},
        {"justification": "j" * 501},
        {"details": {"ratio": 0.5}},
        {"details": {"nested": {"a": 1}}},
        {"details": {"big": 2**60}},
        {"details": {"text": "\ud800"}},
        {"details": {"blob": "x" * 3000}},
        {"occurred_at": datetime(2026, 1, 1)},  # noqa: DTZ001 - the naive value under test
    ],
)
def test_records_that_would_not_round_trip_are_refused(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "action": "collection",
        "event": "message.ingested",
        "actor": "system",
    }
    with pytest.raises(ValueError):
        AuditRecord(**(fields | changes))


def test_record_keeps_its_own_copy_of_details() -> None:
    details: dict[str, Any] = {"kinds": ["person"]}
    record = AuditRecord(AuditAction.COLLECTION, "message.ingested", "system", details=details)
    details["kinds"].append("vehicle")
    assert record.details == {"kinds": ["person"]}


class _FixedAuthenticator:
    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def authenticate(self, key: str) -> Principal | None:
        return self.principal


def _client(database: Database, *scopes: str) -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.db = database
    app.state.audit_anchor = CheckpointAnchor(None, "example.test/audit")
    app.state.authenticator = _FixedAuthenticator(
        Principal(uuid.uuid4(), "auditor", frozenset(scopes))
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": "Bearer ck_test"},
    )


async def test_api_lists_pages_and_filters(audit_db: Database) -> None:
    await _append(audit_db, _records(5))
    await _append(
        audit_db,
        [
            AuditRecord(
                AuditAction.DISCLOSURE, "message.delivered", "system", recipient="partner:se"
            )
        ],
    )
    async with _client(audit_db, "audit:read") as client:
        seqs: list[int] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            response = await client.get("/v1/audit", params=params)
            assert response.status_code == 200
            page = response.json()
            seqs += [item["seq"] for item in page["items"]]
            if page.get("next_cursor") is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seqs == [1, 2, 3, 4, 5, 6]

        response = await client.get("/v1/audit", params={"action": "disclosure"})
        [item] = response.json()["items"]
        assert (item["seq"], item["recipient"], item["actor"]) == (6, "partner:se", "system")
        assert len(item["hash"]) == len(item["prev_hash"]) == 64

        response = await client.get("/v1/audit", params={"subject_id": "t-3", "actor": "client:t"})
        assert [i["seq"] for i in response.json()["items"]] == [4]

        future = (utcnow() + timedelta(hours=1)).isoformat()
        response = await client.get("/v1/audit", params={"since": future})
        assert response.json() == {"items": [], "next_cursor": None}
        response = await client.get("/v1/audit", params={"until": future, "limit": 500})
        assert len(response.json()["items"]) == 6


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": encode_cursor("messages", [1])},
        {"cursor": encode_cursor("audit", ["1"])},
        {"cursor": encode_cursor("audit", [-1])},
        {"since": "2026-01-01T00:00:00"},
        {"limit": "0"},
    ],
    ids=["garbage", "foreign-kind", "text-position", "negative-position", "naive-since", "limit"],
)
async def test_api_rejects_bad_query_with_422(audit_db: Database, params: dict[str, str]) -> None:
    async with _client(audit_db, "audit:read") as client:
        response = await client.get("/v1/audit", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_api_needs_audit_read(audit_db: Database) -> None:
    async with _client(audit_db, "messages:read") as client:
        for path in ("/v1/audit", "/v1/audit/verify"):
            assert (await client.get(path)).status_code == 403


async def test_api_verify_reports_a_broken_chain_with_200(audit_db: Database) -> None:
    await _append(audit_db, _records(3))
    async with _client(audit_db, "audit:read") as client:
        response = await client.get("/v1/audit/verify")
        body = response.json()
        assert len(body.pop("root_hash")) == 64
        assert body == {
            "ok": True,
            "entries_checked": 3,
            "head_seq": 3,
            "first_broken_seq": None,
            "reason": None,
            "unkeyed_entries": 0,
            "checkpoint_tree_size": None,
        }
        await _tamper(audit_db, "UPDATE audit_entries SET actor = 'client:other' WHERE seq = 2")
        response = await client.get("/v1/audit/verify")
    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "entries_checked": 1,
        "head_seq": 3,
        "first_broken_seq": 2,
        "reason": "hash mismatch",
        "unkeyed_entries": 0,
        "checkpoint_tree_size": None,
        "root_hash": None,
    }
