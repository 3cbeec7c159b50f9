"""Request rules: creation with its time limit, transitions, EAW deadlines, replies.

Services flush and never commit. The automation hooks (`open_from_inbound`,
`escalate_overdue`) live in `automation` and are re-exported here.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.clock import iso_z
from commcentre.crypto import Envelope
from commcentre.db import WriteSession
from commcentre.errors import UnprocessableContent, validation_problem
from commcentre.idempotency import repository as idempotency_repository
from commcentre.ids import new_id
from commcentre.messages.identifiers import normalize_identifier
from commcentre.messages.schemas import MessageIn, MessageType
from commcentre.requests import repository, sealing
from commcentre.requests.automation import escalate_overdue, open_from_inbound
from commcentre.requests.channels import default_channel
from commcentre.requests.deadlines import (
    article_of,
    immediate_reasons,
    is_sirene_basis,
    time_limit,
)
from commcentre.requests.eaw import check_past, record_eaw
from commcentre.requests.notices import addressed_to_requester
from commcentre.requests.repository import ListPosition, RequestFilter
from commcentre.requests.schemas import (
    LinkRole,
    ReplyIn,
    RequestCreate,
    RequestOut,
    RequestSummary,
    TransitionIn,
)
from commcentre.requests.states import OPEN_STATUSES, RequestStatus, is_allowed
from commcentre.requests.transitions import (
    SUBJECT_TYPE,
    Change,
    apply_change,
    audit_record,
    get_row,
    history_row,
    illegal_transition,
)
from commcentre.requests.views import full_view, summary_of

__all__ = [
    "CREATE_OPERATION",
    "REPLY_OPERATION",
    "answering_hook",
    "create_request",
    "escalate_overdue",
    "get_request",
    "list_requests",
    "open_from_inbound",
    "record_eaw",
    "reply_message",
    "reply_was_sent",
    "request_summary",
    "require_request",
    "transition",
]

CREATE_OPERATION = "POST /v1/requests"
REPLY_OPERATION = "POST /v1/requests/{id}/reply"


async def create_request(
    session: AsyncSession, body: RequestCreate, *, envelope: Envelope, actor: str, now: datetime
) -> RequestSummary:
    """Store a new request in `received` with its legal deadline."""
    received_at = check_past("received_at", body.received_at or now, now)
    limit = time_limit(
        legal_basis=body.legal_basis,
        form=body.form,
        urgency=body.urgency,
        info_access=body.info_access,
        received_at=received_at,
    )
    immediate = bool(immediate_reasons(body.legal_basis, body.alert_flags))
    links = list({link.message_id: link for link in body.linked_messages}.values())
    found = await repository.existing_messages(
        session, [link.message_id for link in links], now=now
    )
    missing = [str(link.message_id) for link in links if link.message_id not in found]
    if missing:
        raise UnprocessableContent(
            "linked messages do not exist or their retention period has ended: "
            + ", ".join(missing)
        )
    request_id = new_id()
    sealed = sealing.seal_request_text(
        envelope, request_id, sealing.RequestText(subject=body.subject)
    )
    await repository.insert_request(
        session,
        {
            "id": request_id,
            "reference": body.reference,
            "reference_key": normalize_identifier(body.reference)[:128],
            "form": body.form.value,
            "alert_article": body.alert_article or article_of(body.legal_basis),
            "alert_category": body.alert_category.value if body.alert_category else None,
            "alert_flags": [flag.value for flag in body.alert_flags],
            "sis_alert_ref": body.sis_alert_ref,
            "eaw_ref": body.eaw_ref,
            "issuing_state": body.issuing_state,
            "requesting_state": body.requesting_state,
            "urgency": body.urgency.value,
            "legal_basis": body.legal_basis,
            "info_access": body.info_access.value if body.info_access else None,
            "channel": (body.channel or default_channel(body.legal_basis)).value,
            "time_limit_rule": limit.rule.value,
            "immediate": immediate,
            "received_at": received_at,
            "due_at": limit.due_at,
            "status": RequestStatus.RECEIVED.value,
            "assignee": body.assignee,
            "answered_late": False,
            "decision_extended": False,
            "version": 1,
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
            **sealing.columns(sealed),
        },
    )
    await repository.insert_history(
        session,
        [
            history_row(
                request_id,
                event="created",
                actor=actor,
                now=now,
                from_status=None,
                to_status=RequestStatus.RECEIVED.value,
                envelope=envelope,
                note=body.note,
            )
        ],
    )
    await repository.insert_links(
        session,
        [
            {
                "request_id": request_id,
                "message_id": link.message_id,
                "role": link.role.value,
                "linked_at": now,
            }
            for link in links
        ],
    )
    details: dict[str, object] = {
        "form": body.form.value,
        "requesting_state": body.requesting_state,
        "legal_basis": body.legal_basis,
        "time_limit_rule": limit.rule.value,
        "immediate": immediate,
        "linked_messages": [str(link.message_id) for link in links],
        "subject_recorded": body.subject is not None,
        "note_recorded": body.note is not None,
    }
    await append(
        session,
        [
            audit_record(
                "request.created",
                actor=actor,
                request_id=request_id,
                now=now,
                action=AuditAction.COLLECTION,
                details=details,
            )
        ],
        now=now,
    )
    return summary_of(await get_row(session, request_id), now=now)


async def transition(
    session: AsyncSession,
    request_id: uuid.UUID,
    body: TransitionIn,
    *,
    envelope: Envelope,
    actor: str,
    now: datetime,
) -> RequestSummary:
    row = await get_row(session, request_id)
    change = Change(
        target=body.to,
        note=body.note,
        reason=body.reason,
        delay_reason=body.delay_reason,
        assignee=body.assignee,
    )
    await apply_change(session, row, change, envelope=envelope, actor=actor, now=now)
    return summary_of(await get_row(session, request_id), now=now)


async def require_request(session: AsyncSession, request_id: uuid.UUID) -> None:
    """404 unless the request exists."""
    await get_row(session, request_id)


async def get_request(
    session: AsyncSession,
    request_id: uuid.UUID,
    *,
    envelope: Envelope,
    actor: str,
    justification: str,
    now: datetime,
) -> RequestOut:
    """The full request, decrypted; the consultation is audited in `session` first."""
    row = await get_row(session, request_id)
    history = await repository.history_of(session, request_id)
    links = await repository.links_of(session, request_id)
    view = full_view(row, history, links, envelope=envelope, now=now)
    await append(
        session,
        [
            AuditRecord(
                action=AuditAction.CONSULTATION,
                event="request.read",
                actor=actor,
                subject_type=SUBJECT_TYPE,
                subject_id=str(request_id),
                justification=justification,
                occurred_at=now,
            )
        ],
        now=now,
    )
    return view


async def list_requests(
    session: AsyncSession,
    *,
    filters: RequestFilter,
    after: ListPosition | None,
    limit: int,
    now: datetime,
) -> list[RequestSummary]:
    rows = await repository.list_requests(
        session,
        filters,
        open_statuses=[status.value for status in OPEN_STATUSES],
        now=now,
        after=after,
        limit=limit,
    )
    return [summary_of(row, now=now) for row in rows]


async def reply_was_sent(
    session: AsyncSession,
    *,
    client_id: uuid.UUID,
    idempotency_key: str | None,
    now: datetime,
    operation: str = REPLY_OPERATION,
) -> bool:
    """Whether a message of `operation` (a reply, a notice) under this Idempotency-Key was
    stored: a retry is replayed unchecked."""
    if idempotency_key is None:
        return False
    found = await idempotency_repository.find_many(session, [(client_id, idempotency_key)], now=now)
    record = found.get((client_id, idempotency_key))
    return record is not None and record.operation == operation


async def reply_message(
    session: AsyncSession,
    request_id: uuid.UUID,
    body: ReplyIn,
    *,
    now: datetime,
    replay: bool = False,
) -> MessageIn:
    """The outbound reply a request gets, after checking that it may be answered now.

    The answer is checked before anything is sent: a late reply without a
    delay_reason is refused (422) and an answered or final request is 409.
    A `replay` (the retry of a stored reply) skips the checks.
    """
    row = await get_row(session, request_id)
    current = RequestStatus(row.status)
    if not replay and not is_allowed(current, RequestStatus.ANSWERED):
        raise illegal_transition(current, RequestStatus.ANSWERED)
    explained = body.delay_reason is not None or row.delay_notified_at is not None
    if not replay and now > row.due_at and not explained:
        raise UnprocessableContent(
            "the request is answered after its due_at: a delay_reason is required "
            "(Dir. (EU) 2023/977)",
            extra={"due_at": iso_z(row.due_at)},
        )
    addressing = await addressed_to_requester(session, row, to="reply to")
    fields = body.model_dump(exclude_none=True, exclude={"delay_reason", "note"})
    fields.update(
        addressing,
        type=MessageType.REPLY.value,
        legal_basis=body.legal_basis or row.legal_basis,
    )
    if (block := sirene_block_of(row)) is not None:
        fields["sirene"] = block
    try:
        return MessageIn.model_validate(fields)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def sirene_block_of(row: Any) -> dict[str, Any] | None:
    """The SIRENE block a message about this request carries: its form, alert and EAW.

    A SIRENE exchange stays about one alert: the reply to a J form on an Art. 32 alert
    is a J form on that Art. 32 alert, with its SIS alert id. None for other requests.
    """
    if not is_sirene_basis(row.legal_basis):
        return None
    block = {
        "form": row.form,
        "alert_article": row.alert_article,
        "alert_category": row.alert_category,
        "sis_alert_ref": row.sis_alert_ref,
        "eaw_ref": row.eaw_ref,
    }
    return {name: value for name, value in block.items() if value is not None}


def answering_hook(
    request_id: uuid.UUID,
    message_id: uuid.UUID,
    body: ReplyIn,
    *,
    envelope: Envelope,
    actor: str,
) -> Callable[[WriteSession, datetime], Awaitable[None]]:
    """What the reply's ingest transaction also does: link it and answer the request.

    Runs in the transaction that stores the reply, so the reply and the request's
    move to answered commit together or not at all. A request that cannot be
    answered any more (answered meanwhile by a concurrent reply, rejected,
    closed) refuses the reply with 409, and nothing is sent.
    """

    async def answer(session: WriteSession, now: datetime) -> None:
        row = await get_row(session, request_id)
        current = RequestStatus(row.status)
        if not is_allowed(current, RequestStatus.ANSWERED):
            raise illegal_transition(current, RequestStatus.ANSWERED)
        await repository.insert_links(
            session,
            [
                {
                    "request_id": request_id,
                    "message_id": message_id,
                    "role": LinkRole.REPLY.value,
                    "linked_at": now,
                }
            ],
        )
        change = Change(
            target=RequestStatus.ANSWERED,
            event="replied",
            note=body.note,
            delay_reason=body.delay_reason,
            # Checked before the reply was prepared (a late answer needs its reason).
            require_delay_reason=False,
            message_id=message_id,
        )
        await apply_change(session, row, change, envelope=envelope, actor=actor, now=now)

    return answer


async def request_summary(
    session: AsyncSession, request_id: uuid.UUID, *, now: datetime
) -> RequestSummary:
    """The request as it stands (metadata only: no decryption, no audit)."""
    return summary_of(await get_row(session, request_id), now=now)
