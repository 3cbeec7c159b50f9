"""Routing rule rules: every change checks its partners, bumps the routing version
and is audited, in the caller's transaction (services flush, never commit)."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.errors import FieldError, NotFound, UnprocessableContent
from commcentre.ids import new_id
from commcentre.partners import repository as partner_repository
from commcentre.routing import repository
from commcentre.routing.models import RoutingRule
from commcentre.routing.rules import Rule, RuleMatch
from commcentre.routing.schemas import RoutingRuleIn, RoutingRuleOut

CREATE_OPERATION = "POST /v1/routing-rules"


def rule_out(rule: RoutingRule) -> RoutingRuleOut:
    return RoutingRuleOut(
        id=rule.id,
        name=rule.name,
        position=rule.position,
        enabled=rule.enabled,
        match=RuleMatch.model_validate(rule.match),
        partners=list(rule.partners),
        final=rule.final,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


def compiled(rule: RoutingRule) -> Rule:
    """A stored rule as `routing.rules.route` evaluates it."""
    return Rule(
        id=rule.id,
        position=rule.position,
        name=rule.name,
        enabled=rule.enabled,
        match=RuleMatch.model_validate(rule.match),
        partners=tuple(rule.partners),
        final=rule.final,
    )


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> RoutingRule:
    rule = await repository.get(session, rule_id)
    if rule is None:
        raise NotFound(f"routing rule {rule_id} does not exist")
    return rule


async def list_rules(
    session: AsyncSession, *, after: tuple[int, uuid.UUID] | None, limit: int
) -> Sequence[RoutingRule]:
    """Rules in evaluation order: position, then id."""
    return await repository.list_page(session, after=after, limit=limit)


async def create_rule(
    session: AsyncSession, body: RoutingRuleIn, *, actor: str, now: datetime
) -> RoutingRule:
    await _check_partners(session, body.partners)
    rule = RoutingRule(id=new_id(), created_at=now)
    _assign(rule, body, now)
    repository.add(session, rule)
    await session.flush()
    await _changed(session, rule, "routing_rule.created", actor=actor, now=now)
    return rule


async def replace_rule(
    session: AsyncSession, rule_id: uuid.UUID, body: RoutingRuleIn, *, actor: str, now: datetime
) -> RoutingRule:
    rule = await get_rule(session, rule_id)
    await _check_partners(session, body.partners)
    _assign(rule, body, now)
    await session.flush()
    await _changed(session, rule, "routing_rule.updated", actor=actor, now=now)
    return rule


async def delete_rule(
    session: AsyncSession, rule_id: uuid.UUID, *, actor: str, now: datetime
) -> None:
    rule = await get_rule(session, rule_id)
    await repository.remove(session, rule_id)
    await _changed(session, rule, "routing_rule.deleted", actor=actor, now=now)


def _assign(rule: RoutingRule, body: RoutingRuleIn, now: datetime) -> None:
    rule.name = body.name
    rule.position = body.position
    rule.enabled = body.enabled
    # Stored without defaults: an empty list and an absent one mean the same.
    rule.match = body.match.model_dump(mode="json", exclude_defaults=True)
    rule.partners = list(body.partners)
    rule.final = body.final
    rule.updated_at = now


async def _check_partners(session: AsyncSession, partner_ids: Sequence[str]) -> None:
    known = await partner_repository.existing_ids(session, partner_ids)
    unknown = [(i, p) for i, p in enumerate(partner_ids) if p not in known]
    if unknown:
        names = ", ".join(p for _, p in unknown)
        raise UnprocessableContent(
            f"unknown partners: {names}",
            errors=[
                FieldError(loc=["body", "partners", i], msg=f"unknown partner {p}", type="partner")
                for i, p in unknown
            ],
        )


async def _changed(
    session: AsyncSession, rule: RoutingRule, event: str, *, actor: str, now: datetime
) -> None:
    await repository.bump_version(session)
    record = AuditRecord(
        action=AuditAction.ALTERATION,
        event=event,
        actor=actor,
        subject_type="routing_rule",
        subject_id=str(rule.id),
        details={"rule": str(rule.id), "name": rule.name, "partners": list(rule.partners)},
        occurred_at=now,
    )
    await append(session, [record], now=now)
