"""Blind-index tokens: normalisers, message tokens, lookup queries and their agreement."""

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from commcentre.messages.identifiers import (
    LOOKUP_EXAMPLE,
    DocumentQuery,
    IdentifierKind,
    LookupRequest,
    PersonQuery,
    VehicleQuery,
    dob_precisions,
    message_tokens,
    normalize_identifier,
    normalize_name,
    query_tokens,
)
from commcentre.messages.schemas import MESSAGE_EXAMPLE, MessageIn

K = IdentifierKind


def stored(*subjects: dict[str, Any], case_ref: str | None = None) -> MessageIn:
    payload: dict[str, Any] = {
        "type": "request",
        "legal_basis": "DIR_2023_977",
        "subjects": list(subjects),
    }
    if case_ref is not None:
        payload["case_ref"] = case_ref
    return MessageIn.model_validate(payload)


def person(
    surnames: list[str], forenames: list[str], dob: str | None = None, **more: Any
) -> dict[str, Any]:
    subject = {"kind": "person", "surnames": surnames, "forenames": forenames, **more}
    return subject if dob is None else {**subject, "date_of_birth": dob}


def lookup(query: dict[str, Any]) -> list[tuple[IdentifierKind, str]]:
    [parsed] = LookupRequest.model_validate({"queries": [query]}).queries
    return query_tokens(parsed)


def hits(msg: MessageIn, query: dict[str, Any]) -> bool:
    return bool(message_tokens(msg) & set(lookup(query)))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("xx 123-4567", "XX1234567"),
        ("XX1234567", "XX1234567"),
        ("ab.12/34_5", "AB12345"),
        ("ＸＰ１２３", "XP123"),  # noqa: RUF001 - full-width forms, as typed on CJK keyboards
        ("X\u2010P\u00a0\t1\n", "XP1"),
        ("X\u200bP\u00ad1", "XP1"),
        ("straße 1", "STRASSE1"),
    ],
)
def test_normalize_identifier(raw: str, expected: str) -> None:
    assert normalize_identifier(raw) == expected


@settings(database=None, max_examples=500)
@given(st.text())
def test_normalize_identifier_is_idempotent(raw: str) -> None:
    once = normalize_identifier(raw)
    assert normalize_identifier(once) == once
    assert not any(char.isspace() or char in "-./_" for char in once)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Virtanen-Mäki", "VIRTANENMAKI"),
        ("MAKI", "MAKI"),
        ("Søren Kierkegaard", "SORENKIERKEGAARD"),
        ("Łukasz Żółć", "LUKASZZOLC"),
        ("Straße", "STRASSE"),
        ("Ærø", "AERO"),
        ("O'Brien", "OBRIEN"),
        ("Þórður", "THORDUR"),
        ("Иванов", ""),
    ],
)
def test_normalize_name(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


@settings(database=None, max_examples=500)
@given(st.text())
def test_normalize_name_keeps_only_a_to_z(raw: str) -> None:
    once = normalize_name(raw)
    assert set(once) <= set(string.ascii_uppercase)
    assert normalize_name(once) == once


@pytest.mark.parametrize(
    ("dob", "expected"),
    [
        ("1984-07-15", ["1984-07-15", "1984-07", "1984", ""]),
        ("1984-07", ["1984-07", "1984", ""]),
        ("1984", ["1984", ""]),
        (None, [""]),
    ],
)
def test_dob_precisions(dob: str | None, expected: list[str]) -> None:
    assert dob_precisions(dob) == expected


def test_tokens_of_the_api_example() -> None:
    assert message_tokens(MessageIn.model_validate(MESSAGE_EXAMPLE)) == {
        (K.DOCUMENT, "FI|XP1234567"),
        (K.DOCUMENT_NUMBER, "XP1234567"),
        (K.VIN, "WVWZZZ1KZAW000001"),
        (K.PLATE, "FI|ABC123"),
        (K.PERSON, "VIRTANEN|MATTI|1984-07"),
        (K.PERSON, "VIRTANEN|MATTI|1984"),
        (K.PERSON, "VIRTANEN|MATTI|"),
        (K.CASE_REF, "FINBI2026004411"),
    }


def test_person_tokens() -> None:
    msg = stored(person(["Virtanen-Mäki", "Korhonen"], ["Matti", "Juhani"], "1984-07-15"))
    assert len(message_tokens(msg)) == 2 * 2 * 4
    no_dob = stored(person(["Virtanen"], ["Matti"], name_at_birth="Mäkinen"))
    assert message_tokens(no_dob) == {(K.PERSON, "VIRTANEN|MATTI|"), (K.PERSON, "MAKINEN|MATTI|")}


def test_person_tokens_are_bounded_and_keep_the_name_at_birth() -> None:
    surnames = [f"Surname{letter}" for letter in string.ascii_uppercase[:20]]
    forenames = [f"Forename{letter}" for letter in string.ascii_uppercase[:20]]
    msg = stored(person(surnames, forenames, "1990", name_at_birth="Birthname"))
    tokens = message_tokens(msg)
    assert len(tokens) == 10 * 10 * 2
    assert (K.PERSON, "BIRTHNAME|FORENAMEA|1990") in tokens
    assert (K.PERSON, "BIRTHNAME|FORENAMEA|") in tokens


def test_persons_without_usable_names_give_no_person_tokens() -> None:
    assert message_tokens(stored(person(["Virtanen"], []))) == set()
    assert message_tokens(stored(person(["Иванов"], ["Иван"]))) == set()
    only_latin = message_tokens(stored(person(["Иванов", "Ivanov"], ["Ivan"])))
    assert only_latin == {(K.PERSON, "IVANOV|IVAN|")}


def test_vehicle_and_case_ref_tokens() -> None:
    vehicle = {"kind": "vehicle", "vin": "WVWZZZ1KZAW000001", "plate": "ABC 123"}
    msg = stored(vehicle, case_ref="fi nbi/2026-004411")
    assert message_tokens(msg) == {
        (K.VIN, "WVWZZZ1KZAW000001"),
        (K.CASE_REF, "FINBI2026004411"),
    }
    plate = stored({"kind": "vehicle", "plate": "abc-123", "registration_country": "FIN"})
    assert message_tokens(plate) == {(K.PLATE, "FI|ABC123")}


def test_substances_give_no_tokens() -> None:
    assert message_tokens(stored({"kind": "substance", "name": "cocaine"})) == set()


def test_query_tokens() -> None:
    assert lookup({"kind": "document", "number": "xp 123-4567", "issuing_country": "FIN"}) == [
        (K.DOCUMENT, "FI|XP1234567")
    ]
    assert lookup({"kind": "document", "number": "XP1234567"}) == [(K.DOCUMENT_NUMBER, "XP1234567")]
    both = {"kind": "vehicle", "vin": "wvwzzz1kzaw000001", "plate": "ABC-123"}
    assert lookup({**both, "registration_country": "fi"}) == [
        (K.VIN, "WVWZZZ1KZAW000001"),
        (K.PLATE, "FI|ABC123"),
    ]
    assert lookup({"kind": "person", "surname": "Mäki", "forename": "Matti"}) == [
        (K.PERSON, "MAKI|MATTI|")
    ]


def test_stored_identifiers_are_found_however_they_are_typed() -> None:
    document = {
        "kind": "document",
        "number": "xx 123-4567",
        "type": "passport",
        "issuing_country": "D",
        "status": "lost",
    }
    vehicle = {"kind": "vehicle", "vin": "wvw zzz1kzaw000001", "plate": "abc 123"}
    msg = stored(
        document,
        {**vehicle, "registration_country": "GBD"},
        person(["Virtanen-Mäki"], ["Matti"], "1984-07-15"),
    )
    found = [
        {"kind": "document", "number": "XX1234567", "issuing_country": "DE"},
        {"kind": "document", "number": "XX.123.4567", "issuing_country": "deu"},
        {"kind": "document", "number": "XX1234567"},
        {"kind": "vehicle", "vin": "WVWZZZ1KZAW000001"},
        {"kind": "vehicle", "plate": "ABC-123", "registration_country": "GB"},
    ]
    named = {"kind": "person", "surname": "VIRTANEN MAKI", "forename": "matti"}
    found += [{**named, "date_of_birth": dob} for dob in ("1984", "1984-07", "1984-07-15")]
    found.append({"kind": "person", "surname": "Virtanen-Mäki", "forename": "Matti"})
    for query in found:
        assert hits(msg, query), query
    missed = [
        {"kind": "document", "number": "XX1234567", "issuing_country": "FI"},
        {"kind": "vehicle", "plate": "ABC-123", "registration_country": "FI"},
        {"kind": "person", "surname": "Virtanen", "forename": "Matti", "date_of_birth": "1984"},
        {
            "kind": "person",
            "surname": "Virtanen-Mäki",
            "forename": "Matti",
            "date_of_birth": "1985",
        },
    ]
    for query in missed:
        assert not hits(msg, query), query


def test_partially_known_dates_of_birth() -> None:
    msg = stored(person(["Virtanen"], ["Matti"], "1984-07"))
    base = {"kind": "person", "surname": "Virtanen", "forename": "Matti"}
    assert hits(msg, {**base, "date_of_birth": "1984"})
    assert hits(msg, {**base, "date_of_birth": "1984-07"})
    # The stored day is unknown: a full date would be a guess, so it does not hit.
    assert not hits(msg, {**base, "date_of_birth": "1984-07-15"})
    assert hits(stored(person(["Virtanen"], ["Matti"])), base)


@settings(database=None)
@given(
    number=st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True),
    separators=st.lists(st.sampled_from([" ", "-", ".", "/", "_", "\u2010"]), max_size=5),
    data=st.data(),
)
def test_document_number_spellings_agree(number: str, separators: list[str], data: Any) -> None:
    typed = number.lower()
    for separator in separators:
        cut = data.draw(st.integers(0, len(typed)))
        typed = typed[:cut] + separator + typed[cut:]
    document = {
        "kind": "document",
        "number": number,
        "type": "id_card",
        "issuing_country": "SE",
        "status": "stolen",
    }
    msg = stored(document)
    assert hits(msg, {"kind": "document", "number": typed, "issuing_country": "SWE"})
    assert hits(msg, {"kind": "document", "number": typed})


def test_example_lookup_request_validates() -> None:
    request = LookupRequest.model_validate(LOOKUP_EXAMPLE)
    assert [type(query) for query in request.queries] == [
        DocumentQuery,
        VehicleQuery,
        VehicleQuery,
        PersonQuery,
    ]
    assert LookupRequest.model_json_schema()["example"] == LOOKUP_EXAMPLE
    msg = MessageIn.model_validate(MESSAGE_EXAMPLE)
    for query in request.queries:
        assert message_tokens(msg) & set(query_tokens(query)), query


def lookup_locs(queries: object) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as caught:
        LookupRequest.model_validate({"queries": queries})
    return [error["loc"] for error in caught.value.errors()]


def test_lookup_request_is_validated() -> None:
    assert lookup_locs([]) == [("queries",)]
    assert lookup_locs([{"kind": "vehicle", "vin": "WVWZZZ1KZAW000001"}] * 101) == [("queries",)]
    assert lookup_locs([{"kind": "case"}]) == [("queries", 0, "kind")]
    assert lookup_locs([{"kind": "vehicle", "plate": "ABC-123"}]) == [
        ("queries", 0, "registration_country")
    ]
    assert lookup_locs([{"kind": "vehicle", "registration_country": "FI"}]) == [("queries", 0)]
    assert lookup_locs([{"kind": "vehicle", "vin": "WVWZZZ1KZAW00000O"}]) == [("queries", 0, "vin")]
    assert lookup_locs([{"kind": "document", "number": "--"}]) == [("queries", 0, "number")]
    assert lookup_locs([{"kind": "document", "number": "X1", "issuing_country": "XX"}]) == [
        ("queries", 0, "issuing_country")
    ]
    assert lookup_locs([{"kind": "person", "surname": "Иванов", "forename": "Ivan"}]) == [
        ("queries", 0, "surname")
    ]
    assert lookup_locs([{"kind": "person", "surname": "A", "forename": "B", "dob": "1"}]) == [
        ("queries", 0, "dob")
    ]
    assert lookup_locs(
        [{"kind": "person", "surname": "A", "forename": "B", "date_of_birth": "2023-02-29"}]
    ) == [("queries", 0, "date_of_birth")]


def test_lookup_errors_never_echo_the_value() -> None:
    canary = "QZXCANARY"
    queries = [
        {"kind": canary},
        {"kind": "vehicle", "vin": canary},
        {"kind": "person", "surname": "Иванов", "forename": "x"},
        {"kind": "document", "number": canary * 10},
        {"kind": "document", "number": "X1", "issuing_country": canary[:3]},
    ]
    with pytest.raises(ValidationError) as caught:
        LookupRequest.model_validate({"queries": queries})
    assert len(caught.value.errors()) == len(queries)
    for error in caught.value.errors():
        shown = error["msg"] + repr(error.get("ctx", ""))
        assert "QZX" not in shown, error
        assert "Иванов" not in shown, error
