"""The current-client dependency: Bearer key -> Principal, with scope checks."""

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from commcentre.auth import repository
from commcentre.auth.keys import hash_api_key
from commcentre.auth.scopes import Scope
from commcentre.db import Database
from commcentre.errors import Forbidden, Unauthorized

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="commcentre"'}


@dataclass(frozen=True, slots=True)
class Principal:
    """The API client behind a request."""

    client_id: uuid.UUID
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"client:{self.client_id}"

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def has(self, scope: Scope) -> bool:
        return self.is_admin or scope in self.scopes


class Authenticator:
    """Resolves API keys, remembering good ones for a few seconds.

    The cache spares a query per request on the ingest path; a revoked key
    stops working within `ttl` seconds (and at once in the revoking process).
    """

    def __init__(self, db: Database, *, ttl: float) -> None:
        self._db = db
        self._ttl = ttl
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def authenticate(self, key: str) -> Principal | None:
        digest = hash_api_key(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        async with self._db.read_sessions() as session:
            client = await repository.get_by_key_hash(session, digest)
        if client is None or client.revoked_at is not None:
            self._cache.pop(digest, None)
            return None
        principal = Principal(client.id, client.name, frozenset(client.scopes))
        if self._ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def forget(self, client_id: uuid.UUID) -> None:
        for digest, (_, principal) in list(self._cache.items()):
            if principal.client_id == client_id:
                del self._cache[digest]


_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer ck_...`")

# For routes that authorise inline (see `authorize`): the same security scheme in the docs.
BEARER_SECURITY: dict[str, object] = {"security": [{"HTTPBearer": []}]}


async def _principal_for(request: Request, key: str | None) -> Principal:
    if not key:
        raise Unauthorized("missing bearer API key", headers=_CHALLENGE)
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(key)
    if principal is None:
        raise Unauthorized("unknown or revoked API key", headers=_CHALLENGE)
    return principal


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer API key", headers=_CHALLENGE)
    return await _principal_for(request, credentials.credentials)


async def authorize(request: Request, scope: Scope) -> Principal:
    """What `require(scope)` does, without the dependency machinery.

    For the ingest route only: FastAPI's dependency resolution costs more per
    request there than authentication itself. Declare `openapi_extra=BEARER_SECURITY`.
    """
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("missing bearer API key", headers=_CHALLENGE)
    principal = await _principal_for(request, key.strip())
    if not principal.has(scope):
        raise Forbidden(f"this API key lacks the scope {scope.value}")
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a client holding `scope` (or admin)."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has(scope):
            raise Forbidden(f"this API key lacks the scope {scope.value}")
        return principal

    return dependency


MessageWriter = Annotated[Principal, Depends(require(Scope.MESSAGES_WRITE))]
MessageReader = Annotated[Principal, Depends(require(Scope.MESSAGES_READ))]
AuditReader = Annotated[Principal, Depends(require(Scope.AUDIT_READ))]
