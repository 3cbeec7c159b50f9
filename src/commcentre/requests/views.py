"""Building the API views of request rows (decrypting only where asked)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from commcentre.crypto import Envelope
from commcentre.requests import sealing
from commcentre.requests.channels import channel_of_request
from commcentre.requests.deadlines import (
    AlertCategory,
    AlertFlag,
    Form,
    InfoAccess,
    SurrenderPostponement,
    TimeLimitRule,
    Urgency,
    is_nordic_warrant,
)
from commcentre.requests.schemas import (
    DelayNoticeOut,
    EawOut,
    HistoryEntryOut,
    LinkedMessageOut,
    LinkRole,
    RequestOut,
    RequestSummary,
)
from commcentre.requests.states import RequestStatus, allowed_from, is_overdue


def summary_of(row: Any, *, now: datetime) -> RequestSummary:
    """The metadata view of a request row; `overdue` is derived from `now`."""
    status = RequestStatus(row.status)
    eaw = None
    if row.arrested_at is not None:
        eaw = EawOut(
            warrant="nordic" if is_nordic_warrant(row.legal_basis) else "european",
            arrested_at=row.arrested_at,
            consent=bool(row.arrest_consent),
            consented_at=row.consented_at,
            extended=row.decision_extended,
            decision_due_at=row.decision_due_at,
            decided_at=row.decided_at,
            decision_overdue=row.decided_at is None and now > row.decision_due_at,
            surrender_agreed_at=row.surrender_agreed_at,
            postponement=(
                SurrenderPostponement(row.surrender_postponement)
                if row.surrender_postponement
                else None
            ),
            surrender_due_at=row.surrender_due_at,
            surrendered_at=row.surrendered_at,
            surrender_overdue=(
                row.surrender_due_at is not None
                and row.surrendered_at is None
                and now > row.surrender_due_at
            ),
        )
    delay_notice = None
    if row.delay_notified_at is not None:
        delay_notice = DelayNoticeOut(
            notified_at=row.delay_notified_at, expected_at=row.delay_expected_at
        )
    overdue = is_overdue(status, row.due_at, now)
    return RequestSummary(
        id=row.id,
        reference=row.reference,
        form=Form(row.form),
        alert_article=row.alert_article,
        alert_category=AlertCategory(row.alert_category) if row.alert_category else None,
        alert_flags=[AlertFlag(flag) for flag in row.alert_flags],
        sis_alert_ref=row.sis_alert_ref,
        eaw_ref=row.eaw_ref,
        issuing_state=row.issuing_state,
        requesting_state=row.requesting_state,
        urgency=Urgency(row.urgency),
        legal_basis=row.legal_basis,
        info_access=InfoAccess(row.info_access) if row.info_access else None,
        channel=channel_of_request(row.channel, row.legal_basis),
        time_limit_rule=TimeLimitRule(row.time_limit_rule),
        immediate=row.immediate,
        received_at=row.received_at,
        due_at=row.due_at,
        status=status,
        allowed_transitions=list(allowed_from(status)),
        overdue=overdue,
        unexplained_delay=overdue and delay_notice is None,
        delay_notice=delay_notice,
        escalated=row.escalated_at is not None,
        escalated_at=row.escalated_at,
        assignee=row.assignee,
        answered_at=row.answered_at,
        answered_late=row.answered_late,
        closed_at=row.closed_at,
        eaw=eaw,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def full_view(
    row: Any,
    history: Sequence[Any],
    links: Sequence[Any],
    *,
    envelope: Envelope,
    now: datetime,
) -> RequestOut:
    """The request with its decrypted text, history and links (plaintext in memory only)."""
    text = sealing.open_request_text(envelope, row)
    entries = []
    for entry in history:
        note, reason = sealing.open_history_text(envelope, entry)
        entries.append(
            HistoryEntryOut(
                id=entry.id,
                event=entry.event,
                actor=entry.actor,
                occurred_at=entry.occurred_at,
                from_status=RequestStatus(entry.from_status) if entry.from_status else None,
                to_status=RequestStatus(entry.to_status),
                note=note,
                reason=reason,
            )
        )
    return RequestOut(
        **summary_of(row, now=now).model_dump(),
        subject=text.subject,
        delay_reason=text.delay_reason,
        rejection_reason=text.rejection_reason,
        history=entries,
        linked_messages=[
            LinkedMessageOut(
                message_id=link.message_id, role=LinkRole(link.role), linked_at=link.linked_at
            )
            for link in links
        ],
    )
