"""HTTP routes of delivery state (scope messages:read) and dead letters (scope partners:manage)."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.auth.deps import MessageReader
from commcentre.clock import IsoDatetime
from commcentre.db import ReadSessionDep
from commcentre.delivery import service
from commcentre.delivery.schemas import (
    DeadLetterOut,
    DeadLetterRedrive,
    MessageDeliveries,
    RedriveResult,
)
from commcentre.errors import Conflict, Forbidden, NotFound, UnprocessableContent, problem_responses
from commcentre.idempotency.headers import IdempotencyKeyHeader, fingerprint
from commcentre.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from commcentre.partners.router import PartnerManager
from commcentre.partners.schemas import PARTNER_ID_PATTERN
from commcentre.runtime import RuntimeDep

router = APIRouter(tags=["deliveries"])

_CURSOR_KIND = "dead-letters"


@router.get(
    "/v1/messages/{message_id}/deliveries",
    summary="Delivery state of a message",
    description=(
        "Per destination partner or internal subscriber: status, attempts and every "
        "attempt's outcome. Never the payload, so no `X-Justification` is needed. Another "
        "client's message is 404. Deliveries to internal subscribers are shown only to the "
        "client owning the subscription (an admin sees all): another client's subscription "
        "ids, attempts and errors never appear."
    ),
    responses=problem_responses(Forbidden, NotFound, UnprocessableContent),
)
async def read_message_deliveries(
    message_id: uuid.UUID,
    principal: MessageReader,
    session: ReadSessionDep,
) -> MessageDeliveries:
    return await service.deliveries_of(session, message_id, principal=principal)


@router.get(
    "/v1/dead-letters",
    summary="List dead letters",
    description=(
        "Deliveries given up on (permanent failure, partner or subscriber gone, attempts or "
        "age exhausted, subscription deleted), to partners (`partner` set) and to internal "
        "subscribers (`subscription` set), oldest first by `dead_since`. A dead letter carries "
        "a message (`message_id`) or an event about a request (`request`, `event`, e.g. "
        "`request.overdue`). Filter by `partner` "
        "or `subscription`. `since` is inclusive, `until` exclusive, both on "
        "`dead_since` and with a time zone. Dead letters to internal subscribers are listed "
        "only for the client owning the subscription (an admin sees all)."
    ),
    responses=problem_responses(Forbidden, UnprocessableContent),
)
async def list_dead_letters(
    manager: PartnerManager,
    session: ReadSessionDep,
    partner: Annotated[str | None, Query(pattern=PARTNER_ID_PATTERN)] = None,
    subscription: Annotated[
        uuid.UUID | None, Query(description="Only this subscription's (internal subscriber)")
    ] = None,
    since: Annotated[IsoDatetime | None, Query(description="dead_since >= since")] = None,
    until: Annotated[IsoDatetime | None, Query(description="dead_since < until")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Page[DeadLetterOut]:
    after = _after(cursor) if cursor is not None else None
    items = await service.list_dead_letters(
        session,
        partner_id=partner,
        subscription_id=subscription,
        since=since,
        until=until,
        after=after,
        limit=limit,
        seen_by=service.viewer(manager),
    )
    next_cursor = None
    if len(items) == limit:
        last = items[-1]
        next_cursor = encode_cursor(_CURSOR_KIND, [last.dead_since.isoformat(), str(last.id)])
    return Page[DeadLetterOut](items=items, next_cursor=next_cursor)


@router.post(
    "/v1/dead-letters/redrive",
    response_model=RedriveResult,
    summary="Redrive dead letters",
    description=(
        "Puts dead letters back to `pending`, due now, with the attempt count from 0 (their "
        "attempt history stays). Select them by `ids` (those not dead are skipped) or by "
        "filters: `partner` or `subscription`, `since` (inclusive), `until` (exclusive) on "
        "`dead_since`. Every partner and subscription concerned must be enabled and not "
        "deleted (else 409). `dry_run` reports what would be "
        "redriven and changes nothing. Dead letters to another client's subscription are "
        "never touched (an admin's redrive aside): by id they are skipped, and that "
        "subscription as a filter is 404."
    ),
    responses=problem_responses(Forbidden, NotFound, Conflict, UnprocessableContent),
)
async def redrive_dead_letters(
    body: DeadLetterRedrive,
    principal: PartnerManager,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    now = runtime.clock()

    async def redrive(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        result = await service.redrive(
            session, body, actor=principal.actor, now=now, seen_by=service.viewer(principal)
        )
        return 200, result.model_dump(mode="json")

    outcome = await runtime.idempotent.run(
        client_id=principal.client_id,
        key=idempotency_key,
        operation=service.REDRIVE_OPERATION,
        fingerprint=fingerprint(service.REDRIVE_OPERATION, body.canonical()),
        now=now,
        create=redrive,
    )
    # Committed: the dispatcher may claim them now instead of at its next poll.
    if outcome.body.get("redriven") and not body.dry_run and runtime.dispatcher is not None:
        runtime.dispatcher.wake()
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


def _after(cursor: str) -> tuple[datetime, uuid.UUID]:
    position = decode_cursor(_CURSOR_KIND, cursor)
    try:
        at, last_id = position
        parsed = datetime.fromisoformat(str(at)), uuid.UUID(str(last_id))
    except ValueError:
        parsed = None
    if parsed is None or parsed[0].tzinfo is None:
        raise UnprocessableContent("cursor is not valid for this list")
    return parsed
