"""`commcentre demo`: loopback partners and routing rules, so a fresh install shows traffic.

Loopback partners keep what they receive in the server's memory: nothing leaves
the machine. Seeding is idempotent; existing partners and rules are left alone.
"""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.clock import utcnow
from commcentre.crypto import Envelope
from commcentre.destinations import DestinationRules
from commcentre.partners import repository as partner_repository
from commcentre.partners.adapter_config import AdapterCatalog
from commcentre.partners.schemas import PartnerCreate
from commcentre.partners.service import create_partner
from commcentre.routing import service as routing_service
from commcentre.routing.rules import RuleMatch
from commcentre.routing.schemas import RoutingRuleIn

DEMO_PARTNERS = (
    PartnerCreate.model_validate(
        {
            "id": "interpol-ncb",
            "name": "Interpol NCB (demo, loopback)",
            "adapter": "loopback",
            "channels": ["interpol"],
            "allow_loopback": True,
        }
    ),
    PartnerCreate.model_validate(
        {
            "id": "europol-siena",
            "name": "Europol (demo, loopback)",
            "adapter": "loopback",
            "channels": ["europol"],
            "allow_loopback": True,
        }
    ),
    PartnerCreate.model_validate(
        {
            "id": "sirene-fi",
            "name": "SIRENE bureau (demo, loopback)",
            "adapter": "loopback",
            "channels": ["sirene"],
            "allow_loopback": True,
        }
    ),
    PartnerCreate.model_validate(
        {
            "id": "se-bureau",
            "name": "Swedish bureau (demo, loopback)",
            "adapter": "loopback",
            "country": "SE",
            "allow_loopback": True,
        }
    ),
    PartnerCreate.model_validate(
        {
            "id": "no-bureau",
            "name": "Norwegian bureau (demo, loopback)",
            "adapter": "loopback",
            "country": "NO",
            "allow_loopback": True,
        }
    ),
)
DEMO_RULES = tuple(
    RoutingRuleIn(
        name=f"demo: {channel} channel",
        position=100 + i,
        match=RuleMatch.model_validate({"channels": [channel]}),
        partners=[partner],
    )
    for i, (channel, partner) in enumerate(
        (("interpol", "interpol-ncb"), ("europol", "europol-siena"), ("sirene", "sirene-fi"))
    )
)


@dataclass(frozen=True, slots=True)
class Seeded:
    partners: list[str]
    rules: list[str]


async def seed(
    session: AsyncSession,
    *,
    registry: AdapterCatalog,
    envelope: Envelope,
    destinations: DestinationRules,
    actor: str,
) -> Seeded:
    """Create the demo partners and rules that do not exist yet (flushes only)."""
    now = utcnow()
    created = Seeded([], [])
    for partner in DEMO_PARTNERS:
        if not await partner_repository.exists(session, partner.id):
            await create_partner(
                session,
                partner,
                registry=registry,
                envelope=envelope,
                destinations=destinations,
                actor=actor,
                now=now,
            )
            created.partners.append(partner.id)
    existing = {
        rule.name for rule in await routing_service.list_rules(session, after=None, limit=500)
    }
    for rule in DEMO_RULES:
        if rule.name not in existing:
            await routing_service.create_rule(session, rule, actor=actor, now=now)
            created.rules.append(rule.name)
    return created
