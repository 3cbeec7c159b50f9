"""Arrest-warrant follow-up on a request: the steps, their deadlines and escalation.

A request about a European Arrest Warrant (FD 2002/584) or a Nordic Arrest
Warrant (NAW_2005) records the arrest, the consent, an extension, the decision,
a new surrender date agreed and the surrender (`record_eaw`); each step
recomputes the decision and surrender deadlines (`deadlines.eaw_deadlines`).

`escalate_eaw_deadlines` is part of the escalation job: a decision past its
deadline (Art. 17) or a surrender past its deadline (Art. 23(5): a person still
in custody is then to be released) is escalated once per deadline, with a history
entry, an audit entry and an event to subscribers, in one transaction. A new
surrender date re-arms the surrender escalation.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.service import AuditAction, append
from commcentre.clock import iso_z
from commcentre.crypto import Envelope
from commcentre.db import Database
from commcentre.delivery.repository import insert_deliveries
from commcentre.errors import Conflict, UnprocessableContent
from commcentre.messages.service import MessageVault
from commcentre.requests import repository
from commcentre.requests.deadlines import eaw_deadlines, is_nordic_warrant
from commcentre.requests.schemas import EawUpdate, RequestSummary
from commcentre.requests.transitions import (
    audit_record,
    concurrent_change,
    get_row,
    history_row,
)
from commcentre.requests.views import summary_of
from commcentre.subscriptions.fanout import request_event_deliveries
from commcentre.subscriptions.schemas import SubscriptionEvent

ESCALATION_ACTOR = "system:escalation"
# How far ahead of our clock a client's times may be (clock skew).
CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# An agreed surrender date lies ahead, but not beyond reason.
LATEST_NEW_DATE = timedelta(days=366)


def check_past(name: str, value: datetime, now: datetime) -> datetime:
    """`value` in UTC, refused (422) in the future or before 2000."""
    if value > now + CLOCK_SKEW:
        raise UnprocessableContent(f"{name} must not be in the future")
    if value < EARLIEST:
        raise UnprocessableContent(f"{name} must not be before 2000-01-01")
    return value.astimezone(UTC)


def is_about_a_warrant(row: Any) -> bool:
    """Form A, an eaw_ref, an Art. 26 alert, or a warrant's own legal basis."""
    return (
        row.form == "A"
        or row.eaw_ref is not None
        or row.alert_article == 26
        or row.legal_basis.startswith("FD_2002_584")
        or is_nordic_warrant(row.legal_basis)
    )


def _not_a_warrant(request_id: uuid.UUID) -> Conflict:
    return Conflict(
        f"request {request_id} is not about an arrest warrant "
        "(form A, an eaw_ref, an Art. 26 alert, FD_2002_584 or NAW_2005)"
    )


async def record_eaw(
    session: AsyncSession,
    request_id: uuid.UUID,
    body: EawUpdate,
    *,
    envelope: Envelope,
    actor: str,
    now: datetime,
) -> RequestSummary:
    """Record one arrest-warrant step and recompute the decision and surrender deadlines."""
    row = await get_row(session, request_id)
    if not is_about_a_warrant(row):
        raise _not_a_warrant(request_id)
    state: dict[str, Any] = {
        "arrested_at": row.arrested_at,
        "arrest_consent": row.arrest_consent,
        "consented_at": row.consented_at,
        "decision_extended": row.decision_extended,
        "decided_at": row.decided_at,
        "surrender_agreed_at": row.surrender_agreed_at,
        "surrender_postponement": row.surrender_postponement,
        "surrendered_at": row.surrendered_at,
        "decision_escalated_at": row.decision_escalated_at,
        "surrender_escalated_at": row.surrender_escalated_at,
    }
    event, details = _apply_step(state, body, now)
    deadlines = eaw_deadlines(
        arrested_at=state["arrested_at"],
        consent=bool(state["arrest_consent"]),
        consented_at=state["consented_at"],
        extended=state["decision_extended"],
        decided_at=state["decided_at"],
        surrender_agreed_at=state["surrender_agreed_at"],
        nordic=is_nordic_warrant(row.legal_basis),
    )
    values = {
        **state,
        "decision_due_at": deadlines.decision_due_at,
        "surrender_due_at": deadlines.surrender_due_at,
        "updated_at": now,
    }
    if not await repository.update_if_version(session, row.id, version=row.version, values=values):
        raise concurrent_change(row.id)
    await repository.insert_history(
        session,
        [
            history_row(
                row.id,
                event=event,
                actor=actor,
                now=now,
                from_status=row.status,
                to_status=row.status,
                envelope=envelope,
                note=body.note,
            )
        ],
    )
    details.update(
        warrant="nordic" if is_nordic_warrant(row.legal_basis) else "european",
        decision_due_at=iso_z(deadlines.decision_due_at),
        surrender_due_at=iso_z(deadlines.surrender_due_at),
        note_recorded=body.note is not None,
    )
    await append(
        session,
        [
            audit_record(
                f"request.{event}",
                actor=actor,
                request_id=row.id,
                now=now,
                action=AuditAction.ALTERATION,
                details=details,
            )
        ],
        now=now,
    )
    return summary_of(await get_row(session, request_id), now=now)


def _apply_step(
    state: dict[str, Any], body: EawUpdate, now: datetime
) -> tuple[str, dict[str, object]]:
    """Check one step against what is recorded and apply it to `state`; (event, details)."""
    arrested_at, decided_at = state["arrested_at"], state["decided_at"]
    if body.arrested_at is not None and body.consent is not None:
        if arrested_at is not None:
            raise Conflict("the arrest is already recorded")
        arrested = check_past("arrested_at", body.arrested_at, now)
        consented = None
        if body.consent:
            consented = check_past("consented_at", body.consented_at or arrested, now)
            if consented < arrested:
                raise UnprocessableContent("consented_at must not be before arrested_at")
        state.update(arrested_at=arrested, arrest_consent=body.consent, consented_at=consented)
        return "eaw_arrest", {"consent": body.consent}
    if body.consented_at is not None:
        if arrested_at is None or decided_at is not None or state["arrest_consent"]:
            raise Conflict("a consent needs a recorded arrest, no consent and no decision yet")
        consented = check_past("consented_at", body.consented_at, now)
        if consented < arrested_at:
            raise UnprocessableContent("consented_at must not be before arrested_at")
        # The decision is due 10 days after consent (Art. 17(2)): a new clock.
        state.update(arrest_consent=True, consented_at=consented, decision_escalated_at=None)
        return "eaw_consent", {"consent": True}
    if body.extension:
        if arrested_at is None or decided_at is not None or state["decision_extended"]:
            raise Conflict("an extension needs a recorded arrest, no decision and no extension yet")
        state.update(decision_extended=True, decision_escalated_at=None)
        return "eaw_extension", {}
    if body.decided_at is not None:
        if arrested_at is None or decided_at is not None:
            raise Conflict("a decision needs a recorded arrest and no decision yet")
        decided = check_past("decided_at", body.decided_at, now)
        if decided < arrested_at:
            raise UnprocessableContent("decided_at must not be before arrested_at")
        state["decided_at"] = decided
        return "eaw_decision", {}
    if body.surrender_new_date is not None:
        assert body.postponement is not None  # EawUpdate pairs them
        if decided_at is None or state["surrendered_at"] is not None:
            raise Conflict("a new surrender date needs a decision and no surrender yet")
        new_date = body.surrender_new_date.astimezone(UTC)
        if new_date < decided_at:
            raise UnprocessableContent("surrender_new_date must not be before decided_at")
        if new_date > now + LATEST_NEW_DATE:
            raise UnprocessableContent("surrender_new_date must be within a year")
        # A new date agreed (Art. 23(3)/(4)) starts a new 10-day limit: escalate it anew.
        state.update(
            surrender_agreed_at=new_date,
            surrender_postponement=body.postponement.value,
            surrender_escalated_at=None,
        )
        return "eaw_surrender_postponed", {"postponement": body.postponement.value}
    assert body.surrendered_at is not None  # EawUpdate allows exactly one step
    if decided_at is None or state["surrendered_at"] is not None:
        raise Conflict("a surrender needs a decision and no surrender yet")
    surrendered = check_past("surrendered_at", body.surrendered_at, now)
    if surrendered < decided_at:
        raise UnprocessableContent("surrendered_at must not be before decided_at")
    state["surrendered_at"] = surrendered
    return "eaw_surrendered", {}


def eaw_event_data(row: Any, *, deadline: str, escalated_at: datetime) -> dict[str, Any]:
    """The `data` of an arrest-warrant deadline event: metadata only, never free text."""
    return {
        "id": str(row.id),
        "reference": row.reference,
        "eaw_ref": row.eaw_ref,
        "legal_basis": row.legal_basis,
        "warrant": "nordic" if is_nordic_warrant(row.legal_basis) else "european",
        "requesting_state": row.requesting_state,
        "issuing_state": row.issuing_state,
        "status": row.status,
        "deadline": deadline,
        "arrested_at": iso_z(row.arrested_at),
        "consent": bool(row.arrest_consent),
        "decision_due_at": iso_z(row.decision_due_at),
        "decided_at": iso_z(row.decided_at),
        "surrender_due_at": iso_z(row.surrender_due_at),
        "postponement": row.surrender_postponement,
        "escalated_at": iso_z(escalated_at),
    }


_DEADLINES = {
    "decision": SubscriptionEvent.REQUEST_EAW_DECISION_OVERDUE,
    "surrender": SubscriptionEvent.REQUEST_EAW_SURRENDER_OVERDUE,
}


async def escalate_eaw_deadlines(
    db: Database, *, now: datetime, limit: int = 100, vault: MessageVault | None = None
) -> list[uuid.UUID]:
    """Escalate arrest-warrant decisions and surrenders past their deadline, once per
    deadline; the ids of the requests escalated now (a request may appear twice).

    Claimed by a conditional UPDATE (the escalation stamp still NULL), so that of
    several workers only one records and notifies. A subscriber told of a surrender
    deadline before a new date was agreed is not sent the same event again (one
    delivery per request, event and subscriber); the history and audit entries are.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    escalated: list[uuid.UUID] = []
    async with db.write_sessions() as session, session.begin():
        for deadline, event in _DEADLINES.items():
            candidates = await repository.overdue_warrant_steps(
                session, deadline=deadline, now=now, limit=limit
            )
            claimed = await repository.claim_warrant_escalations(
                session, candidates, deadline=deadline, now=now
            )
            for request_id in claimed:
                row = await get_row(session, request_id)
                deliveries = await request_event_deliveries(
                    session,
                    request_id=row.id,
                    event=event,
                    data=eaw_event_data(row, deadline=deadline, escalated_at=now),
                    reference_digest=vault.case_ref_digest(row.reference) if vault else None,
                    now=now,
                )
                told = await repository.subscriptions_told(session, row.id, event.value)
                deliveries = [d for d in deliveries if d["subscription_id"] not in told]
                await insert_deliveries(session, deliveries)
                due_at = row.decision_due_at if deadline == "decision" else row.surrender_due_at
                await repository.insert_history(
                    session,
                    [
                        history_row(
                            row.id,
                            event=f"eaw_{deadline}_escalated",
                            actor=ESCALATION_ACTOR,
                            now=now,
                            from_status=row.status,
                            to_status=row.status,
                            envelope=None,
                        )
                    ],
                )
                details: dict[str, object] = {
                    "deadline": deadline,
                    "due_at": iso_z(due_at),
                    "warrant": "nordic" if is_nordic_warrant(row.legal_basis) else "european",
                    "status": row.status,
                    "subscribers_notified": len(deliveries),
                }
                if deadline == "surrender":
                    # Art. 23(5): past the limits, a person still in custody is released.
                    details["release_due"] = True
                await append(
                    session,
                    [
                        audit_record(
                            f"request.eaw_{deadline}_escalated",
                            actor=ESCALATION_ACTOR,
                            request_id=row.id,
                            now=now,
                            action=AuditAction.ALTERATION,
                            details=details,
                        )
                    ],
                    now=now,
                )
                escalated.append(uuid.UUID(str(row.id)))
    return escalated
