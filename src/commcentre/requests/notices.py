"""Delay notices: the requested side tells the requester that the reply will be late.

Dir. (EU) 2023/977 Art. 5(2): where the requested Single Point of Contact cannot
keep the time limit, it informs the requesting one immediately of the expected
delay, with its length and reasons, and keeps it updated. A notice is an outbound
message of type `notice` on the request's own channel (routed like any other);
the request records when it was sent, the expected reply date and the reason
(sealed), in the transaction that stores the notice.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.service import AuditAction, append
from commcentre.clock import iso_z
from commcentre.crypto import Envelope
from commcentre.db import WriteSession
from commcentre.errors import Conflict, UnprocessableContent, validation_problem
from commcentre.messages.schemas import MessageIn, MessageType, Priority
from commcentre.requests import repository, sealing
from commcentre.requests.channels import channel_of_request
from commcentre.requests.schemas import DelayNoticeIn, LinkRole
from commcentre.requests.states import RequestStatus, is_open
from commcentre.requests.transitions import (
    audit_record,
    concurrent_change,
    get_row,
    history_row,
)

DELAY_NOTICE_OPERATION = "POST /v1/requests/{id}/delay-notice"


def _not_open(request_id: uuid.UUID, status: str) -> Conflict:
    return Conflict(
        f"request {request_id} is {status}: a delay notice is only for an open request "
        "(received, assigned, awaiting_information)",
        extra={"current_status": status},
    )


async def delay_notice_message(
    session: AsyncSession,
    request_id: uuid.UUID,
    body: DelayNoticeIn,
    *,
    now: datetime,
    replay: bool = False,
) -> MessageIn:
    """The outbound notice, after checking that the request is open and the date ahead."""
    row = await get_row(session, request_id)
    if not replay and not is_open(RequestStatus(row.status)):
        raise _not_open(request_id, row.status)
    if not replay and body.expected_at <= now:
        raise UnprocessableContent("expected_at must be in the future")
    fields: dict[str, object] = await addressed_to_requester(session, row, to="notify")
    fields |= {
        "type": MessageType.NOTICE.value,
        "priority": (Priority.URGENT if row.urgency == "urgent" else Priority.NORMAL).value,
        "legal_basis": row.legal_basis,
        "body": (
            f"Delay notice on request {row.reference}: the reply cannot be given within the "
            f"time limit (due {iso_z(row.due_at)}). Expected reply by {iso_z(body.expected_at)}. "
            f"Reason: {body.reason}"
        ),
    }
    if body.language is not None:
        fields["language"] = body.language
    try:
        return MessageIn.model_validate(fields)
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def addressed_to_requester(session: AsyncSession, row: Any, *, to: str) -> dict[str, object]:
    """Where a reply or notice on the request goes: back on the request's channel to the
    requesting state, in the request's thread, after the message that asked.
    """
    if row.requesting_state is None:
        raise Conflict(f"request {row.id} has no requesting_state to {to}")
    fields: dict[str, object] = {
        # Back the way the request came (Dir. 2023/977 Art. 12: SIENA by default); the
        # routing rules still apply and may add destinations.
        "channel": channel_of_request(row.channel, row.legal_basis).value,
        "recipients": [row.requesting_state],
        "case_ref": row.reference,
    }
    requested = [
        link.message_id
        for link in await repository.links_of(session, row.id)
        if link.role == LinkRole.REQUEST.value
    ]
    if requested:
        fields["in_reply_to"] = str(requested[-1])
    return fields


def delay_notice_hook(
    request_id: uuid.UUID,
    message_id: uuid.UUID,
    body: DelayNoticeIn,
    *,
    envelope: Envelope,
    actor: str,
) -> Callable[[WriteSession, datetime], Awaitable[None]]:
    """What the notice's ingest transaction also does: record the delay on the request."""

    async def record(session: WriteSession, now: datetime) -> None:
        row = await get_row(session, request_id)
        if not is_open(RequestStatus(row.status)):
            raise _not_open(request_id, row.status)
        text = sealing.open_request_text(envelope, row)
        text = sealing.RequestText(
            subject=text.subject,
            delay_reason=body.reason,
            rejection_reason=text.rejection_reason,
        )
        values = {
            "delay_notified_at": now,
            "delay_expected_at": body.expected_at.astimezone(UTC),
            "updated_at": now,
            **sealing.columns(sealing.seal_request_text(envelope, row.id, text)),
        }
        if not await repository.update_if_version(
            session, row.id, version=row.version, values=values
        ):
            raise concurrent_change(row.id)
        await repository.insert_links(
            session,
            [
                {
                    "request_id": request_id,
                    "message_id": message_id,
                    "role": LinkRole.RELATED.value,
                    "linked_at": now,
                }
            ],
        )
        await repository.insert_history(
            session,
            [
                history_row(
                    row.id,
                    event="delay_notified",
                    actor=actor,
                    now=now,
                    from_status=row.status,
                    to_status=row.status,
                    envelope=envelope,
                    note=body.note,
                    reason=body.reason,
                )
            ],
        )
        await append(
            session,
            [
                audit_record(
                    "request.delay_notified",
                    actor=actor,
                    request_id=row.id,
                    now=now,
                    action=AuditAction.ALTERATION,
                    details={
                        "due_at": iso_z(row.due_at),
                        "expected_at": iso_z(body.expected_at),
                        "past_due": now > row.due_at,
                        "reason_recorded": True,
                        "note_recorded": body.note is not None,
                        "message_id": str(message_id),
                    },
                )
            ],
            now=now,
        )

    return record
