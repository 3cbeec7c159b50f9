"""Subscription filter matching: a pure function over a messages row."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from commcentre.messages.kinds import kind_bits
from commcentre.messages.schemas import Channel, MessageType, Priority, SubjectKind
from commcentre.subscriptions.filters import kinds_mask, matches, wants_request_event

DIGEST = b"\x01" * 32
OTHER = b"\x02" * 32
INBOUND = "message.inbound"


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "direction": "inbound",
        "type": "hit",
        "channel": "sirene",
        "priority": "urgent",
        "subject_kinds": kind_bits(["person", "vehicle"]),
        "source_partner_id": "se-bureau",
        "case_digest": DIGEST,
    }
    base.update(overrides)
    return base


def test_empty_filter_matches_everything() -> None:
    assert matches({}, None, row(), event=INBOUND)
    assert matches({"channels": [], "events": []}, None, row(channel=None), event=INBOUND)


def test_each_criterion_must_match() -> None:
    assert matches({"channels": ["sirene", "interpol"]}, None, row(), event=INBOUND)
    assert not matches({"channels": ["interpol"]}, None, row(), event=INBOUND)
    assert not matches({"channels": ["interpol"]}, None, row(channel=None), event=INBOUND)
    assert matches({"partners": ["se-bureau"]}, None, row(), event=INBOUND)
    assert not matches({"partners": ["no-bureau"]}, None, row(), event=INBOUND)
    assert matches({"priorities": ["urgent"]}, None, row(), event=INBOUND)
    assert not matches({"priorities": ["low"]}, None, row(), event=INBOUND)
    assert matches({"types": ["hit"]}, None, row(), event=INBOUND)
    assert not matches({"types": ["request"]}, None, row(), event=INBOUND)
    both = {"channels": ["sirene"], "types": ["request"]}
    assert not matches(both, None, row(), event=INBOUND)


def test_subject_kinds_match_when_any_is_present() -> None:
    assert matches({"subject_kinds": ["vehicle", "document"]}, None, row(), event=INBOUND)
    assert not matches({"subject_kinds": ["substance"]}, None, row(), event=INBOUND)
    assert not matches({"subject_kinds": ["person"]}, None, row(subject_kinds=0), event=INBOUND)


def test_case_digest_and_events() -> None:
    assert matches({}, DIGEST, row(), event=INBOUND)
    assert not matches({}, OTHER, row(), event=INBOUND)
    assert not matches({}, DIGEST, row(case_digest=None), event=INBOUND)
    assert matches({"events": [INBOUND]}, None, row(), event=INBOUND)
    assert not matches({"events": [INBOUND]}, None, row(), event="request.overdue")


def test_request_events_must_be_listed_and_only_case_ref_applies() -> None:
    overdue = "request.overdue"
    assert not wants_request_event({}, None, event=overdue, reference_digest=DIGEST)
    assert not wants_request_event(
        {"events": [INBOUND]}, None, event=overdue, reference_digest=DIGEST
    )
    listed = {"events": [overdue], "channels": ["interpol"], "types": ["notice"]}
    assert wants_request_event(listed, None, event=overdue, reference_digest=None)
    assert wants_request_event(listed, DIGEST, event=overdue, reference_digest=DIGEST)
    assert not wants_request_event(listed, DIGEST, event=overdue, reference_digest=OTHER)
    assert not wants_request_event(listed, DIGEST, event=overdue, reference_digest=None)


def test_kinds_mask_agrees_with_the_message_store() -> None:
    for kind in SubjectKind:
        assert kinds_mask([kind.value]) == kind_bits([kind.value])
    assert kinds_mask([k.value for k in SubjectKind]) == kind_bits([k.value for k in SubjectKind])


def _subset(values: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), unique=True, max_size=len(values))


KINDS = [k.value for k in SubjectKind]
CHANNELS = [c.value for c in Channel]
PRIORITIES = [p.value for p in Priority]
TYPES = [t.value for t in MessageType]
PARTNERS = ["se-bureau", "ee-bureau", "interpol-ncb"]

filters = st.fixed_dictionaries(
    {},
    optional={
        "subject_kinds": _subset(KINDS),
        "channels": _subset(CHANNELS),
        "partners": _subset(PARTNERS),
        "priorities": _subset(PRIORITIES),
        "types": _subset(TYPES),
        "events": _subset([INBOUND]),
    },
)
messages = st.builds(
    row,
    type=st.sampled_from(TYPES),
    channel=st.none() | st.sampled_from(CHANNELS),
    priority=st.sampled_from(PRIORITIES),
    subject_kinds=_subset(KINDS).map(kind_bits),
    source_partner_id=st.sampled_from(PARTNERS),
    case_digest=st.none() | st.sampled_from([DIGEST, OTHER]),
)


@given(filters, st.none() | st.sampled_from([DIGEST, OTHER]), messages)
def test_matches_is_the_conjunction_of_its_criteria(
    criteria: dict[str, list[str]], digest: bytes | None, message: dict[str, Any]
) -> None:
    expected = digest is None or message["case_digest"] == digest
    for name, column in (
        ("channels", "channel"),
        ("partners", "source_partner_id"),
        ("priorities", "priority"),
        ("types", "type"),
    ):
        allowed = criteria.get(name, [])
        expected = expected and (not allowed or message[column] in allowed)
    kinds = criteria.get("subject_kinds", [])
    expected = expected and (
        not kinds or any(message["subject_kinds"] & kind_bits([k]) for k in kinds)
    )
    assert matches(criteria, digest, message, event=INBOUND) is expected


@given(filters, messages)
def test_adding_a_criterion_never_widens_the_match(
    criteria: dict[str, list[str]], message: dict[str, Any]
) -> None:
    narrower = {**criteria, "channels": ["interpol"]}
    if matches(narrower, None, message, event=INBOUND):
        assert matches(criteria, None, message, event=INBOUND) or criteria.get("channels")
