"""Routing rules: which partners must receive a message (pure functions, no I/O).

    MessageFacts.of(message) ──► route(facts, rules, partners) ──► RouteDecision
                                                     └── raises UnroutableMessage

Destinations come from three sources, and the decision records why each partner
was chosen: enabled rules in position order (a matching `final` rule stops the
evaluation), the explicit partner ids among the recipients, and the recipient
countries (each maps to the enabled partners of that country that serve the
message's channel). Disabled partners are dropped. A recipient that a police
system names but that cannot be served is never dropped silently: the message
is refused as a whole.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from commcentre.messages.schemas import (
    Channel,
    CountryCode,
    HandlingCode,
    MessageIn,
    MessageType,
    Priority,
    SubjectKind,
)

_E = TypeVar("_E", bound=str)


def _deduplicated(items: list[_E]) -> list[_E]:
    """Drop repeats, keeping the first occurrence (a repeat changes nothing in a match)."""
    return list(dict.fromkeys(items))


class RuleMatch(BaseModel):
    """Conditions of a rule. Every non-empty list must hold; all empty matches every message.

    `types`, `channels` and `priorities` hold when the message's value is listed;
    `subject_kinds`, `handling_codes` and `countries` hold when the message has any
    of the listed values (`countries` looks at the recipient countries).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: Annotated[list[MessageType], AfterValidator(_deduplicated)] = Field(
        default=[], max_length=len(MessageType)
    )
    channels: Annotated[list[Channel], AfterValidator(_deduplicated)] = Field(
        default=[], max_length=len(Channel)
    )
    priorities: Annotated[list[Priority], AfterValidator(_deduplicated)] = Field(
        default=[], max_length=len(Priority)
    )
    subject_kinds: Annotated[list[SubjectKind], AfterValidator(_deduplicated)] = Field(
        default=[], max_length=len(SubjectKind)
    )
    handling_codes: Annotated[list[HandlingCode], AfterValidator(_deduplicated)] = Field(
        default=[], max_length=len(HandlingCode)
    )
    countries: Annotated[list[CountryCode], AfterValidator(_deduplicated)] = Field(
        default=[], max_length=300
    )


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """The routing metadata of a message (never its encrypted content)."""

    type: str
    channel: str | None
    priority: str
    subject_kinds: frozenset[str] = frozenset()
    handling_codes: frozenset[str] = frozenset()
    recipient_countries: frozenset[str] = frozenset()
    recipient_partners: frozenset[str] = frozenset()

    @classmethod
    def of(cls, message: MessageIn) -> "MessageFacts":
        """Facts of a validated message; its schema normalised countries to upper alpha-2."""
        countries = frozenset(r for r in message.recipients if _is_country(r))
        return cls(
            type=message.type.value,
            channel=message.channel.value if message.channel is not None else None,
            priority=message.priority.value,
            subject_kinds=frozenset(subject.kind for subject in message.subjects),
            handling_codes=frozenset(code.value for code in message.handling_codes),
            recipient_countries=countries,
            recipient_partners=frozenset(message.recipients) - countries,
        )


def _is_country(recipient: str) -> bool:
    return len(recipient) == 2 and recipient.isascii() and recipient.isupper()


def _values(items: Iterable[StrEnum | str]) -> frozenset[str]:
    # Plain strings: a StrEnum member hashes by its name, not its value.
    return frozenset(str(item) for item in items)


@dataclass(frozen=True, slots=True)
class _Conditions:
    types: frozenset[str]
    channels: frozenset[str]
    priorities: frozenset[str]
    subject_kinds: frozenset[str]
    handling_codes: frozenset[str]
    countries: frozenset[str]

    @classmethod
    def of(cls, match: RuleMatch) -> "_Conditions":
        return cls(
            types=_values(match.types),
            channels=_values(match.channels),
            priorities=_values(match.priorities),
            subject_kinds=_values(match.subject_kinds),
            handling_codes=_values(match.handling_codes),
            countries=_values(match.countries),
        )

    def hold_for(self, facts: MessageFacts) -> bool:
        return (
            (not self.types or facts.type in self.types)
            and (not self.channels or facts.channel in self.channels)
            and (not self.priorities or facts.priority in self.priorities)
            and (not self.subject_kinds or not self.subject_kinds.isdisjoint(facts.subject_kinds))
            and (
                not self.handling_codes or not self.handling_codes.isdisjoint(facts.handling_codes)
            )
            and (not self.countries or not self.countries.isdisjoint(facts.recipient_countries))
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """A routing rule as evaluated: its conditions are compiled once."""

    id: UUID
    position: int
    name: str
    enabled: bool
    match: RuleMatch
    partners: tuple[str, ...]
    final: bool = False
    _conditions: _Conditions = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_conditions", _Conditions.of(self.match))

    def matches(self, facts: MessageFacts) -> bool:
        return self.enabled and self._conditions.hold_for(facts)


@dataclass(frozen=True, slots=True)
class PartnerEntry:
    """What routing knows of a partner."""

    id: str
    country: str | None
    channels: frozenset[str]
    enabled: bool

    def serves(self, channel: str | None) -> bool:
        """Whether it takes messages on this channel (no channels listed: every channel)."""
        return not self.channels or channel is None or channel in self.channels


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Destinations of a message: partner ids (sorted) and, per partner, why.

    A reason is `rule <name>`, `recipient` (named by id) or `country <XX>`.
    `skipped` lists the partners that rules chose but that are disabled or unknown.
    """

    partners: tuple[str, ...]
    reasons: Mapping[str, tuple[str, ...]]
    matched_rules: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


class UnroutableMessage(Exception):
    """The message cannot be routed; `str(exc)` explains why for a human."""

    def __init__(
        self,
        reason: str,
        *,
        unknown_partners: Sequence[str] = (),
        disabled_partners: Sequence[str] = (),
        unserved_countries: Sequence[str] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown_partners = tuple(unknown_partners)
        self.disabled_partners = tuple(disabled_partners)
        self.unserved_countries = tuple(unserved_countries)


def route(
    facts: MessageFacts, rules: Sequence[Rule], partners: Mapping[str, PartnerEntry]
) -> RouteDecision:
    """Decide the destinations of a message; raises UnroutableMessage when it has none.

    `rules` may come in any order: they are evaluated by (position, id).
    """
    chosen: dict[str, list[str]] = {}
    matched: list[str] = []
    skipped: set[str] = set()

    def add(partner_id: str, reason: str) -> None:
        reasons = chosen.setdefault(partner_id, [])
        if reason not in reasons:
            reasons.append(reason)

    for rule in sorted(rules, key=lambda r: (r.position, str(r.id))):
        if not rule.matches(facts):
            continue
        matched.append(rule.name)
        for partner_id in rule.partners:
            entry = partners.get(partner_id)
            if entry is None or not entry.enabled:
                skipped.add(partner_id)
            else:
                add(partner_id, f"rule {rule.name}")
        if rule.final:
            break

    unknown = sorted(p for p in facts.recipient_partners if p not in partners)
    disabled = sorted(
        p for p in facts.recipient_partners if p in partners and not partners[p].enabled
    )
    for partner_id in sorted(facts.recipient_partners):
        if partner_id in partners and partners[partner_id].enabled:
            add(partner_id, "recipient")

    unserved: list[str] = []
    for country in sorted(facts.recipient_countries):
        serving = [
            entry.id
            for entry in partners.values()
            if entry.country == country and entry.enabled and entry.serves(facts.channel)
        ]
        if not serving:
            unserved.append(country)
        for partner_id in serving:
            add(partner_id, f"country {country}")

    if unknown or disabled or unserved:
        raise UnroutableMessage(
            _refusal(unknown, disabled, unserved, facts.channel),
            unknown_partners=unknown,
            disabled_partners=disabled,
            unserved_countries=unserved,
        )
    if not chosen:
        if skipped:
            reason = "every destination is disabled or unknown: " + ", ".join(sorted(skipped))
        elif matched:
            reason = "the matching routing rules name no partner"
        else:
            reason = "no routing rule matched and the message names no recipients"
        raise UnroutableMessage(reason, disabled_partners=sorted(skipped))
    ordered = tuple(sorted(chosen))
    return RouteDecision(
        partners=ordered,
        reasons={p: tuple(chosen[p]) for p in ordered},
        matched_rules=tuple(matched),
        skipped=tuple(sorted(skipped - chosen.keys())),
    )


def _refusal(
    unknown: Sequence[str], disabled: Sequence[str], unserved: Sequence[str], channel: str | None
) -> str:
    parts: list[str] = []
    if unknown:
        parts.append("unknown recipient partners: " + ", ".join(unknown))
    if disabled:
        parts.append("disabled recipient partners: " + ", ".join(disabled))
    if unserved:
        on = f" on channel {channel}" if channel else ""
        parts.append("no enabled partner serves " + ", ".join(unserved) + on)
    return "; ".join(parts)
