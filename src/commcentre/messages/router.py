"""HTTP routes of messages and lookups."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from commcentre.audit.service import append
from commcentre.auth.deps import BEARER_SECURITY, MessageReader, MessageWriter, authorize
from commcentre.auth.scopes import Scope
from commcentre.db import ReadSessionDep, SessionDep
from commcentre.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnprocessableContent,
    UnsupportedMediaType,
    problem_responses,
    validation_problem,
)
from commcentre.idempotency.headers import IdempotencyKeyHeader
from commcentre.justification import JustificationHeader
from commcentre.messages import forwarding, service
from commcentre.messages.forwarding import ForwardRequest
from commcentre.messages.identifiers import LookupRequest, normalize_identifier
from commcentre.messages.ingest import IngestOutcome
from commcentre.messages.kinds import kind_bits
from commcentre.messages.repository import MessageFilter
from commcentre.messages.schemas import OUTBOUND_CONTEXT, Direction, MessageIn, SubjectKind
from commcentre.messages.views import (
    ForwardAccepted,
    LookupResponse,
    MessageAccepted,
    MessageOut,
    MessagePage,
)
from commcentre.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from commcentre.routing.rules import UnroutableMessage
from commcentre.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["messages"])


@router.post(
    "/v1/messages",
    status_code=202,
    response_model=MessageAccepted,
    summary="Submit an outbound message",
    description=(
        "Validates, encrypts and durably stores a message, then answers 202. The answer comes "
        "only after the commit: an accepted message is never lost."
    ),
    responses=problem_responses(
        Forbidden,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        UnprocessableContent,
        ServiceUnavailable,
    ),
    openapi_extra={
        **BEARER_SECURITY,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessageIn"}}},
        },
    },
)
async def submit_message(
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    # The hot path: authorisation inline, no dependency resolution (see `authorize`).
    principal = await authorize(request, Scope.MESSAGES_WRITE)
    runtime: Runtime = request.app.state.runtime
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("send the message as application/json")
    # Raw bytes straight into pydantic: faster than FastAPI's parse-then-validate.
    raw = await request.body()
    try:
        message = MessageIn.model_validate_json(raw, context=OUTBOUND_CONTEXT)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    try:
        decision = (await runtime.routing.snapshot()).route(message)
    except UnroutableMessage as exc:
        raise UnprocessableContent(f"the message routes nowhere: {exc.reason}") from None
    thread = None
    if message.in_reply_to is not None and message.case_ref is None:
        # A reply without a case_ref joins the conversation of the message it answers.
        async with runtime.db.read_sessions() as session:
            thread = await service.thread_of(session, message)
    pending = service.prepare_outbound(
        message,
        principal=principal,
        idempotency_key=idempotency_key,
        vault=runtime.vault,
        destinations=decision.partners,
        now=runtime.clock(),
        thread=thread,
    )
    return _accepted(await runtime.ingest.submit(pending))


@router.get(
    "/v1/messages",
    response_model=MessagePage,
    summary="List messages (metadata only)",
    description=(
        "Newest first unless `order=asc`. Never returns payloads. Messages are listed in the "
        "order they were committed: paging with `order=asc` and `next_cursor` is a feed that "
        "never skips or repeats a message (keep the last cursor to resume; with "
        "`direction=inbound` it is the pull feed of what partners sent). `case_ref` returns "
        "a whole conversation: the messages with that case reference and the replies that "
        "answer them."
    ),
    responses=problem_responses(Forbidden, UnprocessableContent),
)
async def list_messages(
    principal: MessageReader,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    direction: Direction | None = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    subject_type: SubjectKind | None = None,
    case_ref: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    partner: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=63,
            description="Received from this partner, or addressed to it.",
        ),
    ] = None,
    since: Annotated[str | None, Query(description="ISO 8601; created at or after.")] = None,
    until: Annotated[str | None, Query(description="ISO 8601; created before.")] = None,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> MessagePage:
    after: int | None = None
    if cursor is not None:
        position = decode_cursor(f"messages:{order}", cursor)
        # A cursor names a seq: a collection position, never negative (else forged).
        if len(position) != 1 or not isinstance(position[0], int) or position[0] < 0:
            raise UnprocessableContent("cursor is not valid for this list")
        after = position[0]
    filters = MessageFilter(
        direction=direction.value if direction else None,
        status=status,
        subject_kind_bit=kind_bits([subject_type]) if subject_type else None,
        case_ref_digest=runtime.vault.case_ref_digest(case_ref)
        if case_ref and normalize_identifier(case_ref)
        else None,
        since=_timestamp("since", since),
        until=_timestamp("until", until),
        partner=partner,
    )
    rows = await service.list_messages(
        session,
        principal=principal,
        filters=filters,
        after=after,
        descending=order == "desc",
        limit=limit,
    )
    last = encode_cursor(f"messages:{order}", [rows[-1][0]]) if rows else cursor
    return MessagePage(
        items=[summary for _, summary in rows],
        next_cursor=last if len(rows) == limit else None,
        resume_cursor=(last or encode_cursor("messages:asc", [0])) if order == "asc" else None,
    )


@router.get(
    "/v1/messages/{message_id}",
    response_model=MessageOut,
    summary="Read a message, decrypted",
    description=(
        "A consultation under the Law Enforcement Directive: needs `X-Justification` "
        "and is audited before anything is returned."
    ),
    responses=problem_responses(
        Forbidden, NotFound, Conflict, UnprocessableContent, ServiceUnavailable
    ),
)
async def read_message(
    message_id: uuid.UUID,
    principal: MessageReader,
    justification: JustificationHeader,
    read_session: ReadSessionDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> MessageOut:
    message = await service.get_visible(read_session, message_id, principal=principal)
    await read_session.close()
    view = service.unseal(message, vault=runtime.vault)
    await service.record_consultation(
        session, message, principal=principal, justification=justification, now=runtime.clock()
    )
    # The consultation is on record before anything is disclosed.
    await session.commit()
    return view


@router.post(
    "/v1/messages/{message_id}/forward",
    status_code=202,
    response_model=ForwardAccepted,
    summary="Forward a received message to other partners",
    description=(
        "Sends a copy of a message a partner sent us on to other partners, if its handling "
        "codes allow it. H2 (no dissemination without the provider's consent) and H3 (other "
        "restriction) allow no forward except back to the originator: 403, naming the code, "
        "and the refused attempt is audited. H0 and H1 travel with the copy; H1 is named in "
        "its markings. The copy joins the original's thread and names it in `forwarded_from`. "
        "Needs `X-Justification` (recorded with the forward)."
    ),
    responses=problem_responses(
        Forbidden, NotFound, Conflict, UnprocessableContent, ServiceUnavailable
    ),
    openapi_extra=BEARER_SECURITY,
)
async def forward_message(
    message_id: uuid.UUID,
    body: ForwardRequest,
    principal: MessageWriter,
    justification: JustificationHeader,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async with runtime.db.read_sessions() as session:
        original = await service.get_visible(session, message_id, principal=principal)
    if original.direction != "inbound":
        raise Conflict(
            f"message {message_id} was not received from a partner: only received messages "
            "are forwarded; submit a new message instead"
        )
    partners = list(dict.fromkeys(body.partners))
    snapshot = await runtime.routing.snapshot()
    unknown = [p for p in partners if p not in snapshot.partners]
    if unknown:
        raise UnprocessableContent(f"unknown partners: {', '.join(unknown)}")
    disabled = [p for p in partners if not snapshot.partners[p].enabled]
    if disabled:
        raise Conflict(f"partners are disabled: {', '.join(disabled)}")
    now = runtime.clock()
    refusal = forwarding.forwarding_refusal(
        original.handling_codes, originator=original.source_partner_id, destinations=partners
    )
    if refusal is not None:
        async with runtime.db.write_sessions() as session, session.begin():
            await append(
                session,
                [
                    forwarding.refusal_record(
                        refusal,
                        message_id=message_id,
                        principal=principal,
                        justification=justification,
                        now=now,
                    )
                ],
                now=now,
            )
        raise Forbidden(refusal.detail)
    content = service.unseal_content(original, vault=runtime.vault)
    pending = forwarding.prepare_forward(
        content,
        original_id=original.id,
        thread=original.case_digest,
        partners=partners,
        principal=principal,
        justification=justification,
        idempotency_key=idempotency_key,
        vault=runtime.vault,
        now=now,
    )
    return _accepted(await runtime.ingest.submit(pending))


@router.post(
    "/v1/lookups",
    response_model=LookupResponse,
    summary="Hit check over past traffic",
    description=(
        "Has this document, vehicle, person or national id been in traffic you may see? "
        "Answered from the blind index (HMAC of normalised identifiers): no payload is "
        "decrypted. A consultation under the Law Enforcement Directive: needs "
        "`X-Justification`, and each query is audited with the justification, the keyed "
        "digests of its normalised terms (never the terms) and the ids it returned."
    ),
    responses=problem_responses(Forbidden, UnprocessableContent, ServiceUnavailable),
)
async def lookup(
    body: LookupRequest,
    principal: MessageReader,
    read_session: ReadSessionDep,
    session: SessionDep,
    justification: JustificationHeader,
    runtime: RuntimeDep,
) -> LookupResponse:
    result = await service.lookup(
        read_session,
        session,
        body,
        principal=principal,
        vault=runtime.vault,
        justification=justification,
        now=runtime.clock(),
    )
    await session.commit()
    return result


def _accepted(outcome: IngestOutcome) -> Response:
    """202 with the stored answer (or the replayed one) and the message's Location."""
    headers = {"Location": f"/v1/messages/{outcome.body['id']}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        orjson.dumps(outcome.body),
        status_code=outcome.status_code,
        headers=headers,
        media_type="application/json",
    )


def _timestamp(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UnprocessableContent(f"{name} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
