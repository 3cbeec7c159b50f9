"""Every table that holds data sealed with the keyring, for the key lifecycle commands.

Each row of these tables has its own data key, wrapped by a KEK version
(`key_version`, `wrapped_key`) and bound by the envelope's associated data to a
record id and a context. `keys status` counts rows per KEK version, `keys
retire` refuses a version any row still uses, and `keys rewrap` moves rows to
the current KEK. Rewrapping unwraps and wraps the data key only: no payload is
ever decrypted, and the ciphertext is not read.

A new table with sealed columns must be listed here, or a retired KEK would
make its rows unreadable (tests/unit/test_sealed_tables.py checks the list
against the models).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Column, Table, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.crypto import Envelope, SealedPayload
from commcentre.messages.models import Message
from commcentre.messages.service import ENVELOPE_CONTEXT as MESSAGE_CONTEXT
from commcentre.partners.models import Partner
from commcentre.partners.sealing import ENVELOPE_CONTEXT as PARTNER_CONTEXT
from commcentre.requests.models import RequestHistoryEntry, SupplementaryRequest
from commcentre.requests.sealing import HISTORY_CONTEXT, REQUEST_CONTEXT
from commcentre.subscriptions.models import Subscription
from commcentre.subscriptions.sealing import ENVELOPE_CONTEXT as SUBSCRIPTION_CONTEXT


@dataclass(frozen=True, slots=True)
class SealedTable:
    """A table with sealed rows: `record_id` is the column bound into the envelope."""

    label: str
    audit_key: str  # how `keys.rewrapped` audit entries count its rows
    table: Table
    record_id: str
    context: str

    def column(self, name: str) -> Column[object]:
        return cast(Column[object], self.table.c[name])


def _table(model: type) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


SEALED_TABLES: tuple[SealedTable, ...] = (
    SealedTable("messages", "messages", _table(Message), "id", MESSAGE_CONTEXT),
    SealedTable("partner configs", "partners", _table(Partner), "uid", PARTNER_CONTEXT),
    SealedTable(
        "subscription secrets",
        "subscriptions",
        _table(Subscription),
        "id",
        SUBSCRIPTION_CONTEXT,
    ),
    SealedTable("request texts", "requests", _table(SupplementaryRequest), "id", REQUEST_CONTEXT),
    SealedTable(
        "request notes", "request_notes", _table(RequestHistoryEntry), "id", HISTORY_CONTEXT
    ),
)
MESSAGES = SEALED_TABLES[0]


@dataclass(frozen=True, slots=True)
class RewrapBatch:
    examined: int
    rewrapped: int


async def count_by_key_version(session: AsyncSession) -> dict[str, dict[int, int]]:
    """{table label: {KEK version: rows}} over every sealed table."""
    counts: dict[str, dict[int, int]] = {}
    for sealed in SEALED_TABLES:
        version = sealed.column("key_version")
        result = await session.execute(
            select(version, func.count())
            .where(version.is_not(None), version > 0)  # 0: shredded, no key any more
            .group_by(version)
        )
        counts[sealed.label] = {int(v): int(n) for v, n in result.all()}  # type: ignore[call-overload]
    return counts


def users_of(counts: dict[str, dict[int, int]], version: int) -> int:
    """How many sealed rows, in all tables, a KEK version still protects."""
    return sum(per_version.get(version, 0) for per_version in counts.values())


async def rewrap_batch(
    session: AsyncSession,
    envelope: Envelope,
    sealed: SealedTable,
    *,
    target_version: int,
    limit: int,
) -> RewrapBatch:
    """Rewrap up to `limit` rows of one table sealed under a KEK older than the target.

    Only flushes. Each update is conditional on the old version, so a row another
    process rewrapped meanwhile is skipped: runs can overlap and resume.
    """
    key, version = sealed.column("id"), sealed.column("key_version")
    record, fmt, wrapped = (
        sealed.column(sealed.record_id),
        sealed.column("enc_format"),
        sealed.column("wrapped_key"),
    )
    rows: Sequence[tuple[object, ...]] = (
        await session.execute(
            select(key, record, fmt, version, wrapped)
            .where(version < target_version, version > 0)
            .order_by(key)
            .limit(limit)
        )
    ).all()
    rewrapped = 0
    for row_key, record_id, enc_format, old_version, wrapped_key in rows:
        payload = SealedPayload(
            format_version=int(enc_format),  # type: ignore[call-overload]
            key_version=int(old_version),  # type: ignore[call-overload]
            wrapped_key=bytes(wrapped_key),  # type: ignore[call-overload]
            ciphertext=b"",  # never read: only the data key moves
        )
        fresh = envelope.rewrap(payload, record_id=record_id, context=sealed.context)  # type: ignore[arg-type]
        result = await session.execute(
            update(sealed.table)
            .where(and_(key == row_key, version == old_version))
            .values(key_version=fresh.key_version, wrapped_key=fresh.wrapped_key)
        )
        rewrapped += int(getattr(result, "rowcount", 0) or 0)
    return RewrapBatch(examined=len(rows), rewrapped=rewrapped)
