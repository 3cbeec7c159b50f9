"""HTTP routes of supplementary-information requests (scope requests:manage)."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.auth.deps import Principal, require
from commcentre.auth.scopes import Scope
from commcentre.clock import IsoDatetime
from commcentre.db import ReadSessionDep, SessionDep, WriteSession
from commcentre.delivery import service as deliveries
from commcentre.delivery.schemas import RequestDeliveries
from commcentre.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    UnprocessableContent,
    problem_responses,
)
from commcentre.idempotency.headers import IdempotencyKeyHeader, fingerprint
from commcentre.justification import JustificationHeader
from commcentre.messages.schemas import MessageIn, normalize_country
from commcentre.messages.service import prepare_outbound
from commcentre.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from commcentre.requests import notices, service
from commcentre.requests.deadlines import Form
from commcentre.requests.repository import ListPosition, RequestFilter
from commcentre.requests.schemas import (
    DelayNoticeIn,
    EawUpdate,
    NoticeAccepted,
    ReplyAccepted,
    ReplyIn,
    RequestCreate,
    RequestOut,
    RequestPage,
    RequestSummary,
    TransitionIn,
)
from commcentre.requests.states import RequestStatus
from commcentre.routing.rules import UnroutableMessage
from commcentre.runtime import Runtime, RuntimeDep

router = APIRouter(prefix="/v1/requests", tags=["requests"])

RequestManager = Annotated[Principal, Depends(require(Scope.REQUESTS_MANAGE))]
_CURSOR_KIND = "requests"


@router.post(
    "",
    status_code=201,
    response_model=RequestSummary,
    summary="Record a supplementary-information request",
    description=(
        "Stores the request in state `received` with `due_at` computed from its legal basis, "
        "urgency and information access (DOMAIN.md time-limit table). `subject` and `note` "
        "are stored encrypted and are not echoed back: read them with GET and a justification."
    ),
    responses=problem_responses(Forbidden, Conflict, UnprocessableContent),
)
async def create_request(
    body: RequestCreate,
    principal: RequestManager,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    now = runtime.clock()

    async def create(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        created = await service.create_request(
            session, body, envelope=runtime.vault.envelope, actor=principal.actor, now=now
        )
        return 201, created.model_dump(mode="json")

    outcome = await runtime.idempotent.run(
        client_id=principal.client_id,
        key=idempotency_key,
        operation=service.CREATE_OPERATION,
        fingerprint=fingerprint(service.CREATE_OPERATION, body.canonical()),
        now=now,
        create=create,
    )
    headers = {"Location": f"/v1/requests/{outcome.body['id']}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@router.get(
    "",
    response_model=RequestPage,
    summary="List requests, most urgent first",
    description=(
        "Requests the SIRENE Bureau must act on immediately (`immediate`, Reg. 2018/1862 "
        "Art. 8(3)) first, then by `due_at`, then id. Metadata only (no free text). "
        "`overdue` is derived: an open request (received, assigned, awaiting_information) "
        "past its `due_at`."
    ),
    responses=problem_responses(Forbidden, UnprocessableContent),
)
async def list_requests(
    _manager: RequestManager,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    status: RequestStatus | None = None,
    overdue: bool | None = None,
    form: Form | None = None,
    country: Annotated[
        str | None, Query(min_length=1, max_length=3, description="The requesting state.")
    ] = None,
    due_before: Annotated[
        IsoDatetime | None, Query(description="due_at < due_before; ISO 8601 with a time zone.")
    ] = None,
    immediate: Annotated[
        bool | None, Query(description="Only requests to act on immediately (or only others).")
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> RequestPage:
    filters = RequestFilter(
        statuses=[status.value] if status else None,
        overdue=overdue,
        form=form.value if form else None,
        requesting_state=_country(country) if country is not None else None,
        due_before=due_before,
        immediate=immediate,
    )
    after = _after(cursor) if cursor is not None else None
    items = await service.list_requests(
        session, filters=filters, after=after, limit=limit, now=runtime.clock()
    )
    next_cursor = None
    if len(items) == limit:
        last = items[-1]
        next_cursor = encode_cursor(
            _CURSOR_KIND, [int(last.immediate), last.due_at.isoformat(), str(last.id)]
        )
    return RequestPage(items=items, next_cursor=next_cursor)


@router.get(
    "/{request_id}",
    response_model=RequestOut,
    summary="Read a request with its history, decrypted",
    description=(
        "A consultation under the Law Enforcement Directive: needs `X-Justification` and is "
        "audited before anything is returned."
    ),
    responses=problem_responses(Forbidden, NotFound, Conflict, UnprocessableContent),
)
async def read_request(
    request_id: uuid.UUID,
    principal: RequestManager,
    justification: JustificationHeader,
    session: SessionDep,
    runtime: RuntimeDep,
) -> RequestOut:
    view = await service.get_request(
        session,
        request_id,
        envelope=runtime.vault.envelope,
        actor=principal.actor,
        justification=justification,
        now=runtime.clock(),
    )
    # The consultation is on record before anything is disclosed.
    await session.commit()
    return view


@router.get(
    "/{request_id}/deliveries",
    response_model=RequestDeliveries,
    summary="Event deliveries of a request",
    description=(
        "The events about this request sent to internal subscribers (`request.overdue`), "
        "one per subscriber: status, attempts and every attempt's outcome. Metadata only, "
        "so no `X-Justification` is needed. Only the deliveries to the caller's own "
        "subscriptions are shown (an admin sees all)."
    ),
    responses=problem_responses(Forbidden, NotFound, UnprocessableContent),
)
async def read_request_deliveries(
    request_id: uuid.UUID,
    manager: RequestManager,
    session: ReadSessionDep,
) -> RequestDeliveries:
    await service.require_request(session, request_id)
    return await deliveries.deliveries_of_request(session, request_id, principal=manager)


@router.post(
    "/{request_id}/transitions",
    response_model=RequestSummary,
    summary="Move a request through its states",
    description=(
        "received -> assigned -> awaiting_information -> answered -> closed; answered is "
        "allowed from any open state; rejected from any open state with a `reason`. An "
        "illegal move is 409 with `allowed_transitions`; answering after `due_at` needs a "
        "`delay_reason` (422 without). A concurrent change of the same request is 409."
    ),
    responses=problem_responses(Forbidden, NotFound, Conflict, UnprocessableContent),
)
async def transition_request(
    request_id: uuid.UUID,
    body: TransitionIn,
    principal: RequestManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> RequestSummary:
    summary = await service.transition(
        session,
        request_id,
        body,
        envelope=runtime.vault.envelope,
        actor=principal.actor,
        now=runtime.clock(),
    )
    await session.commit()
    if body.to is RequestStatus.ANSWERED:
        _answered(runtime, summary)
    return summary


def _answered(runtime: Runtime, summary: RequestSummary) -> None:
    if summary.answered_at is not None:
        seconds = (summary.answered_at - summary.received_at).total_seconds()
        runtime.metrics.request_answer_seconds.observe(max(seconds, 0.0))


@router.post(
    "/{request_id}/eaw",
    response_model=RequestSummary,
    summary="Record an arrest-warrant step",
    description=(
        "One of: `{arrested_at, consent[, consented_at]}` (decision due 10 days after the "
        "consent, Art. 17(2), else 60 days after the arrest, 17(3)), `{consented_at}` (a "
        "consent given after the arrest), `{extension: true}` (+30 days, 17(4)), "
        "`{decided_at}` (surrender due 10 days after the decision, 23(2)), "
        "`{surrender_new_date, postponement}` (a new date agreed, beyond_control 23(3) or "
        "humanitarian 23(4): surrender due 10 days after it), `{surrendered_at}`. "
        "FD 2002/584; for a NAW_2005 request the Nordic Arrest Warrant limits apply "
        "(decision 3 days after consent, else 30 days after arrest; surrender 5 days). "
        "Decisions and surrenders past their deadline are escalated like overdue requests "
        "(events request.eaw_decision_overdue and request.eaw_surrender_overdue)."
    ),
    responses=problem_responses(Forbidden, NotFound, Conflict, UnprocessableContent),
)
async def record_eaw(
    request_id: uuid.UUID,
    body: EawUpdate,
    principal: RequestManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> RequestSummary:
    summary = await service.record_eaw(
        session,
        request_id,
        body,
        envelope=runtime.vault.envelope,
        actor=principal.actor,
        now=runtime.clock(),
    )
    await session.commit()
    return summary


@router.post(
    "/{request_id}/reply",
    status_code=202,
    response_model=ReplyAccepted,
    summary="Answer a request with an outbound message",
    description=(
        "Builds a reply message (type reply, on the request's `channel`: the one it came in "
        "on, else SIENA (`europol`) for DIR_2023_977 and `sirene` otherwise; recipients the "
        "requesting state; case_ref the request's reference), routes and submits it like "
        "POST /v1/messages (routing rules may add destinations), links it to the request and "
        "moves the request to answered. A late answer needs a `delay_reason` unless a delay "
        "notice was sent; nothing is sent without one."
    ),
    responses=problem_responses(
        Forbidden, NotFound, Conflict, UnprocessableContent, ServiceUnavailable
    ),
)
async def reply_to_request(
    request_id: uuid.UUID,
    body: ReplyIn,
    principal: RequestManager,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    now = runtime.clock()
    async with runtime.db.read_sessions() as session:
        replay = await service.reply_was_sent(
            session,
            client_id=principal.client_id,
            idempotency_key=idempotency_key,
            operation=service.REPLY_OPERATION,
            now=now,
        )
        message = await service.reply_message(session, request_id, body, now=now, replay=replay)
    return await _send_for_request(
        runtime,
        principal,
        request_id,
        message,
        what="reply",
        operation=service.REPLY_OPERATION,
        body_bytes=body.model_dump_json().encode(),
        hook=lambda message_id: service.answering_hook(
            request_id, message_id, body, envelope=runtime.vault.envelope, actor=principal.actor
        ),
        idempotency_key=idempotency_key,
        answers=True,
        now=now,
    )


@router.post(
    "/{request_id}/delay-notice",
    status_code=202,
    response_model=NoticeAccepted,
    summary="Tell the requester that the reply will be late",
    description=(
        "Dir. (EU) 2023/977 Art. 5(2): sends a message of type `notice` (on the request's "
        "channel, to the requesting state, routed like POST /v1/messages) giving the `reason` "
        "and the `expected_at` reply date, and records both on the request (`delay_notice`, "
        "`delay_reason`, a `delay_notified` history entry, audited). Only for an open request "
        "(409 otherwise); may be sent again with a new date. A late answer after a notice "
        "needs no further `delay_reason`."
    ),
    responses=problem_responses(
        Forbidden, NotFound, Conflict, UnprocessableContent, ServiceUnavailable
    ),
)
async def send_delay_notice(
    request_id: uuid.UUID,
    body: DelayNoticeIn,
    principal: RequestManager,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    now = runtime.clock()
    async with runtime.db.read_sessions() as session:
        replay = await service.reply_was_sent(
            session,
            client_id=principal.client_id,
            idempotency_key=idempotency_key,
            operation=notices.DELAY_NOTICE_OPERATION,
            now=now,
        )
        message = await notices.delay_notice_message(
            session, request_id, body, now=now, replay=replay
        )
    return await _send_for_request(
        runtime,
        principal,
        request_id,
        message,
        what="delay notice",
        operation=notices.DELAY_NOTICE_OPERATION,
        body_bytes=body.model_dump_json().encode(),
        hook=lambda message_id: notices.delay_notice_hook(
            request_id, message_id, body, envelope=runtime.vault.envelope, actor=principal.actor
        ),
        idempotency_key=idempotency_key,
        answers=False,
        now=now,
    )


async def _send_for_request(
    runtime: Runtime,
    principal: Principal,
    request_id: uuid.UUID,
    message: MessageIn,
    *,
    what: str,
    operation: str,
    body_bytes: bytes,
    hook: Callable[[uuid.UUID], Callable[[WriteSession, datetime], Awaitable[None]]],
    idempotency_key: str | None,
    answers: bool,
    now: datetime,
) -> JSONResponse:
    """Route and submit a message about a request; `hook` records it on the request in the
    transaction that stores the message, so both commit together or not at all."""
    try:
        decision = (await runtime.routing.snapshot()).route(message)
    except UnroutableMessage as exc:
        raise UnprocessableContent(f"the {what} routes nowhere: {exc.reason}") from None
    pending = prepare_outbound(
        message,
        principal=principal,
        idempotency_key=idempotency_key,
        vault=runtime.vault,
        destinations=decision.partners,
        now=now,
    )
    # Its own operation: the same key on POST /v1/messages is another request.
    pending.operation = operation
    pending.fingerprint = fingerprint(operation, request_id.bytes + body_bytes)
    pending.after_insert = hook(pending.message_row["id"])
    outcome = await runtime.ingest.submit(pending)
    message_id = uuid.UUID(str(outcome.body["id"]))
    async with runtime.db.read_sessions() as session:
        summary = await service.request_summary(session, request_id, now=runtime.clock())
    if answers and not outcome.replayed:
        _answered(runtime, summary)
    content = {"message": outcome.body, "request": summary.model_dump(mode="json")}
    headers = {"Location": f"/v1/messages/{message_id}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(content, status_code=202, headers=headers)


def _country(value: str) -> str:
    try:
        return normalize_country(value)
    except PydanticCustomError as exc:
        raise UnprocessableContent(f"country: {exc.message()}") from None


def _after(cursor: str) -> ListPosition:
    position = decode_cursor(_CURSOR_KIND, cursor)
    try:
        if len(position) != 3 or position[0] not in (0, 1):
            raise ValueError
        if not all(isinstance(p, str) for p in position[1:]):
            raise ValueError
        due = datetime.fromisoformat(str(position[1]))
        if due.tzinfo is None:
            raise ValueError
        return ListPosition(bool(position[0]), due, uuid.UUID(str(position[2])))
    except ValueError:
        raise UnprocessableContent("cursor is not valid for this list") from None
