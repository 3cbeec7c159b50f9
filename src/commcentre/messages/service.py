"""Message rules: sealing, ownership, consultation and lookups."""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.auth.deps import Principal
from commcentre.auth.scopes import Scope
from commcentre.crypto import BlindIndex, CryptoError, Envelope, SealedPayload
from commcentre.delivery.repository import pending_row
from commcentre.errors import Conflict, NotFound
from commcentre.idempotency.headers import fingerprint
from commcentre.ids import new_id
from commcentre.messages import repository
from commcentre.messages.identifiers import (
    IdentifierKind,
    LookupRequest,
    message_tokens,
    normalize_identifier,
    query_tokens,
)
from commcentre.messages.ingest import PendingMessage
from commcentre.messages.kinds import kind_bits, kinds_of
from commcentre.messages.models import Message
from commcentre.messages.repository import MessageFilter, Visibility
from commcentre.messages.schemas import MessageIn
from commcentre.messages.views import LookupHit, LookupResponse, MessageOut, MessageSummary
from commcentre.middleware import current_request_id

ENVELOPE_CONTEXT = "message"
SUBMIT_OPERATION = "POST /v1/messages"
LOOKUP_MAX_IDS = 20


@dataclass(frozen=True, slots=True)
class MessageVault:
    """What seals and indexes message payloads (built once in the lifespan)."""

    envelope: Envelope
    blind_index: BlindIndex
    retention: timedelta
    # Per legal basis (Settings.retention_days); `retention` for the others.
    retention_by_basis: Mapping[str, timedelta] = field(default_factory=dict)

    def purge_after(self, legal_basis: str, received: datetime) -> datetime:
        """When a message under this legal basis is to be erased."""
        return received + self.retention_by_basis.get(legal_basis, self.retention)

    def case_ref_digest(self, case_ref: str) -> bytes:
        return self.blind_index.digest(IdentifierKind.CASE_REF, normalize_identifier(case_ref))


def visibility_for(principal: Principal) -> Visibility:
    return Visibility(
        client_id=principal.client_id,
        sees_all=principal.is_admin,
        sees_inbound=principal.has(Scope.MESSAGES_READ),
    )


def prepare_outbound(
    message: MessageIn,
    *,
    principal: Principal,
    idempotency_key: str | None,
    vault: MessageVault,
    destinations: Sequence[str],
    now: datetime,
    thread: bytes | None = None,
) -> PendingMessage:
    """Seal, index and address a validated message; nothing is written yet.

    `destinations` are the partner ids routing chose: one outbox row each.
    `thread` is the case_ref digest of the message it answers, for a reply
    without a case_ref of its own (see `thread_of`).
    """
    stored = sealed_message(
        message,
        vault=vault,
        direction="outbound",
        status="accepted",
        now=now,
        thread=thread_digest(message, vault=vault, inherited=thread),
        client_id=principal.client_id,
    )
    message_id, row, kinds, canonical = stored.id, stored.row, stored.kinds, stored.canonical
    deliveries = [
        pending_row(now, message_id=message_id, partner_id=partner_id)
        for partner_id in destinations
    ]
    response = {
        "id": str(message_id),
        "status": "accepted",
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "deliveries": [
            {"id": str(d["id"]), "partner": d["partner_id"], "status": "pending"}
            for d in deliveries
        ],
    }
    return PendingMessage(
        client_id=principal.client_id,
        operation=SUBMIT_OPERATION,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(SUBMIT_OPERATION, canonical),
        message_row=row,
        identifier_rows=stored.identifier_rows,
        delivery_rows=deliveries,
        audit=AuditRecord(
            action=AuditAction.COLLECTION,
            event="message.ingested",
            actor=principal.actor,
            subject_type="message",
            subject_id=str(message_id),
            details={
                "direction": "outbound",
                "type": message.type.value,
                "subject_kinds": kinds,
                "partners": list(destinations),
            },
            occurred_at=now,
        ),
        response=response,
    )


@dataclass(frozen=True, slots=True)
class SealedMessage:
    """A message as it is stored: its row, its blind-index rows, and its canonical bytes."""

    id: uuid.UUID
    row: dict[str, Any]
    identifier_rows: list[dict[str, Any]]
    kinds: list[str]
    canonical: bytes


def sealed_message(
    message: MessageIn,
    *,
    vault: MessageVault,
    direction: str,
    status: str,
    now: datetime,
    thread: bytes | None,
    client_id: uuid.UUID | None = None,
    source_partner_id: str | None = None,
    partner_ref: str | None = None,
) -> SealedMessage:
    """Seal a message (a data key of its own) and index it; the row misses only `seq`,
    which the audit entry written with it hands out (Message.seq)."""
    message_id = new_id()
    canonical = message.model_dump_json(exclude_none=True).encode()
    sealed = vault.envelope.seal(canonical, record_id=message_id, context=ENVELOPE_CONTEXT)
    kinds: list[str] = sorted({subject.kind for subject in message.subjects})
    digests = {vault.blind_index.digest(kind, token) for kind, token in message_tokens(message)}
    row: dict[str, Any] = {
        "id": message_id,
        "direction": direction,
        "type": message.type.value,
        "channel": message.channel.value if message.channel else None,
        "recipients": list(message.recipients),
        "priority": message.priority.value,
        "legal_basis": message.legal_basis,
        "handling_codes": [code.value for code in message.handling_codes],
        "subject_kinds": kind_bits(kinds),
        "status": status,
        "in_reply_to": message.in_reply_to,
        "case_digest": thread,
        "source_partner_id": source_partner_id,
        "partner_ref": partner_ref,
        "forwarded_from": None,
        "request_id": current_request_id(),
        "client_id": client_id,
        "created_at": now,
        "purge_after": vault.purge_after(message.legal_basis, now),
        "enc_format": sealed.format_version,
        "key_version": sealed.key_version,
        "wrapped_key": sealed.wrapped_key,
        "ciphertext": sealed.ciphertext,
    }
    return SealedMessage(
        id=message_id,
        row=row,
        identifier_rows=[{"message_id": message_id, "digest": d} for d in digests],
        kinds=kinds,
        canonical=canonical,
    )


def thread_digest(
    message: MessageIn, *, vault: MessageVault, inherited: bytes | None
) -> bytes | None:
    """The thread a message belongs to: its own case_ref, else the one it answers."""
    if message.case_ref is not None and normalize_identifier(message.case_ref):
        return vault.case_ref_digest(message.case_ref)
    return inherited


async def thread_of(session: AsyncSession, message: MessageIn) -> bytes | None:
    """The thread a reply without a case_ref inherits from the message it answers."""
    if message.case_ref is not None or message.in_reply_to is None:
        return None
    return await repository.case_digest_of(session, message.in_reply_to)


def summary_of(row: Any) -> MessageSummary:
    return MessageSummary(
        id=row.id,
        direction=row.direction,
        type=row.type,
        channel=row.channel,
        recipients=list(row.recipients),
        priority=row.priority,
        legal_basis=row.legal_basis,
        handling_codes=list(row.handling_codes),
        subject_kinds=kinds_of(row.subject_kinds),
        status=row.status,
        in_reply_to=row.in_reply_to,
        submitted_by=row.client_id,
        received_from=row.source_partner_id,
        partner_ref=row.partner_ref,
        forwarded_from=row.forwarded_from,
        created_at=row.created_at,
    )


async def get_visible(
    session: AsyncSession, message_id: uuid.UUID, *, principal: Principal
) -> Message:
    """The message if this client may see it; another client's id is 'not found'."""
    message = await repository.get_visible(session, message_id, visibility_for(principal))
    if message is None:
        raise NotFound(f"message {message_id} does not exist")
    return message


def unseal(message: Message, *, vault: MessageVault) -> MessageOut:
    """Decrypt a message into its full view (plaintext lives only in memory)."""
    return MessageOut(
        **summary_of(message).model_dump(), content=unseal_content(message, vault=vault)
    )


def unseal_content(message: Message, *, vault: MessageVault) -> MessageIn:
    """Decrypt and validate a message's content alone (what a delivery sends)."""
    sealed = SealedPayload(
        format_version=message.enc_format,
        key_version=message.key_version,
        wrapped_key=message.wrapped_key,
        ciphertext=message.ciphertext,
    )
    try:
        plaintext = vault.envelope.open(sealed, record_id=message.id, context=ENVELOPE_CONTEXT)
        return MessageIn.model_validate_json(plaintext)
    except (CryptoError, ValidationError):
        raise Conflict(
            f"message {message.id} cannot be decrypted: its stored payload failed the integrity "
            "check (tampered, moved between rows, or sealed under a retired key)"
        ) from None


async def record_consultation(
    session: AsyncSession,
    message: Message,
    *,
    principal: Principal,
    justification: str,
    now: datetime,
) -> None:
    """Audit a read of a payload (LED Art. 25: consultation, with its justification)."""
    await append(
        session,
        [
            AuditRecord(
                action=AuditAction.CONSULTATION,
                event="message.read",
                actor=principal.actor,
                subject_type="message",
                subject_id=str(message.id),
                justification=justification,
                occurred_at=now,
            )
        ],
        now=now,
    )


async def list_messages(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: MessageFilter,
    after: int | None,
    descending: bool,
    limit: int,
) -> list[tuple[int, MessageSummary]]:
    """One page, each summary with its seq (the cursor position)."""
    rows = await repository.list_metadata(
        session, visibility_for(principal), filters, after=after, descending=descending, limit=limit
    )
    return [(row.seq, summary_of(row)) for row in rows]


async def lookup(
    read_session: AsyncSession,
    write_session: AsyncSession,
    request: LookupRequest,
    *,
    principal: Principal,
    vault: MessageVault,
    justification: str,
    now: datetime,
) -> LookupResponse:
    """Hit check through the blind index: no payload is decrypted.

    Each query is a consultation (LED Art. 25) and gets its own audit entry, all
    appended in one go: the justification, the query's blind-index digests (the
    keyed HMACs of its normalised terms, never the terms: they are personal data)
    and the ids of the messages it returned. One entry per query because an
    entry's details are capped (2 KiB) and 100 queries of 20 ids each do not fit
    in one; it also keeps each id next to the query that found it.
    """
    visibility = visibility_for(principal)
    results: list[LookupHit] = []
    records: list[AuditRecord] = []
    for index, query in enumerate(request.queries):
        digests = [vault.blind_index.digest(kind, token) for kind, token in query_tokens(query)]
        hits = await repository.find_by_digests(
            read_session, digests, visibility, max_ids=LOOKUP_MAX_IDS
        )
        results.append(
            LookupHit(
                query_index=index,
                kind=query.kind,
                hit=hits.count > 0,
                matches=hits.count,
                first_seen=hits.first_seen,
                last_seen=hits.last_seen,
                message_ids=hits.message_ids,
            )
        )
        records.append(
            AuditRecord(
                action=AuditAction.CONSULTATION,
                event="lookup.performed",
                actor=principal.actor,
                subject_type="blind_index",
                justification=justification,
                details={
                    "query_index": index,
                    "queries": len(request.queries),
                    "kind": query.kind,
                    # Hex of the HMACs the index stores: whoever holds the index key
                    # can tell which identifier was searched; nobody else can.
                    "terms": sorted(digest.hex() for digest in digests),
                    "matches": hits.count,
                    "message_ids": [str(message_id) for message_id in hits.message_ids],
                },
                occurred_at=now,
            )
        )
    await append(write_session, records, now=now)
    return LookupResponse(results=results)
