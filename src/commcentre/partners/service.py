"""Partner rules: registration, changes, disabling, and the decrypted view for adapters.

Every change bumps the routing version (other processes reload their routing
snapshot) and is audited as an alteration, with field names but never values
of secrets. Services flush; the caller commits.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.adapters.base import AdapterConfigError, PartnerView
from commcentre.adapters.http import HttpPushConfig
from commcentre.adapters.netguard import IPNetwork
from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.crypto import CryptoError, Envelope
from commcentre.destinations import DestinationRules
from commcentre.errors import Conflict, NotFound
from commcentre.ids import new_id
from commcentre.partners import repository, sealing
from commcentre.partners.adapter_config import AdapterCatalog, adapter_config, checked_config
from commcentre.partners.models import Partner
from commcentre.partners.schemas import (
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
    "update_partner",
]

CREATE_OPERATION = "POST /v1/partners"
DISABLED_REASON_MAX = 200


@dataclass(frozen=True, slots=True)
class CreatedPartner:
    """A new partner as shown, and the signing secret generated for it (shown once)."""

    partner: PartnerOut
    generated_secret: str | None


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
        signing_secrets=tuple(SecretStr(s) for s in opened.signing_secrets),
        public_jwk=partner.public_jwk,
        allow_loopback=partner.allow_loopback and loopback_permitted,
        allow_networks=tuple(networks),
    )


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
    secrets: list[str] = []
    try:
        opened = sealing.open_sealed(envelope, partner)
    except CryptoError:
        problem = "the sealed config cannot be opened (tampered, or its key left the keyring)"
    else:
        secrets = opened.signing_secrets
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
        signing_secrets=secret_hints(secrets),
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
    """Register a partner; without signing secrets one is generated (returned once)."""
    config = checked_config(registry, body.adapter, body.config)
    if destinations.prod:
        refuse_weak_signing_secrets(body.signing_secrets, loc=["body", "signing_secrets"])
    await _check_destination(config, allow_loopback=body.allow_loopback, destinations=destinations)
    if await repository.exists(session, body.id):
        raise Conflict(f"partner {body.id} already exists")
    signing_secrets = [s.get_secret_value() for s in body.signing_secrets]
    generated = None
    if not signing_secrets:
        generated = generate_signing_secret()
        signing_secrets = [generated]
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
    opened = PartnerSecrets(sealing.revealed_config(config), signing_secrets)
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
        "signing_secrets": len(signing_secrets),
        "public_jwk": body.public_jwk is not None,
    }
    await _changed(session, partner, "partner.created", details, actor=actor, now=now)
    out = partner_out(partner, envelope=envelope, registry=registry)
    return CreatedPartner(out, generated)


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
    if destinations.prod and patch.signing_secrets is not None:
        refuse_weak_signing_secrets(patch.signing_secrets, loc=["body", "signing_secrets"])
    checked = None
    if "config" in given or "signing_secrets" in given:
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


def _reseal(
    partner: Partner, patch: PartnerPatch, *, registry: AdapterCatalog, envelope: Envelope
) -> BaseModel | None:
    """Reseal config and signing secrets with the patch applied; a new config as checked."""
    try:
        stored = sealing.open_sealed(envelope, partner)
    except CryptoError:
        raise Conflict(
            f"partner {partner.id}'s sealed config cannot be opened; it cannot be changed"
        ) from None
    config, signing_secrets = stored.config, stored.signing_secrets
    checked = None
    if patch.config is not None:
        merged = sealing.keep_masked(patch.config, stored.config)
        checked = checked_config(registry, partner.adapter, merged)
        config = sealing.revealed_config(checked)
    if patch.signing_secrets is not None:
        signing_secrets = [s.get_secret_value() for s in patch.signing_secrets]
    sealed = sealing.seal(envelope, partner.uid, PartnerSecrets(config, signing_secrets))
    sealing.store(partner, sealed)
    return checked


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
