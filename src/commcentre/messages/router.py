"""HTTP routes of messages and lookups."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import ValidationError

from commcentre.auth.deps import BEARER_SECURITY, MessageReader, authorize
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
from commcentre.messages import service
from commcentre.messages.identifiers import LookupRequest, normalize_identifier
from commcentre.messages.repository import MessageFilter
from commcentre.messages.schemas import Direction, MessageIn, SubjectKind
from commcentre.messages.views import LookupResponse, MessageAccepted, MessageOut, MessageSummary
from commcentre.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from commcentre.routing.rules import UnroutableMessage
from commcentre.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["messages"])

JustificationHeader = Annotated[
    str,
    Header(
        alias="X-Justification",
        min_length=1,
        max_length=500,
        description="Why you consult this payload (audited under the Law Enforcement Directive).",
    ),
]
OptionalJustification = Annotated[
    str | None,
    Header(
        alias="X-Justification",
        min_length=1,
        max_length=500,
        description="Recorded in the audit log.",
    ),
]


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
        message = MessageIn.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    try:
        decision = (await runtime.routing.snapshot()).route(message)
    except UnroutableMessage as exc:
        raise UnprocessableContent(f"the message routes nowhere: {exc.reason}") from None
    pending = service.prepare_outbound(
        message,
        principal=principal,
        idempotency_key=idempotency_key,
        vault=runtime.vault,
        destinations=decision.partners,
        now=runtime.clock(),
    )
    outcome = await runtime.ingest.submit(pending)
    headers = {"Location": f"/v1/messages/{outcome.body['id']}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        orjson.dumps(outcome.body),
        status_code=outcome.status_code,
        headers=headers,
        media_type="application/json",
    )


@router.get(
    "/v1/messages",
    response_model=Page[MessageSummary],
    summary="List messages (metadata only)",
    description="Newest first unless `order=asc`. Never returns payloads.",
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
    since: Annotated[str | None, Query(description="ISO 8601; created at or after.")] = None,
    until: Annotated[str | None, Query(description="ISO 8601; created before.")] = None,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[MessageSummary]:
    after: uuid.UUID | None = None
    if cursor is not None:
        position = decode_cursor(f"messages:{order}", cursor)
        try:
            after = uuid.UUID(str(position[0]))
        except (ValueError, IndexError):
            raise UnprocessableContent("cursor is not valid for this list") from None
    filters = MessageFilter(
        direction=direction.value if direction else None,
        status=status,
        subject_kind_bit=service.kind_bits([subject_type]) if subject_type else None,
        case_ref_digest=runtime.vault.case_ref_digest(case_ref)
        if case_ref and normalize_identifier(case_ref)
        else None,
        since=_timestamp("since", since),
        until=_timestamp("until", until),
    )
    items = await service.list_messages(
        session,
        principal=principal,
        filters=filters,
        after=after,
        descending=order == "desc",
        limit=limit,
    )
    next_cursor = (
        encode_cursor(f"messages:{order}", [str(items[-1].id)]) if len(items) == limit else None
    )
    return Page[MessageSummary](items=items, next_cursor=next_cursor)


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
    "/v1/lookups",
    response_model=LookupResponse,
    summary="Hit check over past traffic",
    description=(
        "Has this document, vehicle or person been in traffic you may see? Answered from the "
        "blind index (HMAC of normalised identifiers): no payload is decrypted. Audited."
    ),
    responses=problem_responses(Forbidden, UnprocessableContent, ServiceUnavailable),
)
async def lookup(
    body: LookupRequest,
    principal: MessageReader,
    read_session: ReadSessionDep,
    session: SessionDep,
    runtime: RuntimeDep,
    justification: OptionalJustification = None,
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
