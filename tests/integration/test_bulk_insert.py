"""`bulk.insert_rows` on SQLite writes what SQLAlchemy's own types would write.

The ingest writer's tables get their rows through the stdlib driver with
conversions chosen per column; any difference from SQLAlchemy's conversion
would be read back wrong (a datetime, a UUID) or compare unequal in SQL. Each
test writes the same rows both ways into two fresh SQLite files and compares
the stored values and their SQLite types. These files are the test's own, so
the test runs whatever the suite's database is.
"""

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError

from commcentre.audit.models import AuditEntry
from commcentre.auth.models import ApiClient
from commcentre.bulk import insert_rows
from commcentre.db import Database
from commcentre.delivery.models import Delivery, DeliveryAttempt
from commcentre.idempotency.models import IdempotencyRecord
from commcentre.messages.models import Message, MessageIdentifier
from commcentre.migrate import upgrade
from commcentre.partners.models import Partner
from tests.databases import driver_statements

HELSINKI = timezone(timedelta(hours=2))
CLIENT = uuid.UUID("0193b6f0-0000-7000-8000-000000000001")
MESSAGES = [uuid.UUID(f"0193b6f0-0000-7000-8000-00000000010{n}") for n in range(3)]


def table(entity: Any) -> Table:
    return cast(Table, entity.__table__)


def client_row() -> dict[str, Any]:
    return {
        "id": CLIENT,
        "name": "bulk-test",
        "key_hash": b"\x01" * 32,
        "key_hint": "abcd",
        "scopes": ["messages:write"],
        "created_at": datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    }


def partner_row() -> dict[str, Any]:
    when = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    return {
        "id": "se-bureau",
        "uid": uuid.UUID(int=99),
        "name": "SE bureau",
        "channels": ["interpol"],
        "adapter": "loopback",
        "enc_format": 1,
        "key_version": 1,
        "wrapped_key": b"k",
        "ciphertext": b"c",
        "enabled": True,
        "allow_loopback": False,
        "rate_burst": 10,
        "created_at": when,
        "updated_at": when,
    }


def message_rows() -> list[dict[str, Any]]:
    rows = []
    for n, message_id in enumerate(MESSAGES):
        rows.append(
            {
                "id": message_id,
                "direction": "outbound",
                "type": "request",
                "channel": "interpol" if n else None,
                "recipients": ["SE", "NO"] if n else [],
                "priority": "urgent",
                "legal_basis": "DIR_2023_977",
                "handling_codes": ["H2", "Ä-ünïcode"],
                "subject_kinds": 5,
                "status": "accepted",
                "in_reply_to": None,
                "case_digest": bytes(range(32)) if n else None,
                "source_partner_id": None,
                "partner_ref": None,
                "forwarded_from": MESSAGES[0] if n == 2 else None,
                "seq": 2**40 + n,
                "request_id": "req-1" if n else None,
                "client_id": CLIENT,
                # whole seconds, microseconds, and another zone than UTC
                "created_at": datetime(2026, 11, 28, 12, 0, n, n * 1000, tzinfo=HELSINKI),
                "purge_after": datetime(2031, 11, 28, tzinfo=UTC),
                "enc_format": 1,
                "key_version": 3,
                "wrapped_key": b"\x00wrapped\xff",
                "ciphertext": b"\x00" * 10 + bytes(range(256)),
            }
        )
    return rows


def identifier_rows() -> list[dict[str, Any]]:
    return [
        {"message_id": message_id, "digest": bytes([n]) * 32}
        for n, message_id in enumerate(MESSAGES)
    ]


def delivery_rows() -> list[dict[str, Any]]:
    now = datetime(2026, 11, 28, 12, 0, 0, 1, tzinfo=UTC)
    return [
        {
            "id": uuid.UUID(int=n + 1),
            "message_id": message_id,
            "partner_id": "se-bureau",
            "subscription_id": None,
            "request_id": None,
            "event": None,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for n, message_id in enumerate(MESSAGES)
    ]


def attempt_rows() -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.UUID(int=100 + n),
            "delivery_id": uuid.UUID(int=n + 1),
            "number": 1,
            "started_at": datetime(2026, 11, 28, 12, 0, 1, 250_000, tzinfo=HELSINKI),
            "duration_ms": 12,
            "outcome": "delivered" if n else "retry",
            "status_code": 200 if n else None,
            "error": None if n else "partner answered 503",
        }
        for n in range(3)
    ]


def audit_rows() -> list[dict[str, Any]]:
    return [
        {
            "seq": seq,
            "id": uuid.UUID(int=seq),
            "occurred_at": datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=HELSINKI),
            "action": "collection",
            "event": "message.accepted",
            "actor": "client:bulk-test",
            "subject_type": "message",
            "subject_id": str(MESSAGES[0]),
            "recipient": None,
            "justification": "tutkinta: ärende ja Ålands poliisi" if seq == 2 else None,
            "details": {"kinds": ["person"], "nested": {"n": seq, "x": None}, "f": 1.5},
            "prev_hash": b"\x00" * 32,
            "hash": bytes([seq]) * 32,
        }
        for seq in (1, 2)
    ]


def idempotency_rows() -> list[dict[str, Any]]:
    when = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    return [
        {
            "client_id": CLIENT,
            "key": key,
            "operation": "messages.create",
            "fingerprint": b"\x10" * 32,
            "status_code": 202,
            "response": response,
            "created_at": when,
            "expires_at": when + timedelta(days=1, microseconds=1),
        }
        # JSON null in a JSON column: stored as the text 'null', as the JSON type does
        for key, response in (("k-1", {"id": str(MESSAGES[0])}), ("k-2", None))
    ]


TABLES: list[tuple[Any, Any]] = [
    (Message, message_rows),
    (MessageIdentifier, identifier_rows),
    (Delivery, delivery_rows),
    (DeliveryAttempt, attempt_rows),
    (AuditEntry, audit_rows),
    (IdempotencyRecord, idempotency_rows),
]


@pytest.fixture
def urls(tmp_path: Path) -> list[str]:
    made = [f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in ("bulk", "sqlalchemy")]
    for url in made:
        upgrade(url)
    return made


@pytest.fixture
async def databases(urls: list[str]) -> AsyncIterator[tuple[Database, Database]]:
    made = [Database(url) for url in urls]
    for db in made:
        async with db.write_transaction() as session:
            await session.execute(insert(table(ApiClient)), [client_row()])
            await session.execute(insert(table(Partner)), [partner_row()])
    try:
        yield made[0], made[1]
    finally:
        for db in made:
            await db.dispose()


def dump(db: Database, name: str) -> list[tuple[Any, ...]]:
    """Every stored value of the table with its SQLite storage class, in rowid order."""
    path = db.url.split("///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')]
        selected = ", ".join(f'typeof("{c}"), "{c}"' for c in columns)
        return conn.execute(f'SELECT {selected} FROM "{name}" ORDER BY rowid').fetchall()  # noqa: S608
    finally:
        conn.close()


async def test_rows_land_as_sqlalchemy_would_store_them(
    databases: tuple[Database, Database],
) -> None:
    bulk, reference = databases
    async with bulk.write_transaction() as session:
        for entity, rows in TABLES:
            await insert_rows(session, table(entity), rows())
    async with reference.write_transaction() as session:
        for entity, rows in TABLES:
            await session.execute(insert(table(entity)), rows())
    for entity, rows in TABLES:
        name = table(entity).name
        stored = dump(bulk, name)
        assert len(stored) == len(rows()), name
        assert stored == dump(reference, name), name


async def test_rows_read_back_through_the_models(databases: tuple[Database, Database]) -> None:
    bulk, _ = databases
    async with bulk.write_transaction() as session:
        await insert_rows(session, table(Message), message_rows())
        await insert_rows(session, table(IdempotencyRecord), idempotency_rows())
    async with bulk.read_sessions() as session:
        messages = (await session.scalars(select(Message).order_by(Message.seq))).all()
        records = (await session.scalars(select(IdempotencyRecord))).all()
    for message, row in zip(messages, message_rows(), strict=True):
        assert message.id == row["id"]
        assert message.created_at == row["created_at"]
        assert message.created_at.tzinfo is UTC
        assert message.recipients == row["recipients"]
        assert message.case_digest == row["case_digest"]
        assert message.ciphertext == row["ciphertext"]
        assert message.forwarded_from == row["forwarded_from"]
    assert {r.key: r.response for r in records} == {"k-1": {"id": str(MESSAGES[0])}, "k-2": None}


async def test_a_page_per_statement_and_nothing_of_a_failed_transaction(
    databases: tuple[Database, Database],
) -> None:
    bulk, _ = databases
    rows = [{**idempotency_rows()[0], "key": f"page-{n}"} for n in range(2500)]
    async with bulk.write_transaction() as session:
        with driver_statements(session) as statements:
            await insert_rows(session, table(IdempotencyRecord), rows)
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 3  # 1000 rows, 1000, then 500: one GIL release per page
    assert len(dump(bulk, "idempotency_keys")) == 2500

    async def new_then_duplicate() -> None:
        async with bulk.write_transaction() as session:
            await insert_rows(session, table(IdempotencyRecord), [{**rows[0], "key": "new"}])
            await insert_rows(session, table(IdempotencyRecord), rows[:1])

    with pytest.raises(IntegrityError):  # a duplicate key, as SQLAlchemy would raise it
        await new_then_duplicate()
    keys = {row[3] for row in dump(bulk, "idempotency_keys")}
    assert "new" not in keys  # rolled back with the failed statement's transaction
