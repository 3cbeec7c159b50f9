"""routing.rules: conditions, any-of semantics, order and final rules, country mapping."""

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from commcentre.messages.schemas import MessageIn
from commcentre.routing.rules import (
    MessageFacts,
    PartnerEntry,
    RouteDecision,
    Rule,
    RuleMatch,
    UnroutableMessage,
    route,
)
from tests.factories import message


def facts(**overrides: Any) -> MessageFacts:
    values: dict[str, Any] = {"type": "request", "channel": "interpol", "priority": "normal"}
    values.update(overrides)
    for name in (
        "subject_kinds",
        "handling_codes",
        "recipient_countries",
        "recipient_partners",
    ):
        values[name] = frozenset(values.get(name, ()))
    return MessageFacts(**values)


def rule(
    name: str,
    *partners: str,
    position: int = 0,
    final: bool = False,
    enabled: bool = True,
    **match: Any,
) -> Rule:
    return Rule(
        id=uuid.uuid4(),
        position=position,
        name=name,
        enabled=enabled,
        match=RuleMatch.model_validate(match),
        partners=partners,
        final=final,
    )


def partner(
    partner_id: str, country: str | None = None, *channels: str, enabled: bool = True
) -> PartnerEntry:
    return PartnerEntry(partner_id, country, frozenset(channels), enabled)


def directory(*entries: PartnerEntry) -> dict[str, PartnerEntry]:
    return {entry.id: entry for entry in entries}


PARTNERS = directory(
    partner("interpol-ncb", None, "interpol"),
    partner("europol-siena", None, "europol"),
    partner("se-bureau", "SE"),
    partner("se-sirene", "SE", "sirene"),
    partner("no-bureau", "NO", enabled=False),
    partner("dk-bureau", "DK", "bilateral"),
)


def chosen(decision: RouteDecision) -> list[str]:
    return list(decision.partners)


# Facts of a message


def test_facts_of_a_message_split_recipients_into_countries_and_partners() -> None:
    content = MessageIn.model_validate(
        message(recipients=["SWE", "interpol-ncb", "FI"], handling_codes=["H0", "H2"])
    )
    result = MessageFacts.of(content)
    assert result.type == "request"
    assert result.channel == "interpol"
    assert result.priority == "urgent"
    assert result.recipient_countries == {"SE", "FI"}
    assert result.recipient_partners == {"interpol-ncb"}
    assert result.handling_codes == {"H0", "H2"}
    assert result.subject_kinds == {"person", "document", "vehicle", "substance"}
    assert all(type(v) is str for v in result.handling_codes | {result.type, result.priority})


def test_facts_of_a_message_without_channel() -> None:
    content = MessageIn.model_validate(message(channel=None, recipients=[]))
    assert MessageFacts.of(content).channel is None


# Conditions


def test_an_empty_match_matches_every_message() -> None:
    decision = route(facts(), [rule("all", "interpol-ncb")], PARTNERS)
    assert chosen(decision) == ["interpol-ncb"]
    assert decision.matched_rules == ("all",)


@pytest.mark.parametrize(
    ("condition", "hit", "miss"),
    [
        ({"types": ["request", "hit"]}, {"type": "hit"}, {"type": "notice"}),
        ({"channels": ["europol"]}, {"channel": "europol"}, {"channel": "interpol"}),
        ({"channels": ["europol"]}, {"channel": "europol"}, {"channel": None}),
        ({"priorities": ["urgent"]}, {"priority": "urgent"}, {"priority": "low"}),
        (
            {"subject_kinds": ["vehicle", "document"]},
            {"subject_kinds": {"person", "vehicle"}},
            {"subject_kinds": {"person", "substance"}},
        ),
        (
            {"handling_codes": ["H2", "H3"]},
            {"handling_codes": {"H0", "H3"}},
            {"handling_codes": {"H0"}},
        ),
        (
            {"countries": ["SE", "NO"]},
            {"recipient_countries": {"NO", "DK"}},
            {"recipient_countries": {"DK"}},
        ),
    ],
)
def test_each_condition(
    condition: dict[str, Any], hit: dict[str, Any], miss: dict[str, Any]
) -> None:
    partners = directory(partner("hub"), *(partner(c.lower(), c) for c in ("SE", "NO", "DK")))
    rules = [rule("r", "hub", **condition)]
    assert "hub" in route(facts(**hit), rules, partners).partners
    assert "hub" not in destinations(facts(**miss), rules, partners)


def destinations(
    message_facts: MessageFacts, rules: list[Rule], partners: dict[str, PartnerEntry]
) -> tuple[str, ...]:
    try:
        return route(message_facts, rules, partners).partners
    except UnroutableMessage as exc:
        reason = str(exc)
    assert "no routing rule matched" in reason
    return ()


def test_conditions_combine_with_and() -> None:
    rules = [rule("urgent-europol", "europol-siena", channels=["europol"], priorities=["urgent"])]
    assert chosen(route(facts(channel="europol", priority="urgent"), rules, PARTNERS)) == [
        "europol-siena"
    ]
    with pytest.raises(UnroutableMessage):
        route(facts(channel="europol", priority="normal"), rules, PARTNERS)
    with pytest.raises(UnroutableMessage):
        route(facts(channel="interpol", priority="urgent"), rules, PARTNERS)


def test_match_validation() -> None:
    match = RuleMatch.model_validate(
        {"countries": ["swe", "SE", "D"], "types": ["hit", "hit"], "handling_codes": []}
    )
    assert match.countries == ["SE", "DE"]
    assert match.types == ["hit"]
    with pytest.raises(ValidationError):
        RuleMatch.model_validate({"colour": ["red"]})
    with pytest.raises(ValidationError):
        RuleMatch.model_validate({"channels": ["carrier-pigeon"]})
    with pytest.raises(ValidationError):
        RuleMatch.model_validate({"countries": ["XX"]})


# Order and final rules


def test_rules_run_in_position_order_and_a_final_rule_stops() -> None:
    rules = [
        rule("late", "se-bureau", position=30),
        rule("stop", "europol-siena", position=20, final=True, channels=["interpol"]),
        rule("early", "interpol-ncb", position=10),
    ]
    decision = route(facts(), rules, PARTNERS)
    assert chosen(decision) == ["europol-siena", "interpol-ncb"]
    assert decision.matched_rules == ("early", "stop")


def test_a_final_rule_that_does_not_match_stops_nothing() -> None:
    rules = [
        rule("stop", "europol-siena", position=1, final=True, channels=["europol"]),
        rule("after", "interpol-ncb", position=2),
    ]
    assert chosen(route(facts(), rules, PARTNERS)) == ["interpol-ncb"]


def test_a_disabled_rule_is_ignored() -> None:
    rules = [rule("off", "europol-siena", enabled=False), rule("on", "interpol-ncb")]
    assert chosen(route(facts(), rules, PARTNERS)) == ["interpol-ncb"]


def test_recipients_still_join_after_a_final_rule() -> None:
    rules = [rule("stop", "interpol-ncb", final=True), rule("never", "europol-siena", position=5)]
    decision = route(facts(recipient_partners={"dk-bureau"}), rules, PARTNERS)
    assert chosen(decision) == ["dk-bureau", "interpol-ncb"]


# Countries, channels, disabled partners


def test_a_country_maps_to_its_partners_serving_the_channel() -> None:
    decision = route(facts(recipient_countries={"SE"}, channel="interpol"), [], PARTNERS)
    assert chosen(decision) == ["se-bureau"]  # se-sirene serves sirene only
    decision = route(facts(recipient_countries={"SE"}, channel="sirene"), [], PARTNERS)
    assert chosen(decision) == ["se-bureau", "se-sirene"]


def test_a_message_without_channel_goes_to_every_partner_of_the_country() -> None:
    decision = route(facts(recipient_countries={"SE"}, channel=None), [], PARTNERS)
    assert chosen(decision) == ["se-bureau", "se-sirene"]


def test_disabled_partners_chosen_by_rules_are_dropped() -> None:
    rules = [rule("nordics", "no-bureau", "se-bureau", "gone-partner")]
    decision = route(facts(), rules, PARTNERS)
    assert chosen(decision) == ["se-bureau"]
    assert decision.skipped == ("gone-partner", "no-bureau")


def test_all_destinations_disabled_is_unroutable() -> None:
    with pytest.raises(UnroutableMessage, match="disabled") as caught:
        route(facts(), [rule("norway", "no-bureau")], PARTNERS)
    assert caught.value.disabled_partners == ("no-bureau",)


def test_no_rule_and_no_recipient_is_unroutable() -> None:
    with pytest.raises(UnroutableMessage, match="no routing rule matched"):
        route(facts(), [rule("europol only", "europol-siena", channels=["europol"])], PARTNERS)


# Named recipients are never dropped silently


def test_an_unknown_recipient_partner_refuses_the_message() -> None:
    rules = [rule("all", "interpol-ncb")]
    with pytest.raises(UnroutableMessage, match="unknown recipient partners: nobody") as caught:
        route(facts(recipient_partners={"nobody", "se-bureau"}), rules, PARTNERS)
    assert caught.value.unknown_partners == ("nobody",)


def test_a_disabled_recipient_partner_refuses_the_message() -> None:
    with pytest.raises(UnroutableMessage, match="disabled recipient partners: no-bureau"):
        route(facts(recipient_partners={"no-bureau"}), [rule("all", "interpol-ncb")], PARTNERS)


@pytest.mark.parametrize(
    ("country", "channel"),
    [("FI", "interpol"), ("NO", "interpol"), ("DK", "interpol")],
    ids=["no partner", "only a disabled partner", "only another channel"],
)
def test_a_country_nobody_serves_refuses_the_message(country: str, channel: str) -> None:
    with pytest.raises(UnroutableMessage, match=f"no enabled partner serves {country}") as caught:
        route(
            facts(recipient_countries={country, "SE"}, channel=channel),
            [rule("all", "interpol-ncb")],
            PARTNERS,
        )
    assert caught.value.unserved_countries == (country,)


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(UnroutableMessage) as caught:
        route(facts(recipient_partners={"ghost"}, recipient_countries={"FI"}), [], PARTNERS)
    assert "unknown recipient partners: ghost" in str(caught.value)
    assert "no enabled partner serves FI on channel interpol" in str(caught.value)


# The decision and its reasons


def test_reasons_say_why_each_partner_was_chosen() -> None:
    rules = [rule("everything", "interpol-ncb", "se-bureau")]
    decision = route(
        facts(recipient_partners={"interpol-ncb"}, recipient_countries={"SE"}), rules, PARTNERS
    )
    assert decision.partners == ("interpol-ncb", "se-bureau")
    assert decision.reasons == {
        "interpol-ncb": ("rule everything", "recipient"),
        "se-bureau": ("rule everything", "country SE"),
    }


def test_a_partner_named_by_two_rules_appears_once() -> None:
    rules = [rule("a", "interpol-ncb"), rule("b", "interpol-ncb", position=1)]
    decision = route(facts(), rules, PARTNERS)
    assert decision.partners == ("interpol-ncb",)
    assert decision.reasons["interpol-ncb"] == ("rule a", "rule b")


@given(
    enabled=st.lists(st.booleans(), min_size=4, max_size=4),
    picks=st.lists(st.integers(0, 3), min_size=1, max_size=6),
)
def test_only_enabled_known_partners_are_ever_chosen(enabled: list[bool], picks: list[int]) -> None:
    partners = directory(*(partner(f"p{i}", None, enabled=on) for i, on in enumerate(enabled)))
    rules = [rule(f"r{n}", f"p{i}", "unknown", position=n) for n, i in enumerate(picks)]
    try:
        decision = route(facts(), rules, partners)
    except UnroutableMessage:
        assert not any(enabled[i] for i in picks)
        return
    assert set(decision.partners) == {f"p{i}" for i in picks if enabled[i]}
    assert list(decision.partners) == sorted(decision.partners)
