"""HTTP routes of internal subscriptions (scope messages:read; owner or admin)."""

import uuid
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.auth.deps import MessageReader
from commcentre.db import ReadSessionDep, SessionDep
from commcentre.errors import Conflict, Forbidden, NotFound, UnprocessableContent, problem_responses
from commcentre.idempotency.headers import IdempotencyKeyHeader, fingerprint
from commcentre.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from commcentre.runtime import RuntimeDep
from commcentre.subscriptions import service
from commcentre.subscriptions.schemas import (
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionPatch,
)

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

_CURSOR_KIND = "subscriptions"
_OWNERSHIP = (
    "A subscription belongs to the API client that made it: another client gets 404 "
    "(an admin sees every subscription)."
)


@router.get(
    "",
    summary="List subscriptions",
    description=f"Live subscriptions ordered by id; secrets are never shown. {_OWNERSHIP}",
    responses=problem_responses(Forbidden, UnprocessableContent),
)
async def list_subscriptions(
    principal: MessageReader,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Page[SubscriptionOut]:
    after = _after(cursor) if cursor is not None else None
    rows = await service.list_subscriptions(session, principal=principal, after=after, limit=limit)
    envelope = runtime.vault.envelope
    items = [service.subscription_out(s, envelope=envelope) for s in rows]
    next_cursor = encode_cursor(_CURSOR_KIND, [str(items[-1].id)]) if len(items) == limit else None
    return Page[SubscriptionOut](items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionCreated,
    summary="Subscribe to inbound messages",
    description=(
        "Registers a callback that receives, as Standard Webhooks signed `message.inbound` "
        "events, every inbound message matching `filter` (each criterion given must match; "
        "an empty list matches anything). The callback must be https, or http to a "
        "configured internal subscriber network, and must not point at any other private "
        "address (in prod its host name is resolved now). Without `signing_secrets` one is "
        "generated and returned once in `generated_signing_secret`; in prod weak or "
        "published secrets are refused. Send an `Idempotency-Key` to make retries safe."
    ),
    responses=problem_responses(Forbidden, Conflict, UnprocessableContent),
)
async def create_subscription(
    body: SubscriptionCreate,
    principal: MessageReader,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    now = runtime.clock()
    generated: list[str] = []

    async def create(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        created = await service.create_subscription(
            session,
            body,
            vault=runtime.vault,
            destinations=runtime.destinations,
            principal=principal,
            now=now,
        )
        if created.generated_secret is not None:
            generated.append(created.generated_secret)
        # What the Idempotency-Key store keeps (in clear): never the secret, nor the
        # case_ref (sealed with the subscription; the answer takes it from the body).
        stored = created.subscription.model_dump(mode="json")
        if isinstance(stored.get("filter"), dict):
            stored["filter"] = {**stored["filter"], "case_ref": None}
        return 201, {**stored, "generated_signing_secret": None}

    outcome = await runtime.idempotent.run(
        client_id=principal.client_id,
        key=idempotency_key,
        operation=service.CREATE_OPERATION,
        fingerprint=fingerprint(service.CREATE_OPERATION, body.canonical()),
        now=now,
        create=create,
    )
    content = dict(outcome.body)
    if generated and not outcome.replayed:
        content["generated_signing_secret"] = generated[0]
    if isinstance(content.get("filter"), dict):
        # The same body (the fingerprint says so), so the same case_ref.
        content["filter"] = {**content["filter"], "case_ref": body.filter.case_ref}
    headers = {"Location": f"/v1/subscriptions/{content['id']}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(content, status_code=outcome.status_code, headers=headers)


@router.get(
    "/{subscription_id}",
    summary="Read a subscription",
    description=f"Signing secrets as a count and hints; the filter's case_ref shown. {_OWNERSHIP}",
    responses=problem_responses(Forbidden, NotFound, UnprocessableContent),
)
async def read_subscription(
    subscription_id: uuid.UUID,
    principal: MessageReader,
    session: ReadSessionDep,
    runtime: RuntimeDep,
) -> SubscriptionOut:
    subscription = await service.get_owned(session, subscription_id, principal=principal)
    return service.subscription_out(subscription, envelope=runtime.vault.envelope)


@router.patch(
    "/{subscription_id}",
    summary="Change a subscription",
    description=(
        "Only the fields given change. `filter` replaces the whole filter; "
        "`signing_secrets` replaces the list (rotation: send the new and the old secret, "
        "then the new one alone); `enabled: true` clears `disabled_reason` (e.g. after the "
        f"subscriber answered 410 Gone). {_OWNERSHIP}"
    ),
    responses=problem_responses(Forbidden, NotFound, Conflict, UnprocessableContent),
)
async def update_subscription(
    subscription_id: uuid.UUID,
    body: SubscriptionPatch,
    principal: MessageReader,
    session: SessionDep,
    runtime: RuntimeDep,
) -> SubscriptionOut:
    subscription = await service.update_subscription(
        session,
        subscription_id,
        body,
        vault=runtime.vault,
        destinations=runtime.destinations,
        principal=principal,
        now=runtime.clock(),
    )
    await session.commit()
    if subscription.enabled and runtime.dispatcher is not None:
        runtime.dispatcher.wake()  # re-enabled: its waiting deliveries may go now
    return service.subscription_out(subscription, envelope=runtime.vault.envelope)


@router.delete(
    "/{subscription_id}",
    status_code=204,
    summary="Delete a subscription",
    description=(
        "It matches no message from now on; deliveries still open for it become dead "
        f"letters (reason: subscription deleted). {_OWNERSHIP}"
    ),
    responses=problem_responses(Forbidden, NotFound, UnprocessableContent),
)
async def delete_subscription(
    subscription_id: uuid.UUID,
    principal: MessageReader,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    await service.delete_subscription(
        session, subscription_id, principal=principal, now=runtime.clock()
    )
    await session.commit()
    if runtime.dispatcher is not None:
        runtime.dispatcher.wake()  # its open deliveries are dead-lettered at the next claim
    return Response(status_code=204)


def _after(cursor: str) -> uuid.UUID:
    position = decode_cursor(_CURSOR_KIND, cursor)
    try:
        return uuid.UUID(str(position[0])) if len(position) == 1 else _bad()
    except ValueError:
        return _bad()


def _bad() -> uuid.UUID:
    raise UnprocessableContent("cursor is not valid for this list")
