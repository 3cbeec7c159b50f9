"""Partner rules: registration, changes, disabling, and the decrypted view for adapters.

Every change bumps the routing version (other processes reload their routing
snapshot) and is audited as an alteration, with field names but never values
of secrets. Services flush; the caller commits.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.adapters.base import AdapterConfigError, PartnerView
from commcentre.adapters.http import HttpPushConfig
from commcentre.adapters.netguard import IPNetwork
from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.crypto import CryptoError, Envelope
from commcentre.destinations import DestinationRules
from commcentre.errors import Conflict, FieldError, NotFound, UnprocessableContent
from commcentre.ids import new_id
from commcentre.partners import repository, sealing
from commcentre.partners.adapter_config import AdapterCatalog, adapter_config, checked_config
from commcentre.partners.models import Partner
from commcentre.partners.schemas import (
    MAX_SIGNING_SECRETS,
    PartnerCreate,
    PartnerOut,
    PartnerPatch,
    generate_signing_secret,
    secret_hints,
)
from commcentre.partners.sealing import PartnerSecrets
from commcentre.routing import repository as routing_repository
from commcentre.secret_strength import refuse_weak_signing_secrets

__all__ = [
    "AdapterCatalog",
    "CreatedPartner",
    "create_partner",
    "disable_partner",
    "enable_partner",
    "get_partner",
    "list_partners",
    "partner_out",
    "partner_view",
    "rotate_secret",
    "update_partner",
]

CREATE_OPERATION = "POST /v1/partners"
DISABLED_REASON_MAX = 200


@dataclass(frozen=True, slots=True)
class CreatedPartner:
    """A new partner as shown, and the signing secrets generated for it (shown once)."""

    partner: PartnerOut
    generated_inbound_secret: str | None
    generated_outbound_secret: str | None = None


def partner_view(
    partner: Partner,
    *,
    envelope: Envelope,
    registry: AdapterCatalog,
    networks: Sequence[IPNetwork] = (),
    loopback_permitted: bool = True,
) -> PartnerView:
    """The decrypted partner an adapter delivers with (for the dispatcher, never the API).

    `networks` (Settings.partner_networks) are the private networks its URL may
    resolve to; `loopback_permitted` is False in prod, where `allow_loopback` is void.
    Raises CryptoError when the sealed config fails to open and AdapterConfigError
    when the adapter is not installed or its config no longer validates.
    """
    opened = sealing.open_sealed(envelope, partner)
    return PartnerView(
        id=partner.id,
        name=partner.name,
        country=partner.country,
        config=adapter_config(registry, partner.adapter, opened.config),
        # Adapters sign what they send: the outbound secrets, never the inbound ones.
        signing_secrets=tuple(SecretStr(s) for s in opened.outbound_secrets),
        public_jwk=partner.public_jwk,
        allow_loopback=partner.allow_loopback and loopback_permitted,
        allow_networks=tuple(networks),
    )


def _refuse_weak_secrets(
    inbound: Sequence[SecretStr] | None,
    deprecated_inbound: Sequence[SecretStr] | None,
    outbound: Sequence[SecretStr] | None,
) -> None:
    """Prod: 422 at the field and index of the first weak or published secret given."""
    for name, given in (
        ("inbound_secrets", inbound),
        ("signing_secrets", deprecated_inbound),
        ("outbound_secrets", outbound),
    ):
        if given:
            refuse_weak_signing_secrets(given, loc=["body", name])


async def _check_destination(
    config: BaseModel, *, allow_loopback: bool, destinations: DestinationRules
) -> None:
    """422 for a URL the dispatcher would refuse (in prod: after resolving it)."""
    destinations.check_allow_loopback(allow_loopback)
    if isinstance(config, HttpPushConfig):
        await destinations.check_partner_url(
            config.url, allow_loopback=allow_loopback, loc=["body", "config", "url"]
        )


def partner_out(partner: Partner, *, envelope: Envelope, registry: AdapterCatalog) -> PartnerOut:
    """The API view: config with secret fields masked, signing secrets as hints."""
    config: dict[str, Any] | None = None
    problem: str | None = None
    inbound: list[str] = []
    outbound: list[str] = []
    try:
        opened = sealing.open_sealed(envelope, partner)
    except CryptoError:
        problem = "the sealed config cannot be opened (tampered, or its key left the keyring)"
    else:
        inbound, outbound = opened.inbound_secrets, opened.outbound_secrets
        try:
            config = sealing.masked_config(adapter_config(registry, partner.adapter, opened.config))
        except AdapterConfigError as exc:
            problem = str(exc) if exc.__cause__ is None else "the stored config no longer validates"
    return PartnerOut(
        id=partner.id,
        name=partner.name,
        country=partner.country,
        channels=list(partner.channels),
        adapter=partner.adapter,
        config=config,
        config_problem=problem,
        inbound_secrets=secret_hints(inbound),
        outbound_secrets=secret_hints(outbound),
        signing_secrets=secret_hints(inbound),
        public_jwk=partner.public_jwk,
        enabled=partner.enabled,
        disabled_reason=partner.disabled_reason,
        allow_loopback=partner.allow_loopback,
        rate_limit_per_second=partner.rate_limit_per_second,
        rate_burst=partner.rate_burst,
        created_at=partner.created_at,
        updated_at=partner.updated_at,
    )


async def get_partner(session: AsyncSession, partner_id: str) -> Partner:
    partner = await repository.get(session, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} does not exist")
    return partner


async def list_partners(
    session: AsyncSession, *, after: str | None, limit: int
) -> Sequence[Partner]:
    return await repository.list_page(session, after=after, limit=limit)


async def create_partner(
    session: AsyncSession,
    body: PartnerCreate,
    *,
    registry: AdapterCatalog,
    envelope: Envelope,
    destinations: DestinationRules,
    actor: str,
    now: datetime,
) -> CreatedPartner:
    """Register a partner; a direction without secrets gets one generated (returned once)."""
    config = checked_config(registry, body.adapter, body.config)
    if destinations.prod:
        _refuse_weak_secrets(body.inbound_secrets, body.signing_secrets, body.outbound_secrets)
    await _check_destination(config, allow_loopback=body.allow_loopback, destinations=destinations)
    if await repository.exists(session, body.id):
        raise Conflict(f"partner {body.id} already exists")
    inbound = [s.get_secret_value() for s in body.given_inbound_secrets]
    outbound = [s.get_secret_value() for s in body.outbound_secrets]
    # Generated independently: knowing one direction's secret tells nothing of the other's.
    generated_inbound = None if inbound else generate_signing_secret()
    generated_outbound = None if outbound else generate_signing_secret()
    inbound = inbound or [str(generated_inbound)]
    outbound = outbound or [str(generated_outbound)]
    partner = Partner(
        id=body.id,
        uid=new_id(),
        name=body.name,
        country=body.country,
        channels=[c.value for c in body.channels],
        adapter=body.adapter,
        public_jwk=body.public_jwk,
        enabled=body.enabled,
        disabled_reason=None,
        allow_loopback=body.allow_loopback,
        rate_limit_per_second=body.rate_limit_per_second,
        rate_burst=body.rate_burst,
        rate_tat=None,
        created_at=now,
        updated_at=now,
    )
    opened = PartnerSecrets(sealing.revealed_config(config), inbound, outbound)
    sealing.store(partner, sealing.seal(envelope, partner.uid, opened))
    repository.add(session, partner)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"partner {body.id} already exists") from None
    details = {
        "adapter": body.adapter,
        "country": body.country,
        "channels": partner.channels,
        "enabled": body.enabled,
        "inbound_secrets": len(inbound),
        "outbound_secrets": len(outbound),
        "public_jwk": body.public_jwk is not None,
    }
    await _changed(session, partner, "partner.created", details, actor=actor, now=now)
    out = partner_out(partner, envelope=envelope, registry=registry)
    return CreatedPartner(out, generated_inbound, generated_outbound)


async def update_partner(
    session: AsyncSession,
    partner_id: str,
    patch: PartnerPatch,
    *,
    registry: AdapterCatalog,
    envelope: Envelope,
    destinations: DestinationRules,
    actor: str,
    now: datetime,
) -> Partner:
    """Apply the fields given; config is checked again and everything secret is resealed.

    A new config or `allow_loopback` has its destination checked again.
    """
    partner = await get_partner(session, partner_id)
    given = patch.model_fields_set
    if destinations.prod:
        _refuse_weak_secrets(patch.inbound_secrets, patch.signing_secrets, patch.outbound_secrets)
    checked = None
    if given & {"config", "inbound_secrets", "outbound_secrets", "signing_secrets"}:
        checked = _reseal(partner, patch, registry=registry, envelope=envelope)
    if "config" in given or "allow_loopback" in given:
        allow_loopback = (
            bool(patch.allow_loopback) if "allow_loopback" in given else partner.allow_loopback
        )
        if checked is not None:
            await _check_destination(
                checked, allow_loopback=allow_loopback, destinations=destinations
            )
        else:
            await _check_stored_destination(
                partner,
                allow_loopback=allow_loopback,
                registry=registry,
                envelope=envelope,
                destinations=destinations,
            )
    for name in ("name", "country", "public_jwk", "allow_loopback", "rate_burst"):
        if name in given:
            setattr(partner, name, getattr(patch, name))
    if "rate_limit_per_second" in given:
        partner.rate_limit_per_second = patch.rate_limit_per_second
        partner.rate_tat = None
    if patch.channels is not None:
        partner.channels = [c.value for c in patch.channels]
    if patch.enabled is True:
        partner.enabled, partner.disabled_reason = True, None
    elif patch.enabled is False and partner.enabled:
        partner.enabled, partner.disabled_reason = False, f"disabled by {actor}"[:200]
    fields = sorted(given)
    if fields:
        partner.updated_at = now
        await repository.save(session, partner)
        details = {"fields": fields, "enabled": partner.enabled}
        await _changed(session, partner, "partner.updated", details, actor=actor, now=now)
    return partner


async def _check_stored_destination(
    partner: Partner,
    *,
    allow_loopback: bool,
    registry: AdapterCatalog,
    envelope: Envelope,
    destinations: DestinationRules,
) -> None:
    try:
        stored = sealing.open_sealed(envelope, partner)
        config = adapter_config(registry, partner.adapter, stored.config)
    except (CryptoError, AdapterConfigError):
        # Undeliverable either way; only the flag changes, and prod refuses it when set.
        destinations.check_allow_loopback(allow_loopback)
        return
    await _check_destination(config, allow_loopback=allow_loopback, destinations=destinations)


def _open_for_change(partner: Partner, *, envelope: Envelope) -> PartnerSecrets:
    """The partner's sealed config and secrets, or 409 when they no longer open."""
    try:
        return sealing.open_sealed(envelope, partner)
    except CryptoError:
        raise Conflict(
            f"partner {partner.id}'s sealed config cannot be opened; it cannot be changed"
        ) from None


def _reseal(
    partner: Partner, patch: PartnerPatch, *, registry: AdapterCatalog, envelope: Envelope
) -> BaseModel | None:
    """Reseal config and signing secrets with the patch applied; a new config as checked."""
    stored = _open_for_change(partner, envelope=envelope)
    config, inbound, outbound = stored.config, stored.inbound_secrets, stored.outbound_secrets
    checked = None
    if patch.config is not None:
        merged = sealing.keep_masked(patch.config, stored.config)
        checked = checked_config(registry, partner.adapter, merged)
        config = sealing.revealed_config(checked)
    if patch.given_inbound_secrets is not None:
        inbound = [s.get_secret_value() for s in patch.given_inbound_secrets]
    if patch.outbound_secrets is not None:
        outbound = [s.get_secret_value() for s in patch.outbound_secrets]
    if set(inbound) & set(outbound):
        # Only one direction was given and it takes a secret the other direction holds.
        field = "outbound_secrets" if patch.outbound_secrets is not None else "inbound_secrets"
        raise UnprocessableContent(
            "a secret may not both verify inbound pushes and sign outbound deliveries: "
            "give each direction its own",
            errors=[
                FieldError(
                    loc=["body", field],
                    msg="is a secret of the other direction",
                    type="secret_reused",
                )
            ],
        )
    sealed = sealing.seal(envelope, partner.uid, PartnerSecrets(config, inbound, outbound))
    sealing.store(partner, sealed)
    return checked


Direction = Literal["inbound", "outbound"]


async def rotate_secret(
    session: AsyncSession,
    partner_id: str,
    *,
    direction: Direction,
    finish: bool,
    envelope: Envelope,
    actor: str,
    now: datetime,
) -> str | None:
    """Rotate one direction's secrets, the other left alone; audited like any change.

    Without `finish`: a new secret is generated and put first, the current ones kept
    (both work while the partner switches); it is returned, to be shown once. With
    `finish`: only the newest (first) secret is kept, and None is returned.
    """
    partner = await get_partner(session, partner_id)
    stored = _open_for_change(partner, envelope=envelope)
    current = stored.inbound_secrets if direction == "inbound" else stored.outbound_secrets
    generated = None
    if finish:
        if not current:
            raise Conflict(f"partner {partner.id} has no {direction} secret to keep")
        updated = current[:1]
    else:
        generated = generate_signing_secret()
        updated = [generated, *current][:MAX_SIGNING_SECRETS]
    inbound = updated if direction == "inbound" else stored.inbound_secrets
    outbound = updated if direction == "outbound" else stored.outbound_secrets
    sealed = sealing.seal(envelope, partner.uid, PartnerSecrets(stored.config, inbound, outbound))
    sealing.store(partner, sealed)
    partner.updated_at = now
    await repository.save(session, partner)
    details = {
        "fields": [f"{direction}_secrets"],
        "enabled": partner.enabled,
        f"{direction}_secrets": len(updated),
    }
    await _changed(session, partner, "partner.updated", details, actor=actor, now=now)
    return generated


async def disable_partner(
    session: AsyncSession,
    partner_id: str,
    *,
    reason: str,
    now: datetime,
    actor: str = "system:dispatcher",
) -> bool:
    """Stop routing to a partner (e.g. it answered 410 Gone); False when it already was."""
    partner = await get_partner(session, partner_id)
    if not partner.enabled:
        return False
    partner.enabled = False
    partner.disabled_reason = reason[:DISABLED_REASON_MAX]
    partner.updated_at = now
    await repository.save(session, partner)
    details = {"reason": partner.disabled_reason}
    await _changed(session, partner, "partner.disabled", details, actor=actor, now=now)
    return True


async def enable_partner(
    session: AsyncSession, partner_id: str, *, actor: str, now: datetime
) -> bool:
    """Route to a partner again, clearing why it was disabled; False when it already was."""
    partner = await get_partner(session, partner_id)
    if partner.enabled:
        return False
    partner.enabled, partner.disabled_reason, partner.updated_at = True, None, now
    await repository.save(session, partner)
    await _changed(session, partner, "partner.enabled", {}, actor=actor, now=now)
    return True


async def _changed(
    session: AsyncSession,
    partner: Partner,
    event: str,
    details: Mapping[str, object],
    *,
    actor: str,
    now: datetime,
) -> None:
    await routing_repository.bump_version(session)
    record = AuditRecord(
        action=AuditAction.ALTERATION,
        event=event,
        actor=actor,
        subject_type="partner",
        subject_id=partner.id,
        details={"partner": partner.id, "name": partner.name, **details},
        occurred_at=now,
    )
    await append(session, [record], now=now)
