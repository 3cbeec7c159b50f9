"""SQL for the audit log: append under the head-row lock, keyset listing, chain reads.

Appends go to the tables (not the ORM) through `commcentre.bulk.insert_rows`: they
run in the hot ingest batch.
"""

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.models import HEAD_ID, AuditEntry, AuditHead
from commcentre.bulk import insert_rows
from commcentre.db import WriteSession

VERIFY_CHUNK = 1000

_entries = cast(Table, AuditEntry.__table__)
_head = cast(Table, AuditHead.__table__)

# Every audited write runs both: built once, with bound parameters.
_ADVANCE_HEAD = (
    update(_head)
    .where(_head.c.id == HEAD_ID)
    .values(seq=_head.c.seq + bindparam("count"), updated_at=bindparam("now"))
    .returning(_head.c.seq, _head.c.hash)
)
_SET_HEAD_HASH = update(_head).where(_head.c.id == HEAD_ID).values(hash=bindparam("head_hash"))


class AuditHeadMissingError(RuntimeError):
    """The audit_head row is absent: the migrations have not run, or it was deleted."""


class ChainHead(NamedTuple):
    """The last seq and hash of the chain as the head row records them."""

    seq: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Conditions on a listing; None means any. `since` is inclusive, `until` exclusive."""

    action: str | None = None
    event: str | None = None
    actor: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def advance_head(session: WriteSession, count: int, *, now: datetime) -> ChainHead:
    """Reserve `count` seqs; returns the new last seq and the hash before the reservation.

    This must be the first audit statement of the transaction: on PostgreSQL
    the UPDATE takes the head's row lock (a concurrent writer in any process
    blocks here until we commit, then reads our values), and on SQLite the
    write transaction already holds the database lock.
    """
    result = await session.execute(_ADVANCE_HEAD, {"count": count, "now": now})
    row = result.one_or_none()
    if row is None:
        raise AuditHeadMissingError("audit_head row is missing; run the migrations")
    return ChainHead(row.seq, row.hash)


async def insert_entries(session: WriteSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert chained entries with one executemany."""
    await insert_rows(session, _entries, rows)


async def set_head_hash(session: WriteSession, head_hash: bytes) -> None:
    """Record the hash of the entry the head's seq now points at."""
    await session.execute(_SET_HEAD_HASH, {"head_hash": head_hash})


async def get_head(session: AsyncSession) -> ChainHead | None:
    """The head row's seq and hash, or None when the row is missing."""
    result = await session.execute(select(_head.c.seq, _head.c.hash).where(_head.c.id == HEAD_ID))
    row = result.one_or_none()
    return None if row is None else ChainHead(row.seq, row.hash)


async def pin_snapshot(session: AsyncSession) -> None:
    """Make every read in this (not yet begun) transaction see one snapshot.

    SQLite's deferred read transaction already does (WAL). PostgreSQL's default
    READ COMMITTED takes a new snapshot per statement, so a verification could
    see the head and the entries at different moments while writers append.
    """
    if session.in_transaction():
        return  # too late to choose; the caller's transaction decides
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def list_entries(
    session: AsyncSession, filters: AuditFilter, *, after_seq: int | None, limit: int
) -> Sequence[AuditEntry]:
    """Up to `limit` entries matching `filters`, ascending by seq, after `after_seq`."""
    statement = select(AuditEntry).order_by(AuditEntry.seq).limit(limit)
    if after_seq is not None:
        statement = statement.where(AuditEntry.seq > after_seq)
    if filters.action is not None:
        statement = statement.where(AuditEntry.action == filters.action)
    if filters.event is not None:
        statement = statement.where(AuditEntry.event == filters.event)
    if filters.actor is not None:
        statement = statement.where(AuditEntry.actor == filters.actor)
    if filters.subject_id is not None:
        statement = statement.where(AuditEntry.subject_id == filters.subject_id)
    if filters.since is not None:
        statement = statement.where(AuditEntry.occurred_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(AuditEntry.occurred_at < filters.until)
    result = await session.execute(statement)
    return result.scalars().all()


async def iter_entry_chunks(
    session: AsyncSession, *, chunk_size: int = VERIFY_CHUNK, after_seq: int | None = None
) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
    """Every entry (after `after_seq`) as plain rows, ascending by seq, `chunk_size`
    at a time.

    Plain rows rather than ORM objects, so that memory stays flat on a long
    log (the identity map would keep every entry loaded).
    """
    while True:
        statement = select(_entries).order_by(_entries.c.seq).limit(chunk_size)
        if after_seq is not None:
            statement = statement.where(_entries.c.seq > after_seq)
        # Keyed by column name (strings only, as the cast records).
        rows = cast(
            Sequence[Mapping[str, Any]], (await session.execute(statement)).mappings().all()
        )
        if not rows:
            return
        yield rows
        if len(rows) < chunk_size:
            return
        after_seq = rows[-1]["seq"]
