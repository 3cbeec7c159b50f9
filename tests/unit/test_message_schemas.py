"""Input schemas of exchange messages: the API.md example, every rule, error paths."""

import copy
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from commcentre.messages.schemas import (
    MESSAGE_EXAMPLE,
    Document,
    MessageIn,
    Priority,
    Substance,
    Vehicle,
    cas_check_digit,
)

CANARY = "QZXCANARY"
PERSON: dict[str, Any] = {"kind": "person", "surnames": ["VIRTANEN"], "forenames": ["MATTI"]}
DOCUMENT: dict[str, Any] = {
    "kind": "document",
    "number": "XP1234567",
    "type": "passport",
    "issuing_country": "FI",
    "status": "stolen",
}
VEHICLE: dict[str, Any] = {"kind": "vehicle", "vin": "WVWZZZ1KZAW000001"}
SUBSTANCE: dict[str, Any] = {"kind": "substance", "name": "amphetamine"}


def message(**changes: Any) -> dict[str, Any]:
    """The API.md example with top-level fields replaced."""
    payload = copy.deepcopy(MESSAGE_EXAMPLE)
    payload.update(changes)
    return payload


def with_subject(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A message whose only subject is `base` with fields replaced (None removes one)."""
    subject = {**base, **changes}
    return message(subjects=[{k: v for k, v in subject.items() if v is not None}])


def errors(payload: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        MessageIn.model_validate(payload)
    return [dict(error) for error in caught.value.errors()]


def locs(payload: dict[str, Any]) -> list[tuple[str | int, ...]]:
    return [error["loc"] for error in errors(payload)]


def subject_of(payload: dict[str, Any]) -> Any:
    return MessageIn.model_validate(payload).subjects[0]


def test_api_example_validates() -> None:
    msg = MessageIn.model_validate(MESSAGE_EXAMPLE)
    assert msg.priority is Priority.URGENT
    assert [subject.kind for subject in msg.subjects] == [
        "person",
        "document",
        "vehicle",
        "substance",
    ]
    substance = msg.subjects[3]
    assert isinstance(substance, Substance)
    assert substance.quantity == Decimal("12.5")
    assert substance.purity_pct == Decimal(35)


def test_openapi_example_is_the_api_example() -> None:
    assert MessageIn.model_json_schema()["example"] == MESSAGE_EXAMPLE


def test_defaults() -> None:
    msg = MessageIn.model_validate({"type": "notice", "legal_basis": "FD_2006_960", "body": "text"})
    assert msg.priority is Priority.NORMAL
    assert (msg.recipients, msg.subjects, msg.handling_codes) == ([], [], [])


@pytest.mark.parametrize("field", ["id", "direction", "status", "created_at"])
def test_server_owned_fields_are_rejected(field: str) -> None:
    [error] = errors(message(**{field: "outbound"}))
    assert (error["loc"], error["type"]) == ((field,), "extra_forbidden")


def test_unknown_subject_field_is_rejected() -> None:
    assert locs(with_subject(DOCUMENT, colour="red")) == [("subjects", 0, "colour")]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("FI", "FI"),
        ("fi", "FI"),
        ("FIN", "FI"),
        ("deu", "DE"),
        ("D", "DE"),
        ("d", "DE"),
        ("GBR", "GB"),
        ("GBD", "GB"),
        ("GBN", "GB"),
        ("GBO", "GB"),
        ("GBP", "GB"),
        ("GBS", "GB"),
        (" se ", "SE"),
    ],
)
def test_country_codes_normalise_to_alpha2(code: str, expected: str) -> None:
    document = subject_of(with_subject(DOCUMENT, issuing_country=code))
    assert document.issuing_country == expected


@pytest.mark.parametrize("code", ["XX", "ZZZ", "XXA", "XXX", "1", "246", "FINL", "", "İT"])
def test_unknown_country_codes_are_rejected(code: str) -> None:
    assert locs(with_subject(DOCUMENT, issuing_country=code)) == [
        ("subjects", 0, "issuing_country")
    ]


@pytest.mark.parametrize("field", ["number", "type", "issuing_country", "status"])
def test_document_needs_the_sltd_fields(field: str) -> None:
    [error] = errors(with_subject(DOCUMENT, **{field: None}))
    assert (error["loc"], error["type"]) == (("subjects", 0, field), "missing")


@pytest.mark.parametrize("number", ["---", " ./ ", "AB\n12"])
def test_document_number_needs_letters_or_digits(number: str) -> None:
    assert locs(with_subject(DOCUMENT, number=number)) == [("subjects", 0, "number")]


def test_document_dates() -> None:
    ok = subject_of(with_subject(DOCUMENT, issued_on="2020-01-01", expires_on="2020-01-01"))
    assert isinstance(ok, Document)
    reversed_dates = with_subject(DOCUMENT, issued_on="2021-01-01", expires_on="2020-12-31")
    assert locs(reversed_dates) == [("subjects", 0, "expires_on")]
    assert locs(with_subject(DOCUMENT, issued_on="2023-02-29")) == [("subjects", 0, "issued_on")]
    assert locs(with_subject(DOCUMENT, event_date="2999-01-01")) == [("subjects", 0, "event_date")]


@pytest.mark.parametrize("value", ["1984", "1984-07", "1984-07-15", "2024-02-29", "0001-01-01"])
def test_partial_dates_are_accepted(value: str) -> None:
    assert subject_of(with_subject(PERSON, date_of_birth=value)).date_of_birth == value


@pytest.mark.parametrize(
    "value",
    ["2023-02-29", "1984-13", "1984-00", "1984-07-32", "1984-7", "84", "0000", "1984/07", "١٩٨٤"],
)
def test_invalid_partial_dates_are_rejected(value: str) -> None:
    assert locs(with_subject(PERSON, date_of_birth=value)) == [("subjects", 0, "date_of_birth")]


@pytest.mark.parametrize("value", ["2999", "2999-01", "2999-01-01"])
def test_date_of_birth_in_the_future_is_rejected(value: str) -> None:
    [error] = errors(with_subject(PERSON, date_of_birth=value))
    assert (error["loc"], error["type"]) == (("subjects", 0, "date_of_birth"), "date_in_future")


def test_person_lists() -> None:
    person = subject_of(with_subject(PERSON, nationalities=["fin", "SWE", "D"]))
    assert person.nationalities == ["FI", "SE", "DE"]
    assert locs(with_subject(PERSON, nationalities=["FI", "SE", "FIN"])) == [
        ("subjects", 0, "nationalities", 2)
    ]
    assert locs(with_subject(PERSON, warnings=["armed", "armed"])) == [
        ("subjects", 0, "warnings", 1)
    ]
    assert locs(with_subject(PERSON, surnames=["A"] * 21)) == [("subjects", 0, "surnames")]
    assert locs(with_subject(PERSON, surnames=["A" * 101])) == [("subjects", 0, "surnames", 0)]
    assert locs(with_subject(PERSON, forenames=["MAT\x00TI"])) == [("subjects", 0, "forenames", 0)]
    assert locs(with_subject(PERSON, sex="male")) == [("subjects", 0, "sex")]
    assert locs(with_subject(PERSON, role="informant")) == [("subjects", 0, "role")]


def test_biometric_refs_are_references_not_data() -> None:
    person = subject_of(with_subject(PERSON, biometric_refs=["AFIS:FI-2026-000123"]))
    assert person.biometric_refs == ["AFIS:FI-2026-000123"]
    blob = "iVBORw0KGgoAAAANSUhEUgAA" * 10 + "=="
    assert locs(with_subject(PERSON, biometric_refs=[blob])) == [
        ("subjects", 0, "biometric_refs", 0)
    ]


def test_person_needs_something_that_identifies_them() -> None:
    [error] = errors(message(subjects=[{"kind": "person", "sex": "F", "role": "missing"}]))
    assert (error["loc"], error["type"]) == (("subjects", 0), "person_unidentified")
    assert subject_of(message(subjects=[{"kind": "person", "aliases": ["Mr X"]}]))


def test_vin_is_normalised_and_check_digit_not_enforced() -> None:
    # Position 9 of the API.md VIN is "Z": no valid North American check digit.
    vehicle = subject_of(with_subject(VEHICLE, vin=" wvw zzz1kzaw 000001 "))
    assert isinstance(vehicle, Vehicle)
    assert vehicle.vin == "WVWZZZ1KZAW000001"


@pytest.mark.parametrize(
    "vin", ["WVWZZZ1KZAW00000I", "WVWZZZ1KZAW00000O", "WVWZZZ1KZAW00000Q", "WVWZZZ1KZAW00001"]
)
def test_invalid_vins_are_rejected(vin: str) -> None:
    [error] = errors(with_subject(VEHICLE, vin=vin))
    assert (error["loc"], error["type"]) == (("subjects", 0, "vin"), "vin")


def test_vehicle_needs_vin_or_plate_with_country() -> None:
    plate_only = {"kind": "vehicle", "plate": "ABC-123"}
    assert locs(message(subjects=[plate_only])) == [("subjects", 0, "registration_country")]
    [error] = errors(message(subjects=[{"kind": "vehicle", "registration_country": "FI"}]))
    assert (error["loc"], error["type"]) == (("subjects", 0), "vehicle_unidentified")
    assert subject_of(message(subjects=[{**plate_only, "registration_country": "FIN"}]))
    assert subject_of(message(subjects=[{**VEHICLE, "plate": "ABC-123"}]))


@pytest.mark.parametrize(
    "category", ["M1", "M1G", "N3G", "M3", "O4", "L1e", "L3e-A2", "L7e-CU", "T", "T1a", "C", "S2b"]
)
def test_eu_vehicle_categories_are_accepted(category: str) -> None:
    assert subject_of(with_subject(VEHICLE, category=category)).category == category


@pytest.mark.parametrize("category", ["M4", "O5", "O1G", "L8e", "X1", "m1", "M 1", "B"])
def test_other_vehicle_categories_are_rejected(category: str) -> None:
    assert locs(with_subject(VEHICLE, category=category)) == [("subjects", 0, "category")]


@pytest.mark.parametrize("cas", ["50-00-0", "7732-18-5", "64-17-5", "300-62-9", "1234567-12-4"])
def test_valid_cas_numbers(cas: str) -> None:
    # formaldehyde, water, ethanol, amphetamine, and the longest form
    assert subject_of(with_subject(SUBSTANCE, cas_rn=cas)).cas_rn == cas


@pytest.mark.parametrize(
    ("cas", "kind"),
    [
        ("7732-18-4", "cas_rn_check_digit"),
        ("50-00-1", "cas_rn_check_digit"),
        ("7732185", "cas_rn_format"),
        ("07732-18-5", "cas_rn_format"),
        ("12345678-12-3", "cas_rn_format"),
        ("5-00-0", "cas_rn_format"),
    ],
)
def test_invalid_cas_numbers(cas: str, kind: str) -> None:
    [error] = errors(with_subject(SUBSTANCE, cas_rn=cas))
    assert (error["loc"], error["type"]) == (("subjects", 0, "cas_rn"), kind)


@settings(database=None)
@given(
    st.from_regex(r"[1-9][0-9]{1,6}", fullmatch=True), st.from_regex(r"[0-9]{2}", fullmatch=True)
)
def test_cas_numbers_with_computed_check_digit_validate(head: str, middle: str) -> None:
    check = cas_check_digit(head + middle)
    valid = f"{head}-{middle}-{check}"
    assert subject_of(with_subject(SUBSTANCE, cas_rn=valid)).cas_rn == valid
    wrong = f"{head}-{middle}-{(check + 1) % 10}"
    assert locs(with_subject(SUBSTANCE, cas_rn=wrong)) == [("subjects", 0, "cas_rn")]


@pytest.mark.parametrize("quantity", ["0", "-1", "1.2345", "NaN", "Infinity", "1e20", "many"])
def test_invalid_quantities(quantity: str) -> None:
    assert locs(with_subject(SUBSTANCE, quantity=quantity, unit="g")) == [
        ("subjects", 0, "quantity")
    ]


def test_quantity_and_unit_go_together() -> None:
    substance = subject_of(with_subject(SUBSTANCE, quantity=0.125, unit="g"))
    assert substance.quantity == Decimal("0.125")
    [error] = errors(with_subject(SUBSTANCE, quantity="3"))
    assert (error["loc"], error["type"]) == (("subjects", 0, "unit"), "unit_missing")
    [error] = errors(with_subject(SUBSTANCE, unit="kg"))
    assert (error["loc"], error["type"]) == (("subjects", 0, "unit"), "quantity_missing")


@pytest.mark.parametrize(("purity", "ok"), [(0, True), (100, True), ("35.5", True), (100.1, False)])
def test_purity_is_a_percentage(purity: object, ok: bool) -> None:
    payload = with_subject(SUBSTANCE, purity_pct=purity)
    if ok:
        assert subject_of(payload).purity_pct == Decimal(str(purity))
    else:
        assert locs(payload) == [("subjects", 0, "purity_pct")]


def test_substance_needs_something_that_identifies_it() -> None:
    [error] = errors(message(subjects=[{"kind": "substance", "quantity": "1", "unit": "g"}]))
    assert (error["loc"], error["type"]) == (("subjects", 0), "substance_unidentified")


def test_subject_kind_errors_point_at_kind() -> None:
    payload = message(subjects=[{"kind": "weapon"}, {"number": "X1"}, PERSON])
    assert locs(payload) == [("subjects", 0, "kind"), ("subjects", 1, "kind")]


def test_nested_errors_name_the_subject_field_path() -> None:
    payload = message()
    payload["subjects"][2]["vin"] = "WVWZZZ1KZAW00000I"
    payload["subjects"][1]["status"] = "found"
    assert locs(payload) == [("subjects", 1, "status"), ("subjects", 2, "vin")]


def test_recipients() -> None:
    msg = MessageIn.model_validate(message(recipients=["SWE", "interpol-ncb", "GBD"]))
    assert msg.recipients == ["SE", "interpol-ncb", "GB"]
    assert locs(message(recipients=["SE", "SWE"])) == [("recipients", 1)]
    assert locs(message(recipients=["SE"] * 51)) == [("recipients",)]
    for bad in ["Se", "x", "-abc", "a" * 64, "ZZ", "se_bureau"]:
        assert locs(message(recipients=["FI", bad])) == [("recipients", 1)], bad


def test_handling_codes() -> None:
    msg = MessageIn.model_validate(message(handling_codes=["H1", "H3"], h3_text="no reuse"))
    assert msg.h3_text == "no reuse"
    assert locs(message(handling_codes=["H3"])) == [("h3_text",)]
    assert locs(message(h3_text="no reuse")) == [("h3_text",)]
    assert locs(message(handling_codes=["H2", "H2"])) == [("handling_codes", 1)]
    assert locs(message(handling_codes=["H4"])) == [("handling_codes", 0)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", "query"),
        ("channel", "email"),
        ("priority", "flash"),
        ("source_reliability", "D"),
        ("info_accuracy", 0),
        ("info_accuracy", 5),
        ("info_accuracy", "2"),
        ("info_accuracy", True),
        ("legal_basis", "dir_2023_977"),
        ("legal_basis", "D"),
        ("language", "xx"),
        ("language", "fin"),
        ("case_ref", "FI\n2026"),
        ("case_ref", "X" * 65),
        ("case_ref", "FI-2026-ä"),
        ("in_reply_to", "not-a-uuid"),
        ("partner_ref", "x" * 129),
        ("classification", "x" * 65),
        ("offence", "drugs\ttrafficking"),
        ("urgency_reason", "x" * 201),
        ("body", "x" * 20_001),
        ("body", "bell\x07"),
    ],
)
def test_envelope_fields_are_checked(field: str, value: object) -> None:
    assert locs(message(**{field: value})) == [(field,)]


def test_envelope_fields_accept_valid_values() -> None:
    reply_to = uuid.uuid4()
    msg = MessageIn.model_validate(
        message(language="FI", in_reply_to=str(reply_to), case_ref="2026/4411 FI", body="a\nb")
    )
    assert (msg.language, msg.in_reply_to, msg.body) == ("fi", reply_to, "a\nb")


def test_message_needs_a_subject_or_a_body() -> None:
    basis = {"legal_basis": "FD_2006_960"}
    [error] = errors({"type": "notice", **basis})
    assert (error["loc"], error["type"]) == (("body",), "message_empty")
    assert locs({"type": "notice", "body": "   ", **basis}) == [("body",)]
    assert locs(message(subjects=[PERSON] * 101)) == [("subjects",)]
    assert MessageIn.model_validate({"type": "ack", "subjects": [DOCUMENT], **basis}).body is None


def test_legal_basis_is_required() -> None:
    [error] = errors({"type": "notice", "body": "text"})
    assert (error["loc"], error["type"]) == (("legal_basis",), "missing")


@pytest.mark.parametrize(
    ("subject", "field", "value"),
    [
        (PERSON, "surnames", [CANARY * 20]),
        (PERSON, "forenames", [CANARY + "\x00"]),
        (PERSON, "nationalities", [CANARY[:3]]),
        (PERSON, "date_of_birth", CANARY),
        (PERSON, "sex", CANARY),
        (PERSON, "biometric_refs", [CANARY + " data"]),
        (DOCUMENT, "number", CANARY * 10),
        (DOCUMENT, "issuing_country", CANARY[:2]),
        (DOCUMENT, "issued_on", CANARY),
        (VEHICLE, "vin", CANARY + "00000000"),
        (VEHICLE, "category", CANARY[:8]),
        (SUBSTANCE, "cas_rn", CANARY),
        (SUBSTANCE, "quantity", CANARY),
        (SUBSTANCE, "markings", CANARY * 300),
        (PERSON, "kind", CANARY),
    ],
)
def test_subject_errors_never_echo_the_value(
    subject: dict[str, Any], field: str, value: object
) -> None:
    assert_no_echo(with_subject(subject, **{field: value}), field, value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recipients", [CANARY]),
        ("in_reply_to", CANARY),
        ("case_ref", CANARY + "\x01"),
        ("legal_basis", CANARY.lower()),
        ("language", CANARY[:2]),
        ("body", CANARY * 3000),
        ("h3_text", CANARY),
    ],
)
def test_envelope_errors_never_echo_the_value(field: str, value: object) -> None:
    assert_no_echo(message(**{field: value}), field, value)


def assert_no_echo(payload: dict[str, Any], field: str, value: object) -> None:
    """The rejected field is reported, and neither msg nor ctx carries its value."""
    rejected = str(value[0] if isinstance(value, list) else value).strip()
    found = errors(payload)
    assert any(field in error["loc"] for error in found)
    for error in found:
        shown = error["msg"] + repr(error.get("ctx", ""))
        assert rejected[:9] not in shown, error
        assert CANARY[:3] not in shown, error
