"""HTTP routes of the partner registry (scope partners:manage)."""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.auth.deps import Principal, require
from commcentre.auth.scopes import Scope
from commcentre.db import ReadSessionDep, SessionDep
from commcentre.errors import Conflict, Forbidden, NotFound, UnprocessableContent, problem_responses
from commcentre.idempotency.headers import IdempotencyKeyHeader, fingerprint
from commcentre.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from commcentre.partners import service
from commcentre.partners.schemas import (
    PARTNER_ID_PATTERN,
    PartnerCreate,
    PartnerCreated,
    PartnerOut,
    PartnerPatch,
)
from commcentre.runtime import RuntimeDep

router = APIRouter(prefix="/v1/partners", tags=["partners"])

PartnerManager = Annotated[Principal, Depends(require(Scope.PARTNERS_MANAGE))]
_CURSOR_KIND = "partners"


@router.get(
    "",
    summary="List partners",
    description="Ordered by id. Secrets are never shown: config values are masked.",
    responses=problem_responses(Forbidden, UnprocessableContent),
)
async def list_partners(
    _manager: PartnerManager,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Page[PartnerOut]:
    after = _after(cursor) if cursor is not None else None
    partners = await service.list_partners(session, after=after, limit=limit)
    envelope = runtime.vault.envelope
    items = [service.partner_out(p, envelope=envelope, registry=runtime.adapters) for p in partners]
    next_cursor = encode_cursor(_CURSOR_KIND, [items[-1].id]) if len(items) == limit else None
    return Page[PartnerOut](items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=PartnerCreated,
    summary="Register a partner",
    description=(
        "The adapter must be installed and the config must satisfy its model. A URL in the "
        "config must be https to a public address, or point into the operator's partner "
        "networks (in prod its host name is resolved now; loopback only in dev, with "
        "`allow_loopback`). Each direction has secrets of its own: `inbound_secrets` verify "
        "what the partner pushes to us, `outbound_secrets` sign what we deliver to it; one "
        "secret may not serve both (422). A direction given none gets one generated, returned "
        "once in `generated_inbound_secret` / `generated_outbound_secret`. `signing_secrets` is "
        "the deprecated name of `inbound_secrets`, and `generated_signing_secret` of "
        "`generated_inbound_secret`. In prod weak or published secrets are refused."
    ),
    responses=problem_responses(Forbidden, Conflict, UnprocessableContent),
)
async def create_partner(
    body: PartnerCreate,
    principal: PartnerManager,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    now = runtime.clock()
    generated: dict[str, str | None] = {}

    async def create(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        created = await service.create_partner(
            session,
            body,
            registry=runtime.adapters,
            envelope=runtime.vault.envelope,
            destinations=runtime.destinations,
            actor=principal.actor,
            now=now,
        )
        generated.update(
            generated_inbound_secret=created.generated_inbound_secret,
            generated_outbound_secret=created.generated_outbound_secret,
            generated_signing_secret=created.generated_inbound_secret,
        )
        # What the Idempotency-Key store keeps: never a secret.
        return 201, {**created.partner.model_dump(mode="json"), **dict.fromkeys(generated)}

    outcome = await runtime.idempotent.run(
        client_id=principal.client_id,
        key=idempotency_key,
        operation=service.CREATE_OPERATION,
        fingerprint=fingerprint(service.CREATE_OPERATION, body.canonical()),
        now=now,
        create=create,
    )
    runtime.routing.invalidate()
    content = dict(outcome.body)
    if not outcome.replayed:
        content.update(generated)
    headers = {"Location": f"/v1/partners/{content['id']}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(content, status_code=outcome.status_code, headers=headers)


@router.get(
    "/{partner_id}",
    summary="Read a partner",
    responses=problem_responses(Forbidden, NotFound),
)
async def read_partner(
    partner_id: str,
    _manager: PartnerManager,
    session: ReadSessionDep,
    runtime: RuntimeDep,
) -> PartnerOut:
    partner = await service.get_partner(session, partner_id)
    return service.partner_out(partner, envelope=runtime.vault.envelope, registry=runtime.adapters)


@router.patch(
    "/{partner_id}",
    summary="Change a partner",
    description=(
        "Only the fields given change. `config` is checked again by the adapter (masked "
        "values keep their stored secret); `inbound_secrets` and `outbound_secrets` each "
        "replace their direction's list (rotation: the new and the old secret, later the new "
        "one alone), and neither may hold a secret of the other (422); `signing_secrets` is "
        "the deprecated name of `inbound_secrets`. `enabled: true` clears `disabled_reason`."
    ),
    responses=problem_responses(Forbidden, NotFound, Conflict, UnprocessableContent),
)
async def update_partner(
    partner_id: str,
    body: PartnerPatch,
    principal: PartnerManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> PartnerOut:
    envelope = runtime.vault.envelope
    partner = await service.update_partner(
        session,
        partner_id,
        body,
        registry=runtime.adapters,
        envelope=envelope,
        destinations=runtime.destinations,
        actor=principal.actor,
        now=runtime.clock(),
    )
    await session.commit()
    runtime.routing.invalidate()
    return service.partner_out(partner, envelope=envelope, registry=runtime.adapters)


def _after(cursor: str) -> str:
    position = decode_cursor(_CURSOR_KIND, cursor)
    # A cursor names the last partner of a page: a partner id, or it was forged.
    if (
        len(position) != 1
        or not isinstance(position[0], str)
        or not re.fullmatch(PARTNER_ID_PATTERN, position[0])
    ):
        raise UnprocessableContent("cursor is not valid for this list")
    return position[0]
