"""SQL for the delivery outbox: insert, claim with a lease, record outcomes, dead letters."""

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from commcentre.bulk import insert_rows
from commcentre.db import WriteSession
from commcentre.delivery.models import Delivery, DeliveryAttempt, DeliveryStatus
from commcentre.ids import new_id
from commcentre.messages.models import Message
from commcentre.partners.models import Partner
from commcentre.subscriptions.models import Subscription

_deliveries = cast(Table, Delivery.__table__)
_attempts = cast(Table, DeliveryAttempt.__table__)
_messages = cast(Table, Message.__table__)

# The dispatcher's per-claim and per-outcome reads, built once with an expanding IN
# parameter: building a statement and its cache key on every call cost more CPU than
# running it.
_SEALED_MESSAGES = select(Message).where(Message.id.in_(bindparam("ids", expanding=True)))
_PARTNERS = select(Partner).where(Partner.id.in_(bindparam("ids", expanding=True)))
_HELD = select(_deliveries.c.id).where(
    _deliveries.c.id.in_(bindparam("ids", expanding=True)),
    _deliveries.c.lease_owner == bindparam("owner"),
    _deliveries.c.status == DeliveryStatus.IN_FLIGHT.value,
)
_STATUS_COUNTS = (
    select(_deliveries.c.message_id, _deliveries.c.status, func.count())
    .where(_deliveries.c.message_id.in_(bindparam("ids", expanding=True)))
    .group_by(_deliveries.c.message_id, _deliveries.c.status)
)
# The recorder's writes (executemany): an attempt's outcome, and a message's final status.
_RECORD_OUTCOME = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        lease_owner=None,
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
        delivered_at=bindparam("b_delivered_at"),
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
    )
)
_SET_MESSAGE_STATUS = (
    update(_messages)
    .where(_messages.c.id == bindparam("b_id"), _messages.c.direction != "inbound")
    .values(status=bindparam("b_status"))
)

NOTIFY_CHANNEL = "commcentre_deliveries"

DUE_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)
OPEN_STATUSES = (*DUE_STATUSES, DeliveryStatus.IN_FLIGHT.value)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: uuid.UUID
    # The message delivered; None for a request event (then request_id is set).
    message_id: uuid.UUID | None
    # Exactly one is set: a partner, or an internal subscriber's subscription.
    partner_id: str | None
    subscription_id: uuid.UUID | None
    attempts: int
    # When it entered the queue: created, or redriven from the dead letters.
    queued_at: datetime
    # A request event: the request, the event and its data (metadata only).
    request_id: uuid.UUID | None = None
    event: str | None = None
    event_data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one attempt came to; written back in batches."""

    delivery_id: uuid.UUID
    message_id: uuid.UUID | None
    partner_id: str | None
    status: DeliveryStatus
    attempt: int
    started_at: datetime
    duration_ms: int
    outcome: str
    next_attempt_at: datetime
    status_code: int | None = None
    error: str | None = None
    subscription_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None


def pending_row(now: datetime, **columns: Any) -> dict[str, Any]:
    """A new outbox row, due now; `columns` name its destination and subject."""
    return {
        "id": new_id(),
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        **columns,
    }


async def insert_deliveries(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add outbox rows (to partners, subscribers, or both mixed; messages or request
    events); on PostgreSQL also NOTIFY the workers (sent at commit)."""
    if not rows:
        return
    # One executemany takes its columns from the first row: give every row both
    # destinations and both subjects. A request event's data goes in its own statement, so
    # that a message's event_data stays SQL NULL (never JSON null).
    filled = [
        {"partner_id": None, "subscription_id": None, "request_id": None, "event": None, **row}
        for row in rows
    ]
    events = [row for row in filled if "event_data" in row]
    messages = [row for row in filled if "event_data" not in row]
    for batch in (messages, events):
        if batch:
            await insert_rows(session, _deliveries, batch)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


async def claim_due(
    session: WriteSession,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    skip_partners: Collection[str] = (),
    skip_subscriptions: Collection[uuid.UUID] = (),
    skip_locked: bool,
) -> list[ClaimedDelivery]:
    """Lease up to `limit` due deliveries to `owner`.

    Due: pending or retrying with next_attempt_at reached, or in flight with an
    expired lease (its worker died). Partners and subscriptions that are
    disabled, or whose circuit is open in this worker, are skipped; a deleted
    subscription's deliveries are claimed (the dispatcher dead-letters them).
    On PostgreSQL rows locked by another worker's claim are skipped (FOR UPDATE
    SKIP LOCKED); SQLite has one writer.
    """
    statement = _claim_statement(bool(skip_partners), bool(skip_subscriptions), skip_locked)
    params: dict[str, Any] = {
        "c_now": now,
        "c_limit": limit,
        "c_owner": owner,
        "c_lease_expires": now + lease,
    }
    if skip_partners:
        params["c_skip_partners"] = list(skip_partners)
    if skip_subscriptions:
        params["c_skip_subscriptions"] = list(skip_subscriptions)
    result = await session.execute(statement, params)
    return [ClaimedDelivery(*row) for row in result.all()]


_claim_statements: dict[tuple[bool, bool, bool], Any] = {}


def _claim_statement(skip_partners: bool, skip_subscriptions: bool, skip_locked: bool) -> Any:
    """The claim's UPDATE ... RETURNING, built once per shape with bound parameters.

    Building the expression is most of a claim's own cost on a busy dispatcher; the
    same statement object also reuses SQLAlchemy's compiled form.
    """
    key = (skip_partners, skip_subscriptions, skip_locked)
    found = _claim_statements.get(key)
    if found is not None:
        return found
    now = bindparam("c_now", type_=Delivery.next_attempt_at.type)
    due = or_(
        and_(Delivery.status.in_(DUE_STATUSES), Delivery.next_attempt_at <= now),
        and_(Delivery.status == DeliveryStatus.IN_FLIGHT.value, Delivery.lease_expires_at < now),
    )
    candidates = (
        _with_destinations(select(Delivery.id))
        .where(due, _claimable_destination())
        .order_by(Delivery.next_attempt_at)
        .limit(bindparam("c_limit", type_=Integer))
    )
    if skip_partners:
        candidates = candidates.where(
            or_(
                Delivery.partner_id.is_(None),
                Delivery.partner_id.not_in(bindparam("c_skip_partners", expanding=True)),
            )
        )
    if skip_subscriptions:
        candidates = candidates.where(
            or_(
                Delivery.subscription_id.is_(None),
                Delivery.subscription_id.not_in(bindparam("c_skip_subscriptions", expanding=True)),
            )
        )
    if skip_locked:
        candidates = candidates.with_for_update(skip_locked=True, of=Delivery)
    columns = _deliveries.c
    statement = (
        update(_deliveries)
        .where(columns.id.in_(candidates.scalar_subquery()))
        .values(
            # A row still in flight was leased by a worker that died mid-attempt: that
            # attempt counts, so a message that kills every worker still ends as a
            # dead letter instead of being retried forever.
            attempts=columns.attempts
            + case((columns.status == DeliveryStatus.IN_FLIGHT.value, 1), else_=0),
            status=DeliveryStatus.IN_FLIGHT.value,
            lease_owner=bindparam("c_owner", type_=columns.lease_owner.type),
            lease_expires_at=bindparam("c_lease_expires", type_=columns.lease_expires_at.type),
            updated_at=now,
        )
        .returning(
            columns.id,
            columns.message_id,
            columns.partner_id,
            columns.subscription_id,
            columns.attempts,
            func.coalesce(columns.redriven_at, columns.created_at),
            columns.request_id,
            columns.event,
            columns.event_data,
        )
    )
    return _claim_statements.setdefault(key, statement)


def _with_destinations(stmt: Select[Any]) -> Select[Any]:
    """Outer-join a deliveries query to its partner and its subscription (one is NULL)."""
    return stmt.outerjoin(Partner, Partner.id == Delivery.partner_id).outerjoin(
        Subscription, Subscription.id == Delivery.subscription_id
    )


def _claimable_destination() -> Any:
    """An enabled partner, or a subscription that is enabled or deleted (to dead-letter)."""
    return or_(
        Partner.enabled.is_(True),
        Subscription.enabled.is_(True),
        Subscription.deleted_at.is_not(None),
    )


async def record_outcomes(
    session: WriteSession, owner: str, outcomes: Sequence[DeliveryOutcome], *, now: datetime
) -> set[uuid.UUID]:
    """Write attempts and new states; returns the deliveries this owner still held.

    A worker whose lease expired (and was taken over) writes nothing for that
    delivery: the new holder's outcome counts.
    """
    if not outcomes:
        return set()
    ids = [o.delivery_id for o in outcomes]
    held = set((await session.execute(_HELD, {"ids": ids, "owner": owner})).scalars())
    mine = [o for o in outcomes if o.delivery_id in held]
    if not mine:
        return held
    await session.execute(
        _RECORD_OUTCOME,
        [
            {
                "b_now": now,
                "b_id": o.delivery_id,
                "b_status": o.status.value,
                "b_attempts": o.attempt,
                "b_next": o.next_attempt_at,
                "b_delivered_at": now if o.status is DeliveryStatus.DELIVERED else None,
                "b_code": o.status_code,
                "b_error": o.error,
            }
            for o in mine
        ],
    )
    await insert_rows(
        session,
        _attempts,
        [
            {
                "id": new_id(),
                "delivery_id": o.delivery_id,
                "number": o.attempt,
                "started_at": o.started_at,
                "duration_ms": o.duration_ms,
                "outcome": o.outcome,
                "status_code": o.status_code,
                "error": o.error,
            }
            for o in mine
        ],
    )
    return held


async def release(
    session: WriteSession,
    owner: str,
    delivery_ids: Sequence[uuid.UUID],
    *,
    next_attempt_at: datetime,
    now: datetime,
) -> None:
    """Give leased deliveries back without an attempt (shutdown, open circuit, rate limit)."""
    if not delivery_ids:
        return
    await session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(list(delivery_ids)),
            Delivery.lease_owner == owner,
            Delivery.status == DeliveryStatus.IN_FLIGHT.value,
        )
        .values(
            status=DeliveryStatus.RETRYING.value,
            next_attempt_at=next_attempt_at,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def refresh_message_status(
    session: WriteSession, message_ids: Collection[uuid.UUID | None]
) -> None:
    """accepted -> delivered | partially_delivered | failed once no delivery is open.

    Outbound messages only: an inbound message stays `received` whatever its
    deliveries to subscribers come to. None (a request event's) is ignored.
    """
    ids = [m for m in message_ids if m is not None]
    if not ids:
        return
    rows = (await session.execute(_STATUS_COUNTS, {"ids": ids})).all()
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for message_id, status, count in rows:
        counts.setdefault(uuid.UUID(str(message_id)), {})[status] = int(count)
    updates = []
    for message_id, by_status in counts.items():
        if any(by_status.get(s, 0) for s in OPEN_STATUSES):
            continue
        delivered = by_status.get(DeliveryStatus.DELIVERED.value, 0)
        dead = by_status.get(DeliveryStatus.DEAD.value, 0)
        status = "delivered" if not dead else ("partially_delivered" if delivered else "failed")
        updates.append({"b_id": message_id, "b_status": status})
    if updates:
        await session.execute(_SET_MESSAGE_STATUS, updates)


async def message_legal_bases(
    session: AsyncSession, message_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        select(Message.id, Message.legal_basis).where(Message.id.in_(list(message_ids)))
    )
    return {row[0]: row[1] for row in rows.all()}


async def sealed_messages(
    session: WriteSession, message_ids: Collection[uuid.UUID]
) -> Sequence[Message]:
    result = await session.execute(_SEALED_MESSAGES, {"ids": list(message_ids)})
    return result.scalars().all()


async def partners(session: WriteSession, partner_ids: Collection[str]) -> Sequence[Partner]:
    result = await session.execute(_PARTNERS, {"ids": list(partner_ids)})
    return result.scalars().all()


def visible_to(client_id: uuid.UUID | None) -> ColumnElement[bool]:
    """The deliveries a client may see: to partners, and to subscriptions it owns.

    Another client's subscription (its id, attempts, errors) is that client's business
    alone, as the subscription itself is. `client_id` None: every delivery (an admin).
    """
    if client_id is None:
        return true()
    owned = select(Subscription.id).where(Subscription.client_id == client_id)
    return or_(Delivery.subscription_id.is_(None), Delivery.subscription_id.in_(owned))


async def for_message(
    session: AsyncSession, message_id: uuid.UUID, *, seen_by: uuid.UUID | None
) -> Sequence[Delivery]:
    """The deliveries of a message that `seen_by` may see (None: all)."""
    result = await session.execute(
        select(Delivery)
        .where(Delivery.message_id == message_id, visible_to(seen_by))
        .order_by(Delivery.partner_id.is_(None), Delivery.partner_id, Delivery.subscription_id)
    )
    return result.scalars().all()


async def for_request(
    session: AsyncSession, request_id: uuid.UUID, *, seen_by: uuid.UUID | None
) -> Sequence[Delivery]:
    """The event deliveries of a request that `seen_by` may see, by event then subscription."""
    result = await session.execute(
        select(Delivery)
        .where(Delivery.request_id == request_id, visible_to(seen_by))
        .order_by(Delivery.event, Delivery.subscription_id)
    )
    return result.scalars().all()


async def attempts_for(
    session: AsyncSession, delivery_ids: Collection[uuid.UUID]
) -> Sequence[DeliveryAttempt]:
    result = await session.execute(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.number)
    )
    return result.scalars().all()


async def has_open_work(session: AsyncSession) -> bool:
    """Is any delivery that `claim_due` would take still open: pending, retrying or in flight?

    A retry scheduled for later is open work too: a drain that ignored it would
    report done while the delivery is still unsettled. A disabled partner's or
    subscription's deliveries are never claimed (see `claim_due`), so no drain
    could wait them out; a deleted subscription's are, to be dead-lettered.
    """
    found = await session.execute(
        _with_destinations(select(Delivery.id))
        .where(Delivery.status.in_(OPEN_STATUSES), _claimable_destination())
        .limit(1)
    )
    return found.first() is not None


# -- the delivery API: delivery state and dead letters ------------------------------------------

MESSAGE_UPDATE_CHUNK = 500
SETTLED_MESSAGE_STATUSES = ("delivered", "partially_delivered", "failed")


@dataclass(frozen=True, slots=True)
class DeadLetterSelection:
    """Which dead letters: by delivery ids, or by partner or subscription and a window
    on updated_at."""

    ids: Sequence[uuid.UUID] | None = None
    partner_id: str | None = None
    subscription_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    # Only those that may still be sent at this instant: a request event, or a message
    # whose retention period has not ended (past it, the message is to be erased).
    live_at: datetime | None = None
    # Only those whose message's retention period had ended at this instant.
    expired_at: datetime | None = None
    # Only those this client may see (`visible_to`); None: all (an admin, the CLI).
    seen_by: uuid.UUID | None = None

    def conditions(self) -> list[Any]:
        """WHERE conditions on deliveries: dead, and within this selection."""
        out: list[Any] = [Delivery.status == DeliveryStatus.DEAD.value]
        if self.ids is not None:
            out.append(Delivery.id.in_(list(self.ids)))
        if self.partner_id is not None:
            out.append(Delivery.partner_id == self.partner_id)
        if self.subscription_id is not None:
            out.append(Delivery.subscription_id == self.subscription_id)
        if self.since is not None:
            out.append(Delivery.updated_at >= self.since)
        if self.until is not None:
            out.append(Delivery.updated_at < self.until)
        if self.live_at is not None:
            out.append(or_(Delivery.message_id.is_(None), _message_kept(self.live_at)))
        if self.expired_at is not None:
            out.extend([Delivery.message_id.is_not(None), ~_message_kept(self.expired_at)])
        if self.seen_by is not None:
            out.append(visible_to(self.seen_by))
        return out


def _message_kept(at: datetime) -> Any:
    """The delivery's message is within its retention period at `at` (a key lookup per row)."""
    return exists().where(Message.id == Delivery.message_id, Message.purge_after > at)


async def attempt_history(
    session: AsyncSession, delivery_ids: Collection[uuid.UUID]
) -> Sequence[DeliveryAttempt]:
    """Attempts in the order they were made (numbers restart after a redrive)."""
    if not delivery_ids:
        return []
    result = await session.execute(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.started_at, DeliveryAttempt.id)
    )
    return result.scalars().all()


async def list_dead(
    session: AsyncSession,
    selection: DeadLetterSelection,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Any]:
    """One page of dead letters, oldest first by (updated_at, id); no payload columns."""
    stmt = (
        select(
            Delivery.id,
            Delivery.message_id,
            Delivery.request_id,
            Delivery.event,
            Delivery.partner_id,
            Delivery.subscription_id,
            Delivery.attempts,
            Delivery.last_status_code,
            Delivery.last_error,
            Delivery.updated_at,
        )
        .where(*selection.conditions())
        .order_by(Delivery.updated_at, Delivery.id)
        .limit(limit)
    )
    if after is not None:
        at, last_id = after
        stmt = stmt.where(
            or_(
                Delivery.updated_at > at,
                and_(Delivery.updated_at == at, Delivery.id > last_id),
            )
        )
    return (await session.execute(stmt)).all()


async def dead_ids(
    session: AsyncSession, selection: DeadLetterSelection, *, limit: int | None
) -> list[uuid.UUID]:
    """Ids of the selected dead letters, in id (= creation) order."""
    stmt = select(Delivery.id).where(*selection.conditions()).order_by(Delivery.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.execute(stmt)).scalars())


async def count_dead(session: AsyncSession, selection: DeadLetterSelection) -> int:
    stmt = select(func.count()).select_from(Delivery).where(*selection.conditions())
    return int((await session.execute(stmt)).scalar_one())


async def disabled_partners_of_dead(
    session: AsyncSession, selection: DeadLetterSelection
) -> list[str]:
    """Disabled partners that some selected dead letter is addressed to, sorted."""
    stmt = (
        select(Partner.id)
        .distinct()
        .join(Delivery, Delivery.partner_id == Partner.id)
        .where(*selection.conditions(), Partner.enabled.is_(False))
        .order_by(Partner.id)
    )
    return list((await session.execute(stmt)).scalars())


async def unavailable_subscriptions_of_dead(
    session: AsyncSession, selection: DeadLetterSelection
) -> list[uuid.UUID]:
    """Disabled or deleted subscriptions that some selected dead letter is addressed to."""
    stmt = (
        select(Subscription.id)
        .distinct()
        .join(Delivery, Delivery.subscription_id == Subscription.id)
        .where(
            *selection.conditions(),
            or_(Subscription.enabled.is_(False), Subscription.deleted_at.is_not(None)),
        )
        .order_by(Subscription.id)
    )
    return list((await session.execute(stmt)).scalars())


async def redrive_dead(
    session: AsyncSession, selection: DeadLetterSelection, *, now: datetime
) -> list[tuple[uuid.UUID, str | None, uuid.UUID | None]]:
    """Put the selected dead letters back to pending, due now; (id, partner, subscription)
    of each, by id.

    The attempt count starts again from 0; last_status_code, last_error and the
    attempt rows stay, as history. Their messages go back to `accepted` (not
    settled) until the dispatcher settles them again. Flushes only; on
    PostgreSQL the workers are notified at commit.
    """
    result = await session.execute(
        update(_deliveries)
        .where(*selection.conditions())
        .values(
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
            redriven_at=now,
        )
        .returning(
            _deliveries.c.id,
            _deliveries.c.message_id,
            _deliveries.c.partner_id,
            _deliveries.c.subscription_id,
        )
    )
    rows = result.all()
    if not rows:
        return []
    # A request event has no message to put back.
    message_ids = sorted({row[1] for row in rows if row[1] is not None})
    for start in range(0, len(message_ids), MESSAGE_UPDATE_CHUNK):
        await session.execute(
            update(_messages)
            .where(
                _messages.c.id.in_(message_ids[start : start + MESSAGE_UPDATE_CHUNK]),
                _messages.c.status.in_(SETTLED_MESSAGE_STATUSES),
            )
            .values(status="accepted")
        )
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
    return sorted(((row[0], row[2], row[3]) for row in rows), key=lambda r: r[0])


async def pin_snapshot(session: AsyncSession) -> None:
    """Make every read of this (not yet begun) transaction see one snapshot.

    The dispatcher settles a delivery and its message in one transaction; on
    PostgreSQL's default READ COMMITTED a view read in several statements could
    show the delivery settled and the message not yet. SQLite's deferred read
    transaction already reads one snapshot (WAL).
    """
    if session.in_transaction():
        return  # too late to choose; the caller's transaction decides
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
