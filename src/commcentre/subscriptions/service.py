"""Subscription rules: ownership, the callback's network, sealing, and the dispatcher's view.

A subscription belongs to the API client that made it: only it (or an admin)
sees, changes or deletes it; anyone else gets 404. Changes are audited as
alterations, naming fields but never secret values. Services flush; the
caller commits.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.adapters.base import PartnerView
from commcentre.adapters.http import HttpPushConfig
from commcentre.adapters.netguard import IPNetwork
from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.auth.deps import Principal
from commcentre.auth.scopes import Scope
from commcentre.crypto import CryptoError, Envelope
from commcentre.destinations import DestinationRules
from commcentre.errors import Conflict, FieldError, Forbidden, NotFound, UnprocessableContent
from commcentre.ids import new_id
from commcentre.messages.service import MessageVault
from commcentre.partners import repository as partners_repository
from commcentre.partners.schemas import generate_signing_secret, secret_hints
from commcentre.secret_strength import refuse_weak_signing_secrets
from commcentre.subscriptions import repository, sealing
from commcentre.subscriptions.models import Subscription
from commcentre.subscriptions.schemas import (
    SubscriptionCreate,
    SubscriptionEvent,
    SubscriptionFilter,
    SubscriptionOut,
    SubscriptionPatch,
)
from commcentre.subscriptions.sealing import SubscriptionSecrets

CREATE_OPERATION = "POST /v1/subscriptions"
DISABLED_REASON_MAX = 200
RECIPIENT_PREFIX = "subscription:"


def destination_key(subscription_id: uuid.UUID) -> str:
    """How the dispatcher names a subscription (circuit breaker, audit recipient)."""
    return f"{RECIPIENT_PREFIX}{subscription_id}"


@dataclass(frozen=True, slots=True)
class CreatedSubscription:
    """A new subscription as shown, and the signing secret generated for it (shown once)."""

    subscription: SubscriptionOut
    generated_secret: str | None


# -- views ------------------------------------------------------------------------------------


def subscription_out(subscription: Subscription, *, envelope: Envelope) -> SubscriptionOut:
    """The API view: signing secrets as hints, the case_ref from the sealed copy."""
    problem: str | None = None
    secrets: list[str] = []
    case_ref: str | None = None
    try:
        opened = sealing.open_sealed(envelope, subscription)
    except CryptoError:
        problem = "the sealed secrets cannot be opened (tampered, or their key left the keyring)"
    else:
        secrets, case_ref = opened.signing_secrets, opened.case_ref
    shown = SubscriptionFilter.model_validate({**(subscription.filter or {}), "case_ref": case_ref})
    return SubscriptionOut(
        id=subscription.id,
        owner=subscription.client_id,
        name=subscription.name,
        url=subscription.url,
        filter=shown,
        signing_secrets=secret_hints(secrets),
        sealed_problem=problem,
        enabled=subscription.enabled,
        disabled_reason=subscription.disabled_reason,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
    )


def subscription_view(
    subscription: Subscription, *, envelope: Envelope, networks: Sequence[IPNetwork]
) -> PartnerView:
    """What the webhook adapter delivers to (for the dispatcher, never the API).

    Raises CryptoError when the sealed secrets fail to open.
    """
    opened = sealing.open_sealed(envelope, subscription)
    return PartnerView(
        id=destination_key(subscription.id),
        name=subscription.name,
        country=None,
        config=HttpPushConfig(url=subscription.url),
        signing_secrets=tuple(SecretStr(s) for s in opened.signing_secrets),
        public_jwk=None,
        allow_loopback=False,
        allow_networks=tuple(networks),
    )


# -- checks -----------------------------------------------------------------------------------


# Events about requests carry request metadata: only who may manage requests gets them.
_EVENT_SCOPES = {
    SubscriptionEvent.REQUEST_OVERDUE: Scope.REQUESTS_MANAGE,
    SubscriptionEvent.REQUEST_EAW_DECISION_OVERDUE: Scope.REQUESTS_MANAGE,
    SubscriptionEvent.REQUEST_EAW_SURRENDER_OVERDUE: Scope.REQUESTS_MANAGE,
}


def _check_events(criteria: SubscriptionFilter, principal: Principal) -> None:
    for event in criteria.events:
        scope = _EVENT_SCOPES.get(event)
        if scope is not None and not principal.has(scope):
            raise Forbidden(f"subscribing to {event} needs the scope {scope.value}")


async def _check_filter(session: AsyncSession, criteria: SubscriptionFilter) -> None:
    if not criteria.partners:
        return
    known = await partners_repository.existing_ids(session, criteria.partners)
    unknown = [p for p in criteria.partners if p not in known]
    if unknown:
        msg = f"unknown partner(s): {', '.join(unknown)}"
        raise UnprocessableContent(
            f"invalid input at body.filter.partners: {msg}",
            errors=[FieldError(loc=["body", "filter", "partners"], msg=msg, type="unknown")],
        )


# -- reading ----------------------------------------------------------------------------------


async def get_owned(
    session: AsyncSession, subscription_id: uuid.UUID, *, principal: Principal
) -> Subscription:
    """A live subscription this client owns (any, for an admin); else 404."""
    subscription = await repository.get_live(session, subscription_id)
    if subscription is None or (
        not principal.is_admin and subscription.client_id != principal.client_id
    ):
        raise NotFound(f"subscription {subscription_id} does not exist")
    return subscription


async def list_subscriptions(
    session: AsyncSession, *, principal: Principal, after: uuid.UUID | None, limit: int
) -> Sequence[Subscription]:
    owner = None if principal.is_admin else principal.client_id
    return await repository.list_page(session, owner=owner, after=after, limit=limit)


# -- changing ---------------------------------------------------------------------------------


async def create_subscription(
    session: AsyncSession,
    body: SubscriptionCreate,
    *,
    vault: MessageVault,
    destinations: DestinationRules,
    principal: Principal,
    now: datetime,
) -> CreatedSubscription:
    """Register a subscription; without signing secrets one is generated (returned once)."""
    _check_events(body.filter, principal)
    await destinations.check_subscriber_url(body.url, loc=["body", "url"])
    if destinations.prod:
        refuse_weak_signing_secrets(body.signing_secrets, loc=["body", "signing_secrets"])
    await _check_filter(session, body.filter)
    signing_secrets = [s.get_secret_value() for s in body.signing_secrets]
    generated = None
    if not signing_secrets:
        generated = generate_signing_secret()
        signing_secrets = [generated]
    case_ref = body.filter.case_ref
    subscription = Subscription(
        id=new_id(),
        client_id=principal.client_id,
        name=body.name,
        url=body.url,
        filter=body.filter.routing_metadata(),
        case_digest=vault.case_ref_digest(case_ref) if case_ref is not None else None,
        enabled=body.enabled,
        disabled_reason=None if body.enabled else f"disabled by {principal.actor}"[:200],
        created_at=now,
        updated_at=now,
        deleted_at=None,
    )
    sealing.seal_into(vault.envelope, subscription, SubscriptionSecrets(signing_secrets, case_ref))
    repository.add(session, subscription)
    await session.flush()
    details = {
        **{f"filter_{name}": list(values) for name, values in subscription.filter.items()},
        "case_ref": case_ref is not None,
        "enabled": subscription.enabled,
        "signing_secrets": len(signing_secrets),
    }
    await _changed(
        session, subscription, "subscription.created", details, actor=principal.actor, now=now
    )
    return CreatedSubscription(subscription_out(subscription, envelope=vault.envelope), generated)


async def update_subscription(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    patch: SubscriptionPatch,
    *,
    vault: MessageVault,
    destinations: DestinationRules,
    principal: Principal,
    now: datetime,
) -> Subscription:
    """Apply the fields given; secrets and case_ref are resealed when either changes."""
    subscription = await get_owned(session, subscription_id, principal=principal)
    given = patch.model_fields_set
    if destinations.prod and patch.signing_secrets is not None:
        refuse_weak_signing_secrets(patch.signing_secrets, loc=["body", "signing_secrets"])
    if patch.url is not None:
        await destinations.check_subscriber_url(patch.url, loc=["body", "url"])
        subscription.url = patch.url
    if patch.filter is not None:
        _check_events(patch.filter, principal)
        await _check_filter(session, patch.filter)
    if patch.filter is not None or patch.signing_secrets is not None:
        _reseal(subscription, patch, vault=vault)
    if patch.name is not None:
        subscription.name = patch.name
    if patch.enabled is True:
        subscription.enabled, subscription.disabled_reason = True, None
    elif patch.enabled is False and subscription.enabled:
        subscription.enabled = False
        subscription.disabled_reason = f"disabled by {principal.actor}"[:DISABLED_REASON_MAX]
    fields = sorted(given)
    if fields:
        subscription.updated_at = now
        await repository.save(session, subscription)
        details = {"fields": fields, "enabled": subscription.enabled}
        await _changed(
            session, subscription, "subscription.updated", details, actor=principal.actor, now=now
        )
    return subscription


def _reseal(subscription: Subscription, patch: SubscriptionPatch, *, vault: MessageVault) -> None:
    try:
        stored = sealing.open_sealed(vault.envelope, subscription)
    except CryptoError:
        raise Conflict(
            f"subscription {subscription.id}'s sealed secrets cannot be opened; "
            "delete it and create a new one"
        ) from None
    signing_secrets, case_ref = stored.signing_secrets, stored.case_ref
    if patch.signing_secrets is not None:
        signing_secrets = [s.get_secret_value() for s in patch.signing_secrets]
    if patch.filter is not None:
        case_ref = patch.filter.case_ref
        subscription.filter = patch.filter.routing_metadata()
        subscription.case_digest = vault.case_ref_digest(case_ref) if case_ref is not None else None
    sealing.seal_into(vault.envelope, subscription, SubscriptionSecrets(signing_secrets, case_ref))


async def delete_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, *, principal: Principal, now: datetime
) -> None:
    """Soft delete: it matches nothing more; its open deliveries become dead letters."""
    subscription = await get_owned(session, subscription_id, principal=principal)
    subscription.deleted_at = now
    subscription.updated_at = now
    await repository.save(session, subscription)
    await _changed(
        session, subscription, "subscription.deleted", {}, actor=principal.actor, now=now
    )


async def disable_subscription(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    reason: str,
    now: datetime,
    actor: str = "system:dispatcher",
) -> bool:
    """Stop delivering to a subscriber (it answered 410 Gone); False when it already was."""
    subscription = await repository.get_any(session, subscription_id)
    if subscription is None or not subscription.enabled:
        return False
    subscription.enabled = False
    subscription.disabled_reason = reason[:DISABLED_REASON_MAX]
    subscription.updated_at = now
    await repository.save(session, subscription)
    details = {"reason": subscription.disabled_reason}
    await _changed(session, subscription, "subscription.disabled", details, actor=actor, now=now)
    return True


async def _changed(
    session: AsyncSession,
    subscription: Subscription,
    event: str,
    details: Mapping[str, object],
    *,
    actor: str,
    now: datetime,
) -> None:
    record = AuditRecord(
        action=AuditAction.ALTERATION,
        event=event,
        actor=actor,
        subject_type="subscription",
        subject_id=str(subscription.id),
        details={"owner": str(subscription.client_id), **details},
        occurred_at=now,
    )
    await append(session, [record], now=now)
