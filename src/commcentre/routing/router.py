"""HTTP routes of routing rules (scope partners:manage)."""

import uuid
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.db import ReadSessionDep, SessionDep
from commcentre.errors import Conflict, Forbidden, NotFound, UnprocessableContent, problem_responses
from commcentre.idempotency.headers import IdempotencyKeyHeader, fingerprint
from commcentre.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from commcentre.partners.router import PartnerManager
from commcentre.routing import service
from commcentre.routing.schemas import RoutingRuleIn, RoutingRuleOut
from commcentre.runtime import RuntimeDep

router = APIRouter(prefix="/v1/routing-rules", tags=["routing"])

_CURSOR_KIND = "routing-rules"


@router.get(
    "",
    summary="List routing rules",
    description="In evaluation order: position, then id.",
    responses=problem_responses(Forbidden, UnprocessableContent),
)
async def list_routing_rules(
    _manager: PartnerManager,
    session: ReadSessionDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Page[RoutingRuleOut]:
    after = _position(cursor) if cursor is not None else None
    rules = await service.list_rules(session, after=after, limit=limit)
    next_cursor = None
    if len(rules) == limit:
        next_cursor = encode_cursor(_CURSOR_KIND, [rules[-1].position, str(rules[-1].id)])
    return Page[RoutingRuleOut](items=[service.rule_out(r) for r in rules], next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=RoutingRuleOut,
    summary="Create a routing rule",
    description="Its partners must exist. Takes effect in every process within a second.",
    responses=problem_responses(Forbidden, Conflict, UnprocessableContent),
)
async def create_routing_rule(
    body: RoutingRuleIn,
    principal: PartnerManager,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    now = runtime.clock()

    async def create(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        rule = await service.create_rule(session, body, actor=principal.actor, now=now)
        return 201, service.rule_out(rule).model_dump(mode="json")

    outcome = await runtime.idempotent.run(
        client_id=principal.client_id,
        key=idempotency_key,
        operation=service.CREATE_OPERATION,
        fingerprint=fingerprint(service.CREATE_OPERATION, body.model_dump_json().encode()),
        now=now,
        create=create,
    )
    runtime.routing.invalidate()
    headers = {"Location": f"/v1/routing-rules/{outcome.body['id']}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@router.put(
    "/{rule_id}",
    summary="Replace a routing rule",
    responses=problem_responses(Forbidden, NotFound, UnprocessableContent),
)
async def replace_routing_rule(
    rule_id: uuid.UUID,
    body: RoutingRuleIn,
    principal: PartnerManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> RoutingRuleOut:
    rule = await service.replace_rule(
        session, rule_id, body, actor=principal.actor, now=runtime.clock()
    )
    await session.commit()
    runtime.routing.invalidate()
    return service.rule_out(rule)


@router.delete(
    "/{rule_id}",
    status_code=204,
    summary="Delete a routing rule",
    responses=problem_responses(Forbidden, NotFound),
)
async def delete_routing_rule(
    rule_id: uuid.UUID,
    principal: PartnerManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    await service.delete_rule(session, rule_id, actor=principal.actor, now=runtime.clock())
    await session.commit()
    runtime.routing.invalidate()
    return Response(status_code=204)


def _position(cursor: str) -> tuple[int, uuid.UUID]:
    position = decode_cursor(_CURSOR_KIND, cursor)
    try:
        rank, rule_id = position
        if not isinstance(rank, int):
            raise TypeError
        return rank, uuid.UUID(str(rule_id))
    except (TypeError, ValueError):
        raise UnprocessableContent("cursor is not valid for this list") from None
