"""Hooks other parts of the system call: inbound messages open or answer requests, and
overdue requests are escalated.

`open_from_inbound` only flushes: it runs inside the inbound write transaction.
`escalate_overdue` runs its own transaction (the housekeeper of every dispatcher
process calls it): the escalation's history and audit entries and the
`request.overdue` deliveries to subscribers commit together (transactional outbox).
"""

import re
import uuid
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.clock import iso_z
from commcentre.crypto import Envelope
from commcentre.db import Database, WriteSession
from commcentre.delivery.repository import insert_deliveries
from commcentre.ids import new_id
from commcentre.messages.identifiers import normalize_identifier
from commcentre.messages.schemas import (
    Channel,
    InformationAccess,
    MessageIn,
    MessageType,
    Person,
    PersonWarning,
    Priority,
)
from commcentre.messages.service import MessageVault
from commcentre.requests import repository, sealing
from commcentre.requests.channels import channel_of_adapter
from commcentre.requests.deadlines import (
    DIRECTIVE_2023_977,
    POLICE_COOPERATION,
    AlertCategory,
    AlertFlag,
    Form,
    InfoAccess,
    TimeLimitRule,
    UnknownTimeLimit,
    Urgency,
    article_of,
    basis_article_problem,
    category_problem,
    due_at,
    form_article_problem,
    immediate_reasons,
    is_sirene_basis,
    time_limit_rule,
)
from commcentre.requests.eaw import escalate_eaw_deadlines
from commcentre.requests.schemas import LinkRole
from commcentre.requests.states import OPEN_STATUSES, RequestStatus, is_allowed
from commcentre.requests.transitions import (
    Change,
    apply_change,
    audit_record,
    get_row,
    history_row,
)
from commcentre.subscriptions.fanout import request_event_deliveries
from commcentre.subscriptions.schemas import SubscriptionEvent

ESCALATION_ACTOR = "system:escalation"
INBOUND_ACTOR = "system:inbound"
ADULT_AGE = 18
_FORM_CODE = re.compile(r"(?:SIRENE[ _-]?)?(?:FORM[ _-]?)?([AGHIJLMQF])", re.IGNORECASE)
_OPENING_TYPES = frozenset({MessageType.REQUEST, MessageType.HIT})


def form_of(content: MessageIn) -> Form:
    """The form its `sirene` block names; else G for a hit; else the form its
    classification names (`A`, `FORM_J`, ...); else M."""
    if content.sirene is not None:
        return content.sirene.form
    if content.type is MessageType.HIT:
        return Form.G
    if content.classification is not None:
        match = _FORM_CODE.fullmatch(content.classification.strip())
        if match is not None:
            return Form(match[1].upper())
    return Form.M


def _latest_birth(partial: str) -> date:
    """The latest day a partial date of birth (YYYY, YYYY-MM, YYYY-MM-DD) can mean."""
    parts = [int(part) for part in partial.split("-")]
    year, month = parts[0], parts[1] if len(parts) > 1 else 12
    day = parts[2] if len(parts) > 2 else monthrange(year, month)[1]
    return date(year, month, day)


def _may_be_a_child(person: Person, at: datetime) -> bool:
    if person.date_of_birth is None:
        return False
    born = _latest_birth(person.date_of_birth)
    # 18th birthday; someone born on 29 February comes of age on 1 March.
    year = born.year + ADULT_AGE
    coming_of_age = (
        date(year, 3, 1)
        if (born.month, born.day) == (2, 29) and monthrange(year, 2)[1] == 28
        else date(year, born.month, born.day)
    )
    return coming_of_age > at.date()


@dataclass(frozen=True, slots=True)
class AlertOfMessage:
    """The SIS alert an inbound message is about, as far as it says."""

    article: int | None
    category: AlertCategory | None
    sis_alert_ref: str | None
    eaw_ref: str | None


def alert_of(content: MessageIn) -> AlertOfMessage:
    """The alert of the message's `sirene` block, the article defaulting to its legal basis's."""
    sirene = content.sirene
    if sirene is None:
        return AlertOfMessage(article_of(content.legal_basis), None, None, None)
    return AlertOfMessage(
        sirene.alert_article or article_of(content.legal_basis),
        sirene.alert_category,
        sirene.sis_alert_ref,
        sirene.eaw_ref,
    )


def alert_flags_of(content: MessageIn, at: datetime) -> list[AlertFlag]:
    """Why the SIRENE Bureau must act immediately on it (Reg. 2018/1862 Art. 8(3)).

    Terrorism when a person carries that warning. Child only for an alert on a child
    referred to in Art. 32(1)(c): an Art. 32 alert in category c, or an Art. 32 alert
    whose category the message does not give on a person who may be under 18 (point
    (c) cannot be ruled out, and acting at once on it is what the law asks). A minor
    in any other alert (an Art. 26 arrest, an Art. 32(1)(a), (b), (d) alert, ...) is not.
    """
    persons = [subject for subject in content.subjects if isinstance(subject, Person)]
    alert = alert_of(content)
    flags = set()
    if any(PersonWarning.TERRORISM in person.warnings for person in persons):
        flags.add(AlertFlag.TERRORISM)
    if alert.article == 32 and (
        alert.category is AlertCategory.CHILD_ABDUCTION
        or (alert.category is None and any(_may_be_a_child(p, at) for p in persons))
    ):
        flags.add(AlertFlag.CHILD)
    return sorted(flags)


def alert_problems(content: MessageIn, form: Form) -> dict[str, str]:
    """Where the form, alert article, category and legal basis contradict each other."""
    given = content.sirene.alert_article if content.sirene is not None else None
    alert = alert_of(content)
    problems: dict[str, str] = {}
    if (problem := basis_article_problem(content.legal_basis, given)) is not None:
        problems["alert_article"] = problem
    elif (problem := form_article_problem(form, alert.article)) is not None:
        problems["form"] = problem
    if (problem := category_problem(alert.article, alert.category)) is not None:
        problems["alert_category"] = problem
    return problems


@dataclass(frozen=True, slots=True)
class InboundEffect:
    """What an inbound message did to a request: opened, linked to, or answered it."""

    request_id: uuid.UUID
    # Set when the message moved the request to answered: seconds from receipt to answer.
    answered_after: float | None = None


async def open_from_inbound(
    session: WriteSession,
    *,
    message_id: uuid.UUID,
    content: MessageIn,
    source_partner_id: str | None,
    received_at: datetime,
    envelope: Envelope,
) -> uuid.UUID | None:
    """Open or answer a request from a stored inbound message; the request's id, or None.

    See `apply_inbound`, which also says whether the message answered the request.
    """
    effect = await apply_inbound(
        session,
        message_id=message_id,
        content=content,
        source_partner_id=source_partner_id,
        received_at=received_at,
        envelope=envelope,
    )
    return effect.request_id if effect is not None else None


async def apply_inbound(
    session: WriteSession,
    *,
    message_id: uuid.UUID,
    content: MessageIn,
    source_partner_id: str | None,
    received_at: datetime,
    envelope: Envelope,
) -> InboundEffect | None:
    """Open or answer a request from a stored inbound message; what it did, or None.

    A SIRENE request or hit opens a request (form G for a hit), due by the legal
    limit from `received_at`; a repeat with the same reference from the same state
    is linked to the open request instead. A reply whose in_reply_to is linked to a
    request, or whose case_ref is a request's reference, is linked (role reply) and
    moves the request to answered. Runs in the caller's transaction; never commits.
    """
    actor = f"partner:{source_partner_id}" if source_partner_id else INBOUND_ACTOR
    if content.type is MessageType.REPLY:
        return await _answer_from_inbound(
            session,
            message_id=message_id,
            content=content,
            sender_country=(
                await repository.partner_country(session, source_partner_id)
                if source_partner_id
                else None
            ),
            actor=actor,
            now=received_at,
            envelope=envelope,
        )
    partner = (
        await repository.partner_facts(session, source_partner_id) if source_partner_id else None
    )
    state, adapter = partner if partner is not None else (None, None)
    # The channel it came in on: what the message says, else what its partner speaks.
    channel = content.channel or (channel_of_adapter(adapter) if adapter else None)
    if channel is None or not opens_a_request(content, channel):
        return None
    reference = content.case_ref or content.partner_ref or str(message_id)
    reference_key = normalize_identifier(reference)[:128] or str(message_id)
    existing = await repository.latest_by_reference(session, reference_key, requesting_state=state)
    if existing is not None and RequestStatus(existing.status) in OPEN_STATUSES:
        if not await repository.link_exists(session, existing.id, message_id):
            await _link(session, existing.id, message_id, LinkRole.RELATED, now=received_at)
        return InboundEffect(uuid.UUID(str(existing.id)))
    problems = alert_problems(content, form_of(content))
    if problems:
        await _refuse_to_open(
            session, message_id=message_id, problems=problems, actor=actor, now=received_at
        )
        return None
    opened = await _open(
        session,
        message_id=message_id,
        content=content,
        reference=reference[:128],
        reference_key=reference_key,
        state=state,
        channel=channel,
        actor=actor,
        received_at=received_at,
        envelope=envelope,
    )
    return InboundEffect(opened)


def opens_a_request(content: MessageIn, channel: Channel) -> bool:
    """A SIRENE request or hit, or a SPOC request under Dir. 2023/977 over SIENA."""
    if channel is Channel.SIRENE:
        return content.type in _OPENING_TYPES
    return (
        channel is Channel.EUROPOL
        and content.type is MessageType.REQUEST
        and content.legal_basis == DIRECTIVE_2023_977
    )


async def _refuse_to_open(
    session: WriteSession,
    *,
    message_id: uuid.UUID,
    problems: dict[str, str],
    actor: str,
    now: datetime,
) -> None:
    """Record why a partner's SIRENE message opened no request.

    The message itself is stored and delivered to subscribers like any other: a partner's
    form that contradicts its alert (an A form on a missing-person alert) is the partner's
    data error, for an operator to take up with it, and must not be lost. A request with
    that pair would carry a time limit the law does not give, so none is opened.
    """
    await append(
        session,
        [
            AuditRecord(
                action=AuditAction.COLLECTION,
                event="request.not_opened",
                actor=actor,
                subject_type="message",
                subject_id=str(message_id),
                details={
                    "fields": sorted(problems),
                    "problems": [problems[f] for f in sorted(problems)],
                },
                occurred_at=now,
            )
        ],
        now=now,
    )


async def _open(
    session: WriteSession,
    *,
    message_id: uuid.UUID,
    content: MessageIn,
    reference: str,
    reference_key: str,
    state: str | None,
    channel: Channel,
    actor: str,
    received_at: datetime,
    envelope: Envelope,
) -> uuid.UUID:
    form = form_of(content)
    alert = alert_of(content)
    urgency = Urgency.URGENT if content.priority is Priority.URGENT else Urgency.NORMAL
    flags = alert_flags_of(content, received_at)
    # Dir. 2023/977 Art. 5(1): the SPOC request says how accessible the information is;
    # when an urgent one does not, assume directly, the shorter limit.
    info_access = _info_access(content.info_access, urgency)
    try:
        rule = time_limit_rule(
            legal_basis=content.legal_basis, form=form, urgency=urgency, info_access=info_access
        )
    except UnknownTimeLimit:
        # It came over SIRENE: the SIRENE limit applies whatever basis it names.
        rule = TimeLimitRule.SIRENE_SUPPLEMENTARY
    # A basis outside the SIRENE table is read as police cooperation, like its limit.
    sirene_basis = content.legal_basis if is_sirene_basis(content.legal_basis) else None
    immediate = bool(immediate_reasons(sirene_basis or POLICE_COOPERATION, flags))
    request_id = new_id()
    sealed = sealing.seal_request_text(envelope, request_id, sealing.RequestText())
    await repository.insert_request(
        session,
        {
            "id": request_id,
            "reference": reference,
            "reference_key": reference_key,
            "form": form.value,
            "alert_article": alert.article,
            "alert_category": alert.category.value if alert.category else None,
            "alert_flags": [flag.value for flag in flags],
            "sis_alert_ref": alert.sis_alert_ref,
            "eaw_ref": alert.eaw_ref,
            "issuing_state": None,
            "requesting_state": state,
            "urgency": urgency.value,
            "legal_basis": content.legal_basis,
            "info_access": info_access.value if info_access else None,
            "channel": channel.value,
            "time_limit_rule": rule.value,
            "immediate": immediate,
            "received_at": received_at,
            "due_at": due_at(rule, received_at),
            "status": RequestStatus.RECEIVED.value,
            "assignee": None,
            "answered_late": False,
            "decision_extended": False,
            "version": 1,
            "created_by": actor,
            "created_at": received_at,
            "updated_at": received_at,
            **sealing.columns(sealed),
        },
    )
    await repository.insert_history(
        session,
        [
            history_row(
                request_id,
                event="opened_from_inbound",
                actor=actor,
                now=received_at,
                from_status=None,
                to_status=RequestStatus.RECEIVED.value,
                envelope=envelope,
            )
        ],
    )
    await _link(session, request_id, message_id, LinkRole.REQUEST, now=received_at)
    details: dict[str, object] = {
        "form": form.value,
        "requesting_state": state,
        "legal_basis": content.legal_basis,
        "channel": channel.value,
        "time_limit_rule": rule.value,
        "immediate": immediate,
        "message_id": str(message_id),
    }
    await append(
        session,
        [
            audit_record(
                "request.opened",
                actor=actor,
                request_id=request_id,
                now=received_at,
                action=AuditAction.COLLECTION,
                details=details,
            )
        ],
        now=received_at,
    )
    return request_id


def _info_access(given: InformationAccess | None, urgency: Urgency) -> InfoAccess | None:
    if given is not None:
        return InfoAccess(given.value)
    return InfoAccess.DIRECT if urgency is Urgency.URGENT else None


async def _answer_from_inbound(
    session: WriteSession,
    *,
    message_id: uuid.UUID,
    content: MessageIn,
    sender_country: str | None,
    actor: str,
    now: datetime,
    envelope: Envelope,
) -> InboundEffect | None:
    request_id = None
    # A reply to a message of the request is its answer; a reply that only carries the
    # reference answers it when it comes from one of the request's states. From anyone
    # else it is linked as related traffic and changes nothing: a partner must not be
    # able to take another state's request off the clock.
    answers = True
    if content.in_reply_to is not None:
        request_id = await repository.request_linked_to(session, content.in_reply_to)
    if request_id is None and content.case_ref is not None:
        key = normalize_identifier(content.case_ref)
        found = await repository.latest_by_reference(session, key) if key else None
        if found is not None:
            request_id = found.id
            states = {found.requesting_state, found.issuing_state} - {None}
            answers = sender_country is not None and sender_country in states
    if request_id is None:
        return None
    found_id = uuid.UUID(str(request_id))
    if await repository.link_exists(session, request_id, message_id):
        return InboundEffect(found_id)
    role = LinkRole.REPLY if answers else LinkRole.RELATED
    await _link(session, request_id, message_id, role, now=now)
    if not answers:
        return InboundEffect(found_id)
    row = await get_row(session, request_id)
    answered_after = None
    if is_allowed(RequestStatus(row.status), RequestStatus.ANSWERED):
        change = Change(
            target=RequestStatus.ANSWERED,
            event="answered_from_inbound",
            require_delay_reason=False,
            message_id=message_id,
        )
        await apply_change(session, row, change, envelope=envelope, actor=actor, now=now)
        answered_after = max((now - row.received_at).total_seconds(), 0.0)
    return InboundEffect(found_id, answered_after)


async def _link(
    session: WriteSession,
    request_id: uuid.UUID,
    message_id: uuid.UUID,
    role: LinkRole,
    *,
    now: datetime,
) -> None:
    await repository.insert_links(
        session,
        [
            {
                "request_id": request_id,
                "message_id": message_id,
                "role": role.value,
                "linked_at": now,
            }
        ],
    )


def overdue_event_data(row: Any, *, escalated_at: datetime) -> dict[str, Any]:
    """The `data` of a `request.overdue` event: request metadata only.

    Never the sealed free text (subject, notes, reasons) and never a message payload.
    """
    return {
        "id": str(row.id),
        "reference": row.reference,
        "form": row.form,
        "alert_article": row.alert_article,
        "alert_category": row.alert_category,
        "alert_flags": list(row.alert_flags or []),
        "requesting_state": row.requesting_state,
        "urgency": row.urgency,
        "legal_basis": row.legal_basis,
        "time_limit_rule": row.time_limit_rule,
        "immediate": row.immediate,
        "status": row.status,
        "received_at": iso_z(row.received_at),
        "due_at": iso_z(row.due_at),
        "escalated_at": iso_z(escalated_at),
    }


async def escalate_overdue(
    db: Database,
    *,
    now: datetime,
    limit: int = 100,
    vault: MessageVault | None = None,
) -> list[uuid.UUID]:
    """Escalate open requests past due_at, once each, and arrest-warrant decisions and
    surrenders past their deadlines (`eaw.escalate_eaw_deadlines`); returns the ids
    escalated now.

    Each escalation records a history entry and an audit entry, and queues a
    `request.overdue` event to every subscription that lists that event, in the
    same transaction. A subscription naming a case_ref gets the event of a request
    whose reference has that blind-index digest: `vault` computes it (without a
    vault, only subscriptions naming no case get events).

    Safe with several workers: each request is claimed by a conditional UPDATE
    (escalated_at IS NULL), so only one worker records its history and audit entry
    and queues its events.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    escalated = await _escalate_replies(db, now=now, limit=limit, vault=vault)
    # The same job escalates arrest-warrant decisions and surrenders past their deadline.
    return escalated + await escalate_eaw_deadlines(db, now=now, limit=limit, vault=vault)


async def _escalate_replies(
    db: Database, *, now: datetime, limit: int, vault: MessageVault | None
) -> list[uuid.UUID]:
    open_statuses = [status.value for status in OPEN_STATUSES]
    async with db.write_sessions() as session, session.begin():
        candidates = await repository.overdue_unescalated(
            session, open_statuses=open_statuses, now=now, limit=limit
        )
        claimed = await repository.claim_escalations(
            session, candidates, open_statuses=open_statuses, now=now
        )
        if not claimed:
            return []
        rows = [await get_row(session, request_id) for request_id, _ in claimed]
        notified: dict[uuid.UUID, int] = {}
        for row in rows:
            deliveries = await request_event_deliveries(
                session,
                request_id=row.id,
                event=SubscriptionEvent.REQUEST_OVERDUE,
                data=overdue_event_data(row, escalated_at=now),
                reference_digest=vault.case_ref_digest(row.reference) if vault else None,
                now=now,
            )
            await insert_deliveries(session, deliveries)
            notified[row.id] = len(deliveries)
        await repository.insert_history(
            session,
            [
                history_row(
                    row.id,
                    event="escalated",
                    actor=ESCALATION_ACTOR,
                    now=now,
                    from_status=row.status,
                    to_status=row.status,
                    envelope=None,
                )
                for row in rows
            ],
        )
        await append(
            session,
            [
                audit_record(
                    "request.escalated",
                    actor=ESCALATION_ACTOR,
                    request_id=row.id,
                    now=now,
                    action=AuditAction.ALTERATION,
                    details={
                        "status": row.status,
                        "due_at": iso_z(row.due_at),
                        "form": row.form,
                        "requesting_state": row.requesting_state,
                        "subscribers_notified": notified[row.id],
                    },
                )
                for row in rows
            ],
            now=now,
        )
    return [uuid.UUID(str(request_id)) for request_id, _ in claimed]
