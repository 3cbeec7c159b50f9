"""Stored signing secrets that prod would refuse today, found at startup.

Registration refuses weak secrets in prod (secret_strength), but partners and
subscriptions registered before (or in dev, on the same store) keep theirs.
Refusing to start over them would stop every delivery; instead prod names each
holder in a warning at startup, so that the operator rotates the secret.
"""

import uuid
from collections.abc import AsyncIterator

from commcentre.crypto import CryptoError, Envelope
from commcentre.db import Database
from commcentre.partners import repository as partners_repository
from commcentre.partners import sealing as partners_sealing
from commcentre.secret_strength import signing_secret_weakness
from commcentre.subscriptions import repository as subscriptions_repository
from commcentre.subscriptions import sealing as subscriptions_sealing

PAGE = 500


def _weak(secrets: list[str]) -> bool:
    return any(signing_secret_weakness(secret) is not None for secret in secrets)


async def weak_secret_holders(db: Database, envelope: Envelope) -> AsyncIterator[str]:
    """`partner:<id>` and `subscription:<id>` whose stored signing secrets are weak."""
    async with db.read_sessions() as session:
        after: str | None = None
        while True:
            partners = await partners_repository.list_page(session, after=after, limit=PAGE)
            for partner in partners:
                try:
                    opened = partners_sealing.open_sealed(envelope, partner)
                except CryptoError:
                    continue  # shown as config_problem on the partner already
                if _weak([*opened.inbound_secrets, *opened.outbound_secrets]):
                    yield f"partner:{partner.id}"
            if len(partners) < PAGE:
                break
            after = partners[-1].id
        since: uuid.UUID | None = None
        while True:
            subscriptions = await subscriptions_repository.list_page(
                session, owner=None, after=since, limit=PAGE
            )
            for subscription in subscriptions:
                try:
                    sealed = subscriptions_sealing.open_sealed(envelope, subscription)
                except CryptoError:
                    continue
                if _weak(sealed.signing_secrets):
                    yield f"subscription:{subscription.id}"
            if len(subscriptions) < PAGE:
                break
            since = subscriptions[-1].id
