"""API client rules: creation, revocation, the bootstrap admin."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.auth import repository
from commcentre.auth.keys import MIN_KEY_LENGTH, generate_api_key, hash_api_key, key_hint
from commcentre.auth.models import ApiClient
from commcentre.auth.scopes import Scope
from commcentre.errors import Conflict, NotFound, UnprocessableContent
from commcentre.ids import new_id
from commcentre.subscriptions import repository as subscriptions_repository


@dataclass(frozen=True, slots=True)
class IssuedClient:
    """A new client and its key: the only time the key is ever shown."""

    client: ApiClient
    api_key: str


def parse_scopes(values: Sequence[str]) -> list[str]:
    """Known scopes, deduplicated, in a stable order; 422 for unknown ones."""
    try:
        scopes = {Scope(value) for value in values}
    except ValueError:
        known = ", ".join(scope.value for scope in Scope)
        raise UnprocessableContent(f"unknown scope; known scopes: {known}") from None
    if not scopes:
        raise UnprocessableContent("a client needs at least one scope")
    return sorted(scope.value for scope in scopes)


async def create_client(
    session: AsyncSession,
    *,
    name: str,
    scopes: Sequence[str],
    actor: str,
    now: datetime,
    api_key: str | None = None,
) -> IssuedClient:
    """Register a client; a key is generated unless one is given (bootstrap)."""
    key = api_key or generate_api_key()
    if len(key) < MIN_KEY_LENGTH:
        raise UnprocessableContent(f"an API key must be at least {MIN_KEY_LENGTH} characters")
    digest = hash_api_key(key)
    if await repository.get_by_key_hash(session, digest) is not None:
        raise Conflict("a client with this key already exists")
    client = ApiClient(
        id=new_id(),
        name=name,
        key_hash=digest,
        key_hint=key_hint(key),
        scopes=parse_scopes(scopes),
        created_at=now,
        revoked_at=None,
    )
    repository.add(session, client)
    await session.flush()
    await append(
        session,
        [
            AuditRecord(
                action=AuditAction.ALTERATION,
                event="client.created",
                actor=actor,
                subject_type="api_client",
                subject_id=str(client.id),
                details={"name": name, "scopes": client.scopes},
                occurred_at=now,
            )
        ],
        now=now,
    )
    return IssuedClient(client, key)


async def revoke_client(
    session: AsyncSession, client_id: uuid.UUID, *, actor: str, now: datetime
) -> ApiClient:
    client = await repository.get(session, client_id)
    if client is None:
        raise NotFound(f"client {client_id} does not exist")
    if client.revoked_at is None:
        await repository.revoke(session, client, at=now)
        # Its subscriptions stop with it: a revoked system receives nothing more.
        disabled = await subscriptions_repository.disable_for_client(
            session, client.id, reason="the owning API client was revoked", now=now
        )
        await append(
            session,
            [
                AuditRecord(
                    action=AuditAction.ALTERATION,
                    event="client.revoked",
                    actor=actor,
                    subject_type="api_client",
                    subject_id=str(client.id),
                    details={"subscriptions_disabled": len(disabled)},
                    occurred_at=now,
                )
            ],
            now=now,
        )
    return client


async def ensure_bootstrap_admin(session: AsyncSession, api_key: str, *, now: datetime) -> bool:
    """Create the `admin` client for this key unless it exists; True when created."""
    if await repository.get_by_key_hash(session, hash_api_key(api_key)) is not None:
        return False
    await create_client(
        session,
        name="admin",
        scopes=[Scope.ADMIN],
        actor="system:bootstrap",
        now=now,
        api_key=api_key,
    )
    return True
