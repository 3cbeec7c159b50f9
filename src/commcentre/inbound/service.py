"""Inbound rules: verify a partner's push, deduplicate it, read it, store it sealed.

The order is what keeps refusals cheap and storage-free:

1. headers and timestamp (401), the partner (404, the same for unknown and
   disabled), the signature over the raw body under the partner's inbound
   secrets (401): nothing parsed yet;
2. our own deliveries, refused as replays: a push whose signature fails but
   which is one of our deliveries, signed as we signed it (401), or a signed
   push whose webhook-id is one of our delivery ids (422); both are logged
   as `inbound_replay_refused` and counted under reason `replay`;
3. the inbox: a webhook-id already received answers 200 with the stored id;
4. the body: `application/json` as is, `application/jose` decrypted (422),
   anything else 415; then the partner's adapter reads it (422 with paths),
   and a document that names one of our messages as its own (`message_id`)
   is a replay too (422);
5. one write transaction: audit entry first (its seq orders the pull feed),
   message, blind-index rows, inbox row, subscriber deliveries. The inbox's
   unique (partner, webhook-id) is the real guard: a concurrent duplicate that
   loses the race rolls back and answers 200 like any other.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.adapters.base import AdapterConfigError, InboundNotSupportedError, PartnerView
from commcentre.adapters.formats import ParsedInbound, WireFormatError
from commcentre.adapters.registry import AdapterRegistry
from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.crypto import CryptoError
from commcentre.crypto.keyring import ExchangeKeyProvider
from commcentre.db import Database
from commcentre.delivery.repository import insert_deliveries
from commcentre.errors import (
    Conflict,
    FieldError,
    NotFound,
    Unauthorized,
    UnprocessableContent,
    UnsupportedMediaType,
)
from commcentre.ids import new_id
from commcentre.inbound import decryption, repository
from commcentre.inbound.schemas import InboundReceipt
from commcentre.inbound.signature import WebhookHeaders, check_timestamp, verify_signature
from commcentre.messages import repository as messages_repository
from commcentre.messages.service import MessageVault, sealed_message
from commcentre.partners import repository as partners_repository
from commcentre.partners import sealing
from commcentre.partners.models import Partner
from commcentre.partners.service import partner_view
from commcentre.requests.automation import apply_inbound
from commcentre.subscriptions import repository as subscriptions_repository
from commcentre.subscriptions import sealing as subscriptions_sealing
from commcentre.subscriptions.fanout import deliveries_for

log = structlog.get_logger(__name__)

RECEIVED = "received"
RECEIVED_EVENT = "message.received"
JSON_TYPE = "application/json"
JOSE_TYPE = "application/jose"


@dataclass(frozen=True, slots=True)
class InboundPush:
    """One POST to /v1/inbound/{partner_id}, as received."""

    partner_id: str
    headers: WebhookHeaders
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class InboundOutcome:
    """202 for a new message, 200 for a duplicate."""

    status_code: int
    receipt: InboundReceipt
    # The subject kinds of a newly stored message (metrics); empty for a duplicate.
    subject_kinds: tuple[str, ...] = ()
    # The message answered a request: seconds from the request's receipt (metrics).
    request_answered_after: float | None = None


@dataclass(frozen=True, slots=True)
class InboundServices:
    """What receiving needs of the process (built in the lifespan)."""

    db: Database
    vault: MessageVault
    adapters: AdapterRegistry
    exchange_keys: ExchangeKeyProvider | None
    tolerance_seconds: int
    # Called after a commit that queued subscriber deliveries (wakes the dispatcher).
    on_committed: Callable[[], None] | None = None


class ReplayedDelivery(Unauthorized):
    """A push that is one of our own deliveries, signed as we signed it: captured, sent back."""

    slug = "replayed-delivery"


class OwnDeliveryRefused(UnprocessableContent):
    """A push signed with the partner's inbound secret that carries our own delivery or
    message id: our outbound format is never accepted back as the partner's message."""

    slug = "replayed-delivery"


REPLAY_REFUSALS = (ReplayedDelivery, OwnDeliveryRefused)


def _unknown_partner() -> NotFound:
    # One answer for unknown and disabled partners: the caller learns nothing of which.
    return NotFound("no partner receives webhooks at this address")


async def receive(services: InboundServices, push: InboundPush, *, now: datetime) -> InboundOutcome:
    """Verify, deduplicate, read and store one push; raises a CommCentreError on refusal."""
    check_timestamp(push.headers.timestamp, now=now, tolerance_seconds=services.tolerance_seconds)
    async with services.db.read_sessions() as session:
        partner = await _verified_partner(session, push, services)
        seen = await repository.find(session, partner.id, push.headers.webhook_id)
    if seen is not None:
        return _duplicate(seen)
    view, reader = _reader(partner, services)
    document = _document(push, services.exchange_keys)
    parsed = _parse(reader, document, view, adapter=partner.adapter)
    await _refuse_our_message(services, partner, parsed)
    return await _store(services, partner, push, parsed, now=now)


async def _verified_partner(
    session: AsyncSession, push: InboundPush, services: InboundServices
) -> Partner:
    if len(push.partner_id) > 63:
        raise _unknown_partner()
    partner = await partners_repository.get(session, push.partner_id)
    if partner is None or not partner.enabled:
        raise _unknown_partner()
    try:
        opened = sealing.open_sealed(services.vault.envelope, partner)
    except CryptoError:
        raise Conflict(
            "the partner's signing secrets cannot be opened here; an operator must fix them"
        ) from None
    delivery_id = _uuid(push.headers.webhook_id)
    try:
        # Only the inbound secrets: the outbound ones sign what we send, and anyone holding
        # a delivery of ours (the partner, a proxy's log) holds a signature under them.
        verify_signature(push.headers, push.body, _secrets(opened.inbound_secrets))
    except Unauthorized:
        if delivery_id is not None:
            await _refuse_captured_delivery(session, push, services, partner, delivery_id)
        raise
    if delivery_id is not None and await repository.own_delivery(session, delivery_id):
        # Signed with the inbound secret, yet one of our delivery ids: a secret that also
        # signs deliveries somewhere (another partner's, a subscription's), or a sender
        # echoing our delivery. Either way it is ours, not the partner's message.
        _log_replay(partner, delivery_id, matched="inbound secret")
        raise OwnDeliveryRefused(
            "the webhook-id is one of our own delivery ids: a delivery we sent is never "
            "accepted back as a partner's message (suspected replay)"
        )
    return partner


def _secrets(values: Sequence[str]) -> list[SecretStr]:
    return [SecretStr(value) for value in values]


def _uuid(text: str) -> uuid.UUID | None:
    """Our ids are UUIDs; anything else cannot be one of them."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def _refuse_captured_delivery(
    session: AsyncSession,
    push: InboundPush,
    services: InboundServices,
    partner: Partner,
    delivery_id: uuid.UUID,
) -> None:
    """Raise ReplayedDelivery when the push is our delivery `delivery_id`, signed as we
    signed it (the signature proves it: no one can forge this label).

    A captured partner or subscriber delivery replayed here fails the inbound signature
    whatever happens; this only names it, so that the capture gets noticed.
    """
    ours = await repository.own_delivery(session, delivery_id)
    if ours is None:
        return
    signed_with = await _secrets_of(session, ours, services)
    try:
        verify_signature(push.headers, push.body, signed_with)
    except Unauthorized:
        return
    destination = "partner" if ours.partner_id is not None else "subscription"
    _log_replay(partner, delivery_id, matched=f"{destination} delivery signature")
    raise ReplayedDelivery(
        "this is one of our own deliveries (its webhook-id and signature are ours), sent "
        "back: never accepted as a partner's message (suspected replay of a captured delivery)"
    )


async def _secrets_of(
    session: AsyncSession, ours: repository.OwnDelivery, services: InboundServices
) -> list[SecretStr]:
    """The secrets our delivery was signed with: its partner's outbound secrets, or its
    subscription's; none when they cannot be opened."""
    envelope = services.vault.envelope
    try:
        if ours.partner_id is not None:
            destination = await partners_repository.get(session, ours.partner_id)
            if destination is not None:
                return _secrets(sealing.open_sealed(envelope, destination).outbound_secrets)
        elif ours.subscription_id is not None:
            subscription = await subscriptions_repository.get_any(session, ours.subscription_id)
            if subscription is not None:
                opened = subscriptions_sealing.open_sealed(envelope, subscription)
                return _secrets(opened.signing_secrets)
    except CryptoError:
        pass  # nothing to compare with: the push is refused as a bad signature all the same
    return []


def _log_replay(partner: Partner, delivery_id: uuid.UUID, *, matched: str) -> None:
    # Identifiers only: never the body or a secret (logs.py).
    log.warning(
        "inbound_replay_refused", partner=partner.id, delivery_id=str(delivery_id), matched=matched
    )


async def _refuse_our_message(
    services: InboundServices, partner: Partner, parsed: ParsedInbound
) -> None:
    """A document whose own id (`message_id`) is the id of one of our messages is our
    outbound (or subscriber) format coming back, not a message of the partner's."""
    message_id = _uuid(parsed.partner_ref) if parsed.partner_ref is not None else None
    if message_id is None:
        return
    async with services.db.read_sessions() as session:
        ours = await repository.is_own_message(session, message_id)
    if ours:
        log.warning(
            "inbound_replay_refused",
            partner=partner.id,
            message_id=str(message_id),
            matched="our message id",
        )
        raise OwnDeliveryRefused(
            "the document's message id is the id of one of our own messages: a message we "
            "sent is never accepted back as a partner's message (suspected replay)"
        )


Reader = Callable[[dict[str, Any], PartnerView], ParsedInbound]


def _reader(partner: Partner, services: InboundServices) -> tuple[PartnerView, Reader]:
    """The partner as its adapter sees it, and the adapter's `parse_inbound`."""
    try:
        adapter = services.adapters.get(partner.adapter)
        view = partner_view(partner, envelope=services.vault.envelope, registry=services.adapters)
    except (AdapterConfigError, CryptoError):
        raise Conflict(
            f"partner {partner.id}'s adapter or config cannot be used; an operator must fix it"
        ) from None
    reader: Reader | None = getattr(adapter, "parse_inbound", None)
    if reader is None:
        raise _not_pushing(partner.adapter)
    return view, reader


def _not_pushing(adapter: str) -> Conflict:
    return Conflict(f"this partner does not push messages (its adapter, {adapter}, only receives)")


def _document(push: InboundPush, keys: ExchangeKeyProvider | None) -> dict[str, Any]:
    """The JSON object in the body, decrypted first when it is a JWE."""
    media_type = push.content_type.split(";")[0].strip().lower()
    if media_type == JSON_TYPE:
        raw = push.body
    elif media_type == JOSE_TYPE:
        raw = decryption.decrypt(push.body, keys)
    else:
        raise UnsupportedMediaType(
            "send application/json, or application/jose (a compact JWE to our exchange key)"
        )
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UnprocessableContent(
            "the body is not JSON",
            errors=[FieldError(loc=["body"], msg="invalid JSON", type="json_invalid")],
        ) from None
    if not isinstance(document, dict):
        raise UnprocessableContent(
            "the body must be a JSON object",
            errors=[FieldError(loc=["body", "$"], msg="must be an object", type="model_type")],
        )
    return document


def _parse(
    reader: Reader, document: dict[str, Any], partner: PartnerView, *, adapter: str
) -> ParsedInbound:
    try:
        return reader(document, partner)
    except InboundNotSupportedError:
        raise _not_pushing(adapter) from None
    except WireFormatError as exc:
        # Paths into the partner's document and messages that never quote a value.
        errors = [
            FieldError(loc=["body", p.path], msg=p.message, type="wire_format")
            for p in exc.problems
        ]
        count = len(errors)
        raise UnprocessableContent(
            f"the document does not fit the {adapter} format: {count} problem"
            f"{'s' if count != 1 else ''}, the first at {exc.path}",
            errors=errors,
        ) from None


def _duplicate(seen: repository.Received) -> InboundOutcome:
    receipt = InboundReceipt(id=seen.message_id, duplicate=True, received_at=seen.received_at)
    return InboundOutcome(200, receipt)


async def _store(
    services: InboundServices,
    partner: Partner,
    push: InboundPush,
    parsed: ParsedInbound,
    *,
    now: datetime,
) -> InboundOutcome:
    vault, message = services.vault, parsed.message
    stored = sealed_message(
        message,
        vault=vault,
        direction="inbound",
        status=RECEIVED,
        now=now,
        thread=None,  # read in the transaction below
        source_partner_id=partner.id,
        partner_ref=parsed.partner_ref,
    )
    message_id, row, kinds = stored.id, stored.row, stored.kinds
    audit = AuditRecord(
        action=AuditAction.COLLECTION,
        event=RECEIVED_EVENT,
        actor=f"partner:{partner.id}",
        subject_type="message",
        subject_id=str(message_id),
        details={
            "direction": "inbound",
            "type": message.type.value,
            "subject_kinds": kinds,
            "partner": partner.id,
        },
        occurred_at=now,
    )
    webhook_id = push.headers.webhook_id
    try:
        async with services.db.write_sessions() as session, session.begin():
            # Another request may have committed it since our read: cheap to ask again.
            seen = await repository.find(session, partner.id, webhook_id)
            if seen is not None:
                return _duplicate(seen)
            row["case_digest"] = await _thread(session, vault, parsed)
            # The audit entry first: its seq, handed out under the chain head's lock, is
            # the message's place in commit order (Message.seq, the pull feed).
            (row["seq"],) = await append(session, [audit], now=now)
            await messages_repository.insert_messages(session, [row])
            await messages_repository.insert_identifiers(session, stored.identifier_rows)
            await repository.insert_entry(
                session,
                {
                    "id": new_id(),
                    "partner_id": partner.id,
                    "webhook_id": webhook_id,
                    "message_id": message_id,
                    "received_at": now,
                },
            )
            deliveries = await deliveries_for(session, row, now=now)
            await insert_deliveries(session, deliveries)
            # A SIRENE request or hit opens a supplementary-information request; a reply
            # carrying a known reference answers one.
            effect = await apply_inbound(
                session,
                message_id=message_id,
                content=message,
                source_partner_id=partner.id,
                received_at=now,
                envelope=vault.envelope,
            )
    except IntegrityError:
        # Lost the race on the inbox key to a concurrent push of the same webhook-id.
        async with services.db.read_sessions() as session:
            seen = await repository.find(session, partner.id, webhook_id)
        if seen is None:
            raise Conflict("the message conflicts with stored data") from None
        return _duplicate(seen)
    if deliveries and services.on_committed is not None:
        services.on_committed()
    return InboundOutcome(
        202,
        InboundReceipt(id=message_id, duplicate=False, received_at=now),
        subject_kinds=tuple(kinds),
        request_answered_after=effect.answered_after if effect is not None else None,
    )


async def _thread(
    session: AsyncSession, vault: MessageVault, parsed: ParsedInbound
) -> bytes | None:
    """The case digest: the message's own case_ref, else the thread of what it answers."""
    message = parsed.message
    if message.case_ref is not None:
        return vault.case_ref_digest(message.case_ref)
    if message.in_reply_to is not None:
        return await messages_repository.case_digest_of(session, message.in_reply_to)
    return None
