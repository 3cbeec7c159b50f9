"""Delivery rules for the API: who may see a message's deliveries, and redriving dead letters.

Who sees a delivery: one to a partner, whoever may see what it carries (the
message's owner; partner operators in the dead letters); one to an internal
subscriber, only the client owning that subscription, or an admin. Another
client's subscription ids, attempts, errors never show, in any listing, as the
subscription itself never does. Services flush; the caller commits.
"""

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.auth.deps import Principal
from commcentre.delivery import repository
from commcentre.delivery.models import Delivery, DeliveryAttempt, DeliveryStatus
from commcentre.delivery.repository import DeadLetterSelection
from commcentre.delivery.schemas import (
    REDRIVE_MAX_IDS,
    DeadLetterOut,
    DeadLetterRedrive,
    DeliveryAttemptOut,
    DeliveryOut,
    MessageDeliveries,
    RedriveResult,
    RequestDeliveries,
)
from commcentre.errors import Conflict, NotFound
from commcentre.messages import service as messages
from commcentre.partners import service as partners
from commcentre.subscriptions import repository as subscriptions_repository

REDRIVE_OPERATION = "POST /v1/dead-letters/redrive"
AUDIT_MAX_PARTNERS = 20
_WAITING = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)


def viewer(principal: Principal) -> uuid.UUID | None:
    """Whose subscriptions' deliveries a caller sees: its own, or (None) all for an admin."""
    return None if principal.is_admin else principal.client_id


async def deliveries_of(
    session: AsyncSession, message_id: uuid.UUID, *, principal: Principal
) -> MessageDeliveries:
    """Delivery state of a message this client may see (else 404): its partner deliveries
    and those to subscriptions the client owns."""
    await repository.pin_snapshot(session)  # message, deliveries and attempts as of one moment
    message = await messages.get_visible(session, message_id, principal=principal)
    rows = await repository.for_message(session, message.id, seen_by=viewer(principal))
    history: dict[uuid.UUID, list[DeliveryAttemptOut]] = {row.id: [] for row in rows}
    for attempt in await repository.attempt_history(session, list(history)):
        history[attempt.delivery_id].append(_attempt_out(attempt))
    return MessageDeliveries(
        message_id=message.id,
        status=message.status,
        deliveries=[_delivery_out(row, history[row.id]) for row in rows],
    )


async def deliveries_of_request(
    session: AsyncSession, request_id: uuid.UUID, *, principal: Principal
) -> RequestDeliveries:
    """The event deliveries of a request to subscriptions this client owns (all for an
    admin); the caller checked that the request exists."""
    await repository.pin_snapshot(session)
    rows = await repository.for_request(session, request_id, seen_by=viewer(principal))
    history: dict[uuid.UUID, list[DeliveryAttemptOut]] = {row.id: [] for row in rows}
    for attempt in await repository.attempt_history(session, list(history)):
        history[attempt.delivery_id].append(_attempt_out(attempt))
    return RequestDeliveries(
        request_id=request_id, deliveries=[_delivery_out(row, history[row.id]) for row in rows]
    )


def _attempt_out(attempt: DeliveryAttempt) -> DeliveryAttemptOut:
    return DeliveryAttemptOut(
        number=attempt.number,
        started_at=attempt.started_at,
        duration_ms=attempt.duration_ms,
        outcome=attempt.outcome,
        status_code=attempt.status_code,
        error=attempt.error,
    )


def _delivery_out(row: Delivery, history: list[DeliveryAttemptOut]) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        partner=row.partner_id,
        subscription=row.subscription_id,
        request=row.request_id,
        event=row.event,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status in _WAITING else None,
        delivered_at=row.delivered_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        attempt_history=history,
    )


async def list_dead_letters(
    session: AsyncSession,
    *,
    partner_id: str | None,
    subscription_id: uuid.UUID | None = None,
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    seen_by: uuid.UUID | None = None,
) -> list[DeadLetterOut]:
    """One page of dead letters, oldest first by when they died; `seen_by`: only those
    to partners and to that client's subscriptions (None: all)."""
    selection = DeadLetterSelection(
        partner_id=partner_id,
        subscription_id=subscription_id,
        since=since,
        until=until,
        seen_by=seen_by,
    )
    rows = await repository.list_dead(session, selection, after=after, limit=limit)
    return [
        DeadLetterOut(
            id=row.id,
            message_id=row.message_id,
            request=row.request_id,
            event=row.event,
            partner=row.partner_id,
            subscription=row.subscription_id,
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            dead_since=row.updated_at,
        )
        for row in rows
    ]


async def redrive(
    session: AsyncSession,
    request: DeadLetterRedrive,
    *,
    actor: str,
    now: datetime,
    seen_by: uuid.UUID | None = None,
) -> RedriveResult:
    """Put dead letters back to pending (attempts from 0), or with dry_run say which would be.

    Only dead deliveries are touched; ids given that are not dead are skipped.
    Every partner and subscription concerned must be enabled (409 naming those
    that are not): the dispatcher never claims a disabled partner's or
    subscription's deliveries, so they would only sit there (and a deleted
    subscription's would die again). A real redrive is audited as an alteration.
    `seen_by`: only dead letters to partners and to that client's subscriptions
    (another client's subscription is 'not found', its dead letters 'skipped').
    """
    ids = list(dict.fromkeys(request.ids)) if request.ids is not None else None
    selection = DeadLetterSelection(
        ids=ids,
        partner_id=request.partner,
        subscription_id=request.subscription,
        since=request.since,
        until=request.until,
        live_at=now,
        seen_by=seen_by,
    )
    expired = await repository.count_dead(session, replace(selection, live_at=None, expired_at=now))
    disabled = await repository.disabled_partners_of_dead(session, selection)
    if request.partner is not None:
        partner = await partners.get_partner(session, request.partner)
        if not partner.enabled and partner.id not in disabled:
            disabled.append(partner.id)
    if disabled:
        raise _disabled(disabled)
    unavailable = await repository.unavailable_subscriptions_of_dead(session, selection)
    if request.subscription is not None:
        subscription = await subscriptions_repository.get_any(session, request.subscription)
        if subscription is None or seen_by not in (None, subscription.client_id):
            raise NotFound(f"subscription {request.subscription} does not exist")
        if (
            not subscription.enabled or subscription.deleted_at is not None
        ) and subscription.id not in unavailable:
            unavailable.append(subscription.id)
    if unavailable:
        raise _unavailable_subscriptions(unavailable)
    if request.dry_run:
        if ids is not None:
            chosen = await repository.dead_ids(session, selection, limit=None)
            count = len(chosen)
        else:
            chosen = await repository.dead_ids(session, selection, limit=REDRIVE_MAX_IDS)
            count = await repository.count_dead(session, selection)
    else:
        redriven = await repository.redrive_dead(session, selection, now=now)
        chosen = [delivery_id for delivery_id, _, _ in redriven]
        count = len(chosen)
        if count:
            concerned = sorted({p for _, p, _ in redriven if p is not None})
            subscribers = sorted({s for _, _, s in redriven if s is not None})
            await _audit(
                session,
                request,
                count=count,
                partners=concerned,
                subscriptions=subscribers,
                actor=actor,
                now=now,
            )
    return RedriveResult(
        redriven=count,
        ids=chosen[:REDRIVE_MAX_IDS],
        skipped=_skipped(ids, chosen),
        expired=expired,
        dry_run=request.dry_run,
    )


def _disabled(partner_ids: Sequence[str]) -> Conflict:
    named = ", ".join(partner_ids)
    return Conflict(
        f"disabled partner(s) {named}: enable with PATCH /v1/partners/{{id}} before "
        "redriving, or their dead letters would only sit in the outbox",
        extra={"disabled_partners": list(partner_ids)},
    )


def _unavailable_subscriptions(subscription_ids: Sequence[uuid.UUID]) -> Conflict:
    named = ", ".join(str(s) for s in subscription_ids)
    return Conflict(
        f"disabled or deleted subscription(s) {named}: enable with PATCH "
        "/v1/subscriptions/{id} before redriving (a deleted subscription's dead letters "
        "cannot be redriven)",
        extra={"unavailable_subscriptions": [str(s) for s in subscription_ids]},
    )


def _skipped(ids: Sequence[uuid.UUID] | None, chosen: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    if ids is None:
        return []
    taken = set(chosen)
    return [i for i in ids if i not in taken]


async def _audit(
    session: AsyncSession,
    request: DeadLetterRedrive,
    *,
    count: int,
    partners: Sequence[str],
    subscriptions: Sequence[uuid.UUID] = (),
    actor: str,
    now: datetime,
) -> None:
    details: dict[str, object] = {
        "count": count,
        "by": "ids" if request.ids is not None else "filter",
        "partner": request.partner,
        "since": request.since.isoformat() if request.since else None,
        "until": request.until.isoformat() if request.until else None,
        # Bounded: the details of an entry must stay small (the chain hashes them).
        "partners": list(partners[:AUDIT_MAX_PARTNERS]),
    }
    if subscriptions or request.subscription is not None:
        details["subscription"] = str(request.subscription) if request.subscription else None
        details["subscriptions"] = [str(s) for s in subscriptions[:AUDIT_MAX_PARTNERS]]
    # One destination concerned: the entry is found by its id, as its other changes are.
    subject_type: str | None = None
    subject: str | None = None
    if len(partners) == 1 and not subscriptions:
        subject_type, subject = "partner", partners[0]
    elif len(subscriptions) == 1 and not partners:
        subject_type, subject = "subscription", str(subscriptions[0])
    record = AuditRecord(
        action=AuditAction.ALTERATION,
        event="dead_letters.redriven",
        actor=actor,
        subject_type=subject_type,
        subject_id=subject,
        details=details,
        occurred_at=now,
    )
    await append(session, [record], now=now)
