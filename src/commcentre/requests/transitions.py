"""One step of a request: the transition table applied to a row, with history and audit.

Each step is one conditional UPDATE on the row's version (optimistic
concurrency), one history entry and one audit entry; audit details hold
statuses, flags and ids, never free text.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.clock import iso_z
from commcentre.crypto import Envelope
from commcentre.db import WriteSession
from commcentre.errors import Conflict, NotFound, UnprocessableContent
from commcentre.ids import new_id
from commcentre.requests import repository, sealing
from commcentre.requests.states import RequestStatus, allowed_from, is_allowed

SUBJECT_TYPE = "request"


def illegal_transition(current: RequestStatus, target: RequestStatus) -> Conflict:
    allowed = [status.value for status in allowed_from(current)]
    return Conflict(
        f"a request in state {current.value} cannot move to {target.value}; allowed: "
        + (", ".join(allowed) or "none (final state)"),
        extra={"current_status": current.value, "allowed_transitions": allowed},
    )


def concurrent_change(request_id: uuid.UUID) -> Conflict:
    return Conflict(f"request {request_id} was changed concurrently; read it again and retry")


def audit_record(
    event: str,
    *,
    actor: str,
    request_id: uuid.UUID,
    now: datetime,
    action: AuditAction,
    details: dict[str, object],
) -> AuditRecord:
    return AuditRecord(
        action=action,
        event=event,
        actor=actor,
        subject_type=SUBJECT_TYPE,
        subject_id=str(request_id),
        details=details,
        occurred_at=now,
    )


async def get_row(session: WriteSession, request_id: uuid.UUID) -> Any:
    row = await repository.get(session, request_id)
    if row is None:
        raise NotFound(f"request {request_id} does not exist")
    return row


def history_row(
    request_id: uuid.UUID,
    *,
    event: str,
    actor: str,
    now: datetime,
    from_status: str | None,
    to_status: str,
    envelope: Envelope | None,
    note: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A history row; its note and reason sealed (`envelope` None only when it has neither)."""
    entry_id = new_id()
    return {
        "id": entry_id,
        "request_id": request_id,
        "event": event,
        "actor": actor,
        "occurred_at": now,
        "from_status": from_status,
        "to_status": to_status,
        **sealing.seal_history_text(envelope, entry_id, note=note, reason=reason),
    }


@dataclass(frozen=True, slots=True)
class Change:
    """A move of a request to `target`, with what the caller said about it."""

    target: RequestStatus
    event: str = "transition"
    note: str | None = None
    reason: str | None = None
    delay_reason: str | None = None
    assignee: str | None = None
    # A partner's late reply is theirs to explain: no delay_reason is asked for then.
    require_delay_reason: bool = True
    message_id: uuid.UUID | None = None


async def apply_change(
    session: WriteSession,
    row: Any,
    change: Change,
    *,
    envelope: Envelope,
    actor: str,
    now: datetime,
) -> None:
    """Check and apply one transition to `row` (a snapshot holding the version read).

    Raises Conflict (illegal transition, or a concurrent change) and
    UnprocessableContent (a late answer without a delay_reason).
    """
    current = RequestStatus(row.status)
    target = change.target
    if not is_allowed(current, target):
        raise illegal_transition(current, target)
    values: dict[str, Any] = {"status": target.value, "updated_at": now}
    details: dict[str, object] = {"from": current.value, "to": target.value}
    text_changes: dict[str, str] = {}
    if target is RequestStatus.ASSIGNED:
        values["assignee"] = change.assignee or actor
    elif target is RequestStatus.ANSWERED:
        late = now > row.due_at
        # A delay notice already put the reason on record (Dir. 2023/977 Art. 5(2)).
        explained = change.delay_reason is not None or row.delay_notified_at is not None
        if late and not explained and change.require_delay_reason:
            raise UnprocessableContent(
                "the request is answered after its due_at: a delay_reason is required "
                "(Dir. (EU) 2023/977)",
                extra={"due_at": iso_z(row.due_at)},
            )
        values.update(answered_at=now, answered_late=late)
        details.update(
            late=late,
            delay_reason_recorded=change.delay_reason is not None,
            delay_notified=row.delay_notified_at is not None,
        )
        if change.delay_reason is not None:
            text_changes["delay_reason"] = change.delay_reason
    elif target is RequestStatus.CLOSED:
        values["closed_at"] = now
    elif target is RequestStatus.REJECTED:
        if change.reason is None:
            raise UnprocessableContent("a rejection needs a reason")
        values["closed_at"] = now
        text_changes["rejection_reason"] = change.reason
        details["reason_recorded"] = True
    if text_changes:
        text = sealing.open_request_text(envelope, row)
        text = sealing.RequestText(
            subject=text.subject,
            delay_reason=text_changes.get("delay_reason", text.delay_reason),
            rejection_reason=text_changes.get("rejection_reason", text.rejection_reason),
        )
        values.update(sealing.columns(sealing.seal_request_text(envelope, row.id, text)))
    if not await repository.update_if_version(session, row.id, version=row.version, values=values):
        raise concurrent_change(row.id)
    await repository.insert_history(
        session,
        [
            history_row(
                row.id,
                event=change.event,
                actor=actor,
                now=now,
                from_status=current.value,
                to_status=target.value,
                envelope=envelope,
                note=change.note,
                reason=change.reason or change.delay_reason,
            )
        ],
    )
    details["note_recorded"] = change.note is not None
    if change.message_id is not None:
        details["message_id"] = str(change.message_id)
    await append(
        session,
        [
            audit_record(
                f"request.{target.value}",
                actor=actor,
                request_id=row.id,
                now=now,
                action=AuditAction.ALTERATION,
                details=details,
            )
        ],
        now=now,
    )
