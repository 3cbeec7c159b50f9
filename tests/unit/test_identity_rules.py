"""Identity rules of subjects: ICAO 9303 codes, Kosovo, Finnish identity codes, MRZ, notices.

Each test names the legal or standard text it holds the schema to.
"""

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from commcentre.messages.identifiers import (
    IdentifierKind,
    LookupRequest,
    message_tokens,
    query_tokens,
)
from commcentre.messages.schemas import MESSAGE_EXAMPLE, Document, MessageIn, Person

CANARY = "QZXCANARY"
PERSON: dict[str, Any] = {"kind": "person", "surnames": ["VIRTANEN"], "forenames": ["MATTI"]}
DOCUMENT: dict[str, Any] = {
    "kind": "document",
    "number": "L898902C3",
    "type": "passport",
    "issuing_country": "FI",
    "status": "stolen",
}
# The specimens of ICAO Doc 9303: Part 4 (TD3, Appendix B), Part 5 (TD1), Part 6 (TD2).
TD3 = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]
TD1 = [
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
]
TD2 = ["I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6"]

FI_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def icao_check(field: str) -> int:
    """ICAO Doc 9303 Part 3 s. 4.9, written out here independently of the code under test."""
    values = {"<": 0} | {str(d): d for d in range(10)} | {chr(65 + i): 10 + i for i in range(26)}
    return sum(values[char] * (7, 3, 1)[i % 3] for i, char in enumerate(field)) % 10


def fi_code(ddmmyy: str, sign: str, individual: str) -> str:
    """A Finnish personal identity code with its check character, computed here on purpose
    rather than by the code under test (Government Decree 128/2010 s. 2)."""
    return f"{ddmmyy}{sign}{individual}{FI_CHECK[int(ddmmyy + individual) % 31]}"


def subject(base: dict[str, Any], **changes: Any) -> Any:
    fields = {k: v for k, v in {**base, **changes}.items() if v is not None}
    payload = {"type": "request", "legal_basis": "DIR_2023_977", "subjects": [fields]}
    return MessageIn.model_validate(payload).subjects[0]


def rejected(base: dict[str, Any], **changes: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        subject(base, **changes)
    return [dict(error) for error in caught.value.errors()]


# ICAO Doc 9303 Part 3 section 5 -------------------------------------------------------


@pytest.mark.parametrize("code", ["XXA", "XXB", "XXC", "XXX", "xxa"])
def test_icao_nationality_codes_are_kept_as_themselves(code: str) -> None:
    """ICAO Doc 9303 Part 3 s. 5: XXA stateless person (1954 Convention, Art. 1), XXB refugee
    (1951 Convention, Art. 1), XXC other refugee, XXX unspecified nationality. No ISO 3166-1
    code exists for these, so they are stored in upper case as they are."""
    person: Person = subject(PERSON, nationalities=["FI", code])
    assert person.nationalities == ["FI", code.upper()]


@pytest.mark.parametrize(
    "code", ["EUE", "UNO", "UNA", "UNK", "XPO", "XOM", "XBA", "XIM", "XCC", "XCE", "XDC", "xpo"]
)
def test_icao_organisation_codes_issue_documents(code: str) -> None:
    """ICAO Doc 9303 Part 3 s. 5: travel documents issued by the European Union (EUE), the
    United Nations (UNO, UNA; UNK for UNMIK in Kosovo), INTERPOL (XPO), the Sovereign
    Military Order of Malta (XOM) and the other listed organisations carry these codes as
    issuing state or organisation; they stay as they are, with no ISO equivalent."""
    document: Document = subject(DOCUMENT, issuing_country=code)
    assert document.issuing_country == code.upper()


@pytest.mark.parametrize(
    ("field", "base", "code"),
    [
        ("nationalities", PERSON, ["EUE"]),  # an organisation is no nationality
        ("nationalities", PERSON, ["XPO"]),
        ("issuing_country", DOCUMENT, "XXA"),  # a status issues no documents
        ("issuing_country", DOCUMENT, "XXX"),
        ("country_of_birth", PERSON, "XXB"),
        ("event_country", DOCUMENT, "EUE"),
    ],
)
def test_icao_special_codes_only_where_they_make_sense(
    field: str, base: dict[str, Any], code: Any
) -> None:
    """ICAO Doc 9303 Part 3 s. 5 codes stand for a status or an organisation, not a place:
    no one is born in "refugee", and no organisation is a nationality or a scene."""
    [error] = rejected(base, **{field: code})
    assert error["loc"][2] == field
    assert error["type"] == "country_code"


@pytest.mark.parametrize("code", ["XK", "xk", "RKS"])
def test_kosovo_is_accepted_and_normalised_to_xk(code: str) -> None:
    """Kosovo: XK is the user-assigned ISO 3166 code the EU and its systems use, RKS its ICAO
    Doc 9303 Part 3 code; both mean one country, stored as XK (the alpha-2 form)."""
    document: Document = subject(DOCUMENT, issuing_country=code, event_country=code)
    assert (document.issuing_country, document.event_country) == ("XK", "XK")
    person: Person = subject(PERSON, nationalities=[code], country_of_birth=code)
    assert (person.nationalities, person.country_of_birth) == (["XK"], "XK")
    with pytest.raises(ValidationError):
        subject(PERSON, nationalities=["XK", "RKS"])  # the same nationality twice


def test_icao_codes_reach_the_index_as_stored() -> None:
    """A document issued by the EU is found by its ICAO code (Doc 9303 Part 3 s. 5), and one
    from Kosovo whichever of XK and RKS the lookup uses."""
    eu = MessageIn.model_validate(
        {
            "type": "request",
            "legal_basis": "DIR_2023_977",
            "subjects": [
                {**DOCUMENT, "number": "EU0001234", "issuing_country": "EUE"},
                {**DOCUMENT, "number": "KS0001234", "issuing_country": "RKS"},
            ],
        }
    )
    tokens = message_tokens(eu)
    lookup = LookupRequest.model_validate(
        {
            "queries": [
                {"kind": "document", "number": "eu 000 1234", "issuing_country": "eue"},
                {"kind": "document", "number": "KS0001234", "issuing_country": "XK"},
            ]
        }
    )
    for query in lookup.queries:
        assert set(query_tokens(query)) <= tokens


# Finnish personal identity code -------------------------------------------------------


@pytest.mark.parametrize(
    ("ddmmyy", "sign"),
    [
        ("131052", "-"),  # 1900s
        ("131052", "Y"),  # 1900s, signs of 2023
        ("131052", "X"),
        ("131052", "W"),
        ("131052", "V"),
        ("131052", "U"),
        ("010105", "A"),  # 2000s
        ("010105", "B"),  # 2000s, signs of 2023
        ("010105", "C"),
        ("010105", "D"),
        ("010105", "E"),
        ("010105", "F"),
        ("290288", "+"),  # 1800s; 1888 was a leap year
    ],
)
def test_finnish_identity_codes_with_every_century_sign(ddmmyy: str, sign: str) -> None:
    """Government Decree on the Population Information System 128/2010 s. 2, as amended from
    1 January 2023 (DVV, "Henkilötunnuksen välimerkkiuudistus"): the century sign is + for
    the 1800s, - or Y, X, W, V, U for the 1900s, A or B, C, D, E, F for the 2000s; the check
    character is DDMMYYZZZ modulo 31 in 0123456789ABCDEFHJKLMNPRSTUVWXY."""
    code = fi_code(ddmmyy, sign, "308")
    person: Person = subject(PERSON, national_id=code.lower(), national_id_country="FI")
    assert person.national_id == code


def test_the_check_character_agrees_with_dvv_test_codes() -> None:
    """DVV's published test codes (fictitious people, so individual numbers 900-999) were
    computed by the population register: the check characters here agree with them."""
    for published in ("010594Y9032", "020594X903P", "010516B903X", "020504A902E", "020504B904H"):
        assert fi_code(published[:6], published[6], published[7:10]) == published


def test_the_published_example_code_validates() -> None:
    """131052-308T, the example of the Population Register Centre's leaflet: its check
    character is T (131052308 mod 31 = 25)."""
    person: Person = subject(PERSON, national_id="131052-308T", national_id_country="FI")
    assert person.national_id == "131052-308T"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("131052-308U", "fi_identity_code_check"),  # T expected
        ("131052Y308A", "fi_identity_code_check"),
        ("300252-308T", "fi_identity_code_date"),  # 30 February
        ("290201A308T", "fi_identity_code_date"),  # 2001 is no leap year
        (fi_code("290200", "-", "308"), "fi_identity_code_date"),  # 1900 is no leap year
        ("010199F0025", "fi_identity_code_date"),  # 2099: born in the future
        ("131052-001T", "fi_identity_code_individual_number"),
        ("010594Y9032", "fi_identity_code_temporary"),  # DVV test code: 900-999 are temporary
        ("131052G308T", "fi_identity_code_format"),  # G is no century sign
        ("131052-308G", "fi_identity_code_format"),  # G is never a check character
        ("131052 308T", "fi_identity_code_format"),
        ("131052-308", "fi_identity_code_format"),
        ("\uff11\uff13\uff11\uff10\uff15\uff12-308T", "fi_identity_code_format"),  # full width
    ],
)
def test_invalid_finnish_identity_codes_are_rejected(code: str, kind: str) -> None:
    """Government Decree 128/2010 s. 2 (as amended 2023): a real date in the century of its
    sign, an individual number 002-899, the right check character. The code is personal
    data: it never appears in the error."""
    [error] = rejected(PERSON, national_id=code, national_id_country="FI")
    assert error["loc"] == ("subjects", 0, "national_id")
    assert error["type"] == kind
    assert code not in str(error["msg"])


def test_century_signs_are_not_collapsed_in_the_index() -> None:
    """Since 2023 the century sign distinguishes people (DVV: without its sign a code no
    longer identifies anyone): 131052-308T and 131052Y308T are two people and must not
    share a blind-index token, though separators are otherwise dropped from identifiers."""
    minus = fi_code("131052", "-", "308")
    why = fi_code("131052", "Y", "308")
    tokens = [
        message_tokens(
            MessageIn.model_validate(
                {
                    "type": "request",
                    "legal_basis": "DIR_2023_977",
                    "subjects": [{**PERSON, "national_id": code, "national_id_country": "FI"}],
                }
            )
        )
        for code in (minus, why)
    ]
    ids = [{t for t in found if t[0] == IdentifierKind.NATIONAL_ID} for found in tokens]
    assert ids == [
        {(IdentifierKind.NATIONAL_ID, f"FI|{minus}")},
        {(IdentifierKind.NATIONAL_ID, f"FI|{why}")},
    ]
    query = LookupRequest.model_validate(
        {"queries": [{"kind": "national_id", "country": "fin", "number": minus.lower()}]}
    ).queries[0]
    assert set(query_tokens(query)) == ids[0]


def test_national_ids_of_other_countries_are_free_form() -> None:
    """Only Finland's format is checked; another country's id is indexed with its country
    and the usual separator-free normalisation."""
    msg = MessageIn.model_validate(
        {
            "type": "request",
            "legal_basis": "DIR_2023_977",
            "subjects": [{**PERSON, "national_id": "19840715-1234", "national_id_country": "SE"}],
        }
    )
    assert (IdentifierKind.NATIONAL_ID, "SE|198407151234") in message_tokens(msg)
    unindexed = MessageIn.model_validate(
        {
            "type": "request",
            "legal_basis": "DIR_2023_977",
            "subjects": [{**PERSON, "national_id": "X1"}],
        }
    )
    assert not any(kind == IdentifierKind.NATIONAL_ID for kind, _ in message_tokens(unindexed))


# Machine-readable zone ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mrz", "number"), [(TD3, "L898902C3"), (TD1, "D23145890"), (TD2, "D23145890")]
)
def test_icao_specimen_mrzs_validate(mrz: list[str], number: str) -> None:
    """ICAO Doc 9303 Part 3 s. 4.9 check digits (weights 7, 3, 1; '<' = 0, A-Z = 10-35) on
    the specimens of Parts 4 (TD3, 2 x 44), 5 (TD1, 3 x 30) and 6 (TD2, 2 x 36)."""
    document: Document = subject(DOCUMENT, number=number, mrz=mrz)
    assert document.mrz == mrz


def _replace(line: str, position: int, char: str) -> str:
    return line[: position - 1] + char + line[position:]


@pytest.mark.parametrize(
    ("mrz", "line", "position", "what"),
    [
        (TD3, 2, 10, "document number"),
        (TD3, 2, 20, "date of birth"),
        (TD3, 2, 28, "date of expiry"),
        (TD3, 2, 43, "personal number"),
        (TD3, 2, 44, "whole zone (composite)"),
        (TD1, 1, 15, "document number"),
        (TD1, 2, 7, "date of birth"),
        (TD1, 2, 15, "date of expiry"),
        (TD1, 2, 30, "whole zone (composite)"),
        (TD2, 2, 10, "document number"),
        (TD2, 2, 20, "date of birth"),
        (TD2, 2, 28, "date of expiry"),
        (TD2, 2, 36, "whole zone (composite)"),
    ],
)
def test_a_wrong_check_digit_is_named(mrz: list[str], line: int, position: int, what: str) -> None:
    """ICAO Doc 9303 Part 3 s. 4.9: each check digit is verified; the error names the one
    that failed and where it is, and quotes nothing of the zone (a person's data)."""
    broken = copy.copy(mrz)
    digit = broken[line - 1][position - 1]
    broken[line - 1] = _replace(broken[line - 1], position, str((int(digit) + 1) % 10))
    number = "L898902C3" if mrz is TD3 else "D23145890"
    [error] = rejected(DOCUMENT, number=number, mrz=broken)
    assert error["loc"] == ("subjects", 0, "mrz")
    assert error["type"] == "mrz_check_digit"
    assert f"check digit of the {what} does not match" in error["msg"]
    assert f"line {line}, character {position}" in error["msg"]
    assert "ERIKSSON" not in error["msg"]


def test_a_long_document_number_continues_into_the_optional_data() -> None:
    """ICAO Doc 9303 Part 5 (TD1): a document number over 9 characters puts '<' in the check
    digit's place and continues, with its check digit, in the optional data."""
    number = "D23145890734"
    first = f"I<UTO{number[:9]}<{number[9:]}{icao_check(number)}".ljust(30, "<")
    second = "7408122F1204159UTO<<<<<<<<<<<"
    composite = first[5:30] + second[0:7] + second[8:15] + second[18:29]
    mrz = [first, second + str(icao_check(composite)), TD1[2]]
    document: Document = subject(DOCUMENT, number=number, mrz=mrz)
    assert document.mrz == mrz
    broken = [_replace(first, 19, str((icao_check(number) + 1) % 10)), mrz[1], mrz[2]]
    [error] = rejected(DOCUMENT, number=number, mrz=broken)
    assert "document number does not match (line 1, character 19)" in error["msg"]


@pytest.mark.parametrize(
    "mrz",
    [
        TD3[:1],  # one line
        [TD3[0], TD3[1][:43]],  # 44 and 43
        [TD1[0], TD1[1]],  # TD1 needs three lines
        [TD3[0].lower(), TD3[1]],
        [TD3[0].replace("<", " "), TD3[1]],
    ],
)
def test_a_malformed_mrz_is_rejected_on_its_field(mrz: list[str]) -> None:
    """ICAO Doc 9303 Parts 4-6: TD1 is 3 x 30, TD2 2 x 36, TD3 2 x 44, in A-Z, 0-9 and '<'."""
    errors = rejected(DOCUMENT, mrz=mrz)
    assert {error["loc"][:3] for error in errors} == {("subjects", 0, "mrz")}


def test_the_mrz_number_must_be_the_documents_number() -> None:
    """A document whose MRZ names another number is two documents in one record: the hit
    check would find it under a number it does not carry."""
    [error] = rejected(DOCUMENT, number="XP1234567", mrz=TD3)
    assert (error["loc"], error["type"]) == (("subjects", 0, "mrz"), "mrz_number_mismatch")
    document: Document = subject(DOCUMENT, number="l89 890-2c3", mrz=TD3)
    assert document.number == "l89 890-2c3"


def test_the_mrz_number_is_indexed_like_the_number() -> None:
    """The MRZ's document number gives the same tokens as the number (no new identifiers)."""
    base = {"type": "request", "legal_basis": "DIR_2023_977"}
    with_mrz = MessageIn.model_validate({**base, "subjects": [{**DOCUMENT, "mrz": TD3}]})
    without = MessageIn.model_validate({**base, "subjects": [DOCUMENT]})
    assert message_tokens(with_mrz) == message_tokens(without)
    assert (IdentifierKind.DOCUMENT, "FI|L898902C3") in message_tokens(with_mrz)


# INTERPOL notices -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "colour",
    ["red", "yellow", "blue", "black", "green", "orange", "purple", "silver", "un_special"],
)
def test_interpol_notice_colours(colour: str) -> None:
    """INTERPOL's notices (interpol.int, "About Notices"): Red, Yellow, Blue, Black, Green,
    Orange, Purple, the INTERPOL-United Nations Security Council Special Notice, and the
    Silver Notice (asset tracing, pilot from January 2025)."""
    notice = {"colour": colour, "reference": "A-1234/5-2026"}
    person: Person = subject(PERSON, interpol_notice=notice)
    assert person.interpol_notice is not None
    assert person.interpol_notice.colour == colour
    assert person.interpol_notice.reference == "A-1234/5-2026"


@pytest.mark.parametrize(
    "notice",
    [{"colour": "pink"}, {"reference": "A-1/2"}, {"colour": "red", "extra": 1}, "red"],
)
def test_bad_interpol_notices_are_rejected(notice: Any) -> None:
    """Only INTERPOL's own notice types; unknown fields are refused like everywhere else."""
    errors = rejected(PERSON, interpol_notice=notice)
    assert all(error["loc"][:3] == ("subjects", 0, "interpol_notice") for error in errors)


def test_the_api_example_still_validates() -> None:
    """The new fields are optional: the API.md example message is unchanged."""
    MessageIn.model_validate(MESSAGE_EXAMPLE)
