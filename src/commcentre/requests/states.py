"""The state machine of a supplementary-information request (a pure table).

    received ──► assigned ──► awaiting_information ──► answered ──► closed
       │  └──────────┴───────────────┴──► answered
       └──────────┴───────────────┴──► rejected (with a reason)

A request may be answered before it was assigned (a 12-hour SIRENE limit leaves
no time for paperwork). `overdue` and `escalated` are not states: they are
derived from `due_at`, the clock and the recorded escalation.
"""

from datetime import datetime
from enum import StrEnum


class RequestStatus(StrEnum):
    RECEIVED = "received"
    ASSIGNED = "assigned"
    AWAITING_INFORMATION = "awaiting_information"
    ANSWERED = "answered"
    CLOSED = "closed"
    REJECTED = "rejected"


OPEN_STATUSES = frozenset(
    {RequestStatus.RECEIVED, RequestStatus.ASSIGNED, RequestStatus.AWAITING_INFORMATION}
)

TRANSITIONS: dict[RequestStatus, tuple[RequestStatus, ...]] = {
    RequestStatus.RECEIVED: (
        RequestStatus.ASSIGNED,
        RequestStatus.ANSWERED,
        RequestStatus.REJECTED,
    ),
    RequestStatus.ASSIGNED: (
        RequestStatus.AWAITING_INFORMATION,
        RequestStatus.ANSWERED,
        RequestStatus.REJECTED,
    ),
    RequestStatus.AWAITING_INFORMATION: (RequestStatus.ANSWERED, RequestStatus.REJECTED),
    RequestStatus.ANSWERED: (RequestStatus.CLOSED,),
    RequestStatus.CLOSED: (),
    RequestStatus.REJECTED: (),
}


def allowed_from(status: RequestStatus) -> tuple[RequestStatus, ...]:
    """The states a request in `status` may move to."""
    return TRANSITIONS[status]


def is_allowed(current: RequestStatus, target: RequestStatus) -> bool:
    return target in TRANSITIONS[current]


def is_open(status: RequestStatus) -> bool:
    return status in OPEN_STATUSES


def is_overdue(status: RequestStatus, due_at: datetime, now: datetime) -> bool:
    """An open request past its deadline (an immediate one is overdue once time passes)."""
    return is_open(status) and now > due_at
