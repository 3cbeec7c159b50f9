"""Blind-index tokens: the normalised identifiers of a message, in plaintext.

Another module HMACs these tokens into the blind index, so that a lookup
(POST /v1/lookups) can tell whether a document, vehicle or person has been in
traffic without decrypting any message. Stored messages and lookups must produce
the same token for the same identifier however it was typed, so both sides go
through the normalisers below: `xx 123-4567` and `XX1234567` are one document
number, `Mäki` and `MAKI` one name, `D` and `DE` one country.
"""

import unicodedata
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from commcentre.messages.mrz import parse_mrz
from commcentre.messages.national_ids import check_national_id
from commcentre.messages.normalise import (
    normalize_identifier as normalize_identifier,  # re-exported: imported from here elsewhere
)
from commcentre.messages.schemas import (
    CountryCode,
    Document,
    Identifier,
    InputModel,
    IssuerCode,
    MessageIn,
    Name,
    PartialDate,
    Person,
    Vehicle,
    Vin,
    tagged_union_list,
)


class IdentifierKind(StrEnum):
    """What a blind-index token identifies."""

    DOCUMENT = "document"  # issuing country | number
    DOCUMENT_NUMBER = "document_number"  # number alone, for lookups without a country
    VIN = "vin"
    PLATE = "plate"  # registration country | plate
    PERSON = "person"  # surname | forename | date of birth (at one precision)
    NATIONAL_ID = "national_id"  # issuing country | id (Finnish codes keep the century sign)
    CASE_REF = "case_ref"


Token = tuple[IdentifierKind, str]

# Latin letters that carry no decomposition in Unicode, so NFKD cannot strip them.
_NO_DECOMPOSITION = str.maketrans(
    {"Ø": "O", "Æ": "AE", "Œ": "OE", "Đ": "D", "Ð": "D", "Ł": "L", "Þ": "TH", "Ħ": "H"}
)
_MAX_NAMES = 10  # per side of the surname x forename product, to bound the token count


def normalize_name(value: str) -> str:
    """A name as indexed: diacritics stripped, upper case, letters A-Z only.

    ``normalize_name("Virtanen-Mäki") == "VIRTANENMAKI"``. Letters outside the Latin
    script are dropped, so a name written only in them normalises to ``""``.
    """
    decomposed = unicodedata.normalize("NFKD", value.upper().translate(_NO_DECOMPOSITION))
    return "".join(char for char in decomposed if "A" <= char <= "Z")


def dob_precisions(date_of_birth: str | None) -> list[str]:
    """The precisions at which a stored date of birth is indexed, most precise first.

    ``"1984-07-15"`` -> ``["1984-07-15", "1984-07", "1984", ""]``; none -> ``[""]``.
    The empty precision lets a lookup by name alone find every person of that name.
    """
    if not date_of_birth:
        return [""]
    known = [date_of_birth[:length] for length in (10, 7, 4) if len(date_of_birth) >= length]
    return [*known, ""]


def _distinct(names: list[str]) -> list[str]:
    normalised = (normalize_name(name) for name in names)
    return list(dict.fromkeys(name for name in normalised if name))[:_MAX_NAMES]


def _person_tokens(person: Person) -> set[Token]:
    birth_name = [person.name_at_birth] if person.name_at_birth else []
    # The name at birth goes first so that the cap on surnames never drops it.
    surnames = _distinct([*birth_name, *person.surnames])
    forenames = _distinct(person.forenames)
    return {
        (IdentifierKind.PERSON, f"{surname}|{forename}|{dob}")
        for surname in surnames
        for forename in forenames
        for dob in dob_precisions(person.date_of_birth)
    }


def national_id_token(country: str, national_id: str) -> Token:
    """The token of a validated national id: Finnish codes whole, sign included."""
    # check_national_id gives Finnish codes their one written form; a generic
    # normalisation would drop the "-" century sign and merge different people.
    number = national_id if country == "FI" else normalize_identifier(national_id)
    return (IdentifierKind.NATIONAL_ID, f"{country}|{number}")


def _document_tokens(country: str | None, number: str) -> list[Token]:
    normalised = normalize_identifier(number)
    if country is None:
        return [(IdentifierKind.DOCUMENT_NUMBER, normalised)]
    return [(IdentifierKind.DOCUMENT, f"{country}|{normalised}")]


def _vehicle_tokens(vin: str | None, plate: str | None, country: str | None) -> list[Token]:
    tokens: list[Token] = []
    if vin is not None:
        tokens.append((IdentifierKind.VIN, normalize_identifier(vin)))
    if plate is not None and country is not None:
        tokens.append((IdentifierKind.PLATE, f"{country}|{normalize_identifier(plate)}"))
    return tokens


def message_tokens(msg: MessageIn) -> set[Token]:
    """Every blind-index token of a message.

    Documents give ``country|number`` and the bare number; vehicles the VIN and
    ``country|plate`` (a plate without a country is not indexed: it is not unique);
    persons ``surname|forename|dob`` for each surname and name at birth times each
    forename (at most 10 x 10) and each precision of the date of birth
    (:func:`dob_precisions`), and ``country|national id`` when the id's country is
    given; persons without a surname or forename are not indexed by name. A
    document's MRZ adds its document number (the same as ``number``, which the
    schema checks).
    The case reference gives one token.
    """
    tokens: set[Token] = set()
    for subject in msg.subjects:
        if isinstance(subject, Document):
            numbers = {subject.number}
            if subject.mrz is not None:
                numbers.add(parse_mrz(subject.mrz).document_number)
            for number in numbers:
                tokens.update(_document_tokens(subject.issuing_country, number))
                tokens.update(_document_tokens(None, number))
        elif isinstance(subject, Vehicle):
            tokens.update(_vehicle_tokens(subject.vin, subject.plate, subject.registration_country))
        elif isinstance(subject, Person):
            tokens.update(_person_tokens(subject))
            if subject.national_id is not None and subject.national_id_country is not None:
                tokens.add(national_id_token(subject.national_id_country, subject.national_id))
    if msg.case_ref is not None:
        tokens.add((IdentifierKind.CASE_REF, normalize_identifier(msg.case_ref)))
    return tokens


class DocumentQuery(InputModel):
    """Has this document number (from this issuing country, if given) been in traffic?"""

    kind: Literal["document"]
    number: Identifier
    issuing_country: IssuerCode | None = None


class VehicleQuery(InputModel):
    """Has this vehicle been in traffic? Needs a VIN, or a plate and its country."""

    kind: Literal["vehicle"]
    vin: Vin | None = None
    plate: Identifier | None = None
    registration_country: CountryCode | None = Field(default=None, validate_default=True)

    @field_validator("registration_country")
    @classmethod
    def _plate_needs_country(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Plates are indexed with their country only: a bare plate could never match.
        if value is None and info.data.get("plate") is not None:
            raise PydanticCustomError(
                "plate_without_country", "registration_country is required with a plate"
            )
        return value

    @model_validator(mode="after")
    def _identifiable(self) -> "VehicleQuery":
        if self.vin is None and self.plate is None:
            raise PydanticCustomError(
                "vehicle_unidentified", "a vehicle query needs a vin, or a plate and country"
            )
        return self


class PersonQuery(InputModel):
    """Has this person been in traffic? Matches the date of birth at the precision given."""

    kind: Literal["person"]
    surname: Name
    forename: Name
    date_of_birth: PartialDate | None = None

    @field_validator("surname", "forename")
    @classmethod
    def _latin_letters(cls, value: str) -> str:
        # Stored names are indexed in Latin letters only; a query without any
        # could never match, and an empty token must not be looked up.
        if not normalize_name(value):
            raise PydanticCustomError("name_not_latin", "must contain Latin letters")
        return value


class NationalIdQuery(InputModel):
    """Has the person with this national id (issued by this country) been in traffic?"""

    kind: Literal["national_id"]
    # Before number: the country decides how the number is validated.
    country: CountryCode
    number: Identifier

    @field_validator("number")
    @classmethod
    def _valid_for_country(cls, value: str, info: ValidationInfo) -> str:
        country = info.data.get("country")
        return value if country is None else check_national_id(country, value)


AnyQuery = DocumentQuery | VehicleQuery | PersonQuery | NationalIdQuery
LookupQuery = Annotated[AnyQuery, Field(discriminator="kind")]

LOOKUP_EXAMPLE: dict[str, Any] = {
    "queries": [
        {"kind": "document", "number": "XP 123 4567", "issuing_country": "FIN"},
        {"kind": "vehicle", "vin": "WVWZZZ1KZAW000001"},
        {"kind": "vehicle", "plate": "ABC-123", "registration_country": "FI"},
        {"kind": "person", "surname": "Virtanen", "forename": "Matti", "date_of_birth": "1984"},
    ]
}


class LookupRequest(InputModel):
    """The body of POST /v1/lookups: 1 to 100 hit checks."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"example": LOOKUP_EXAMPLE}
    )

    queries: Annotated[
        list[LookupQuery],
        tagged_union_list("document", "vehicle", "person", "national_id"),
        Field(min_length=1, max_length=100),
    ]


def query_tokens(query: AnyQuery) -> list[Token]:
    """The tokens whose presence in the blind index means a hit for this query.

    - Document with an issuing country: ``(document, "FI|XP1234567")``; without one:
      ``(document_number, "XP1234567")``, which matches that number from any country.
    - Vehicle: ``(vin, VIN)`` and/or ``(plate, "FI|ABC123")``; either one is a hit.
    - Person: ``(person, "SURNAME|FORENAME|dob")`` with the date of birth exactly as
      given (``""`` when none). Stored persons are indexed at every precision they
      have, so a lookup for ``1984`` finds a record stored as ``1984-07`` or
      ``1984-07-15``, and a lookup for ``1984-07-15`` finds the record stored at that
      full date, but not one stored only as ``1984-07`` (the day is unknown there, so
      it would be a guess). A lookup without a date of birth finds every person of
      that name, with or without one.
    - National id: ``(national_id, "FI|131052-308T")``; a Finnish code matches only with
      the same century sign.
    """
    if isinstance(query, DocumentQuery):
        return _document_tokens(query.issuing_country, query.number)
    if isinstance(query, VehicleQuery):
        return _vehicle_tokens(query.vin, query.plate, query.registration_country)
    if isinstance(query, NationalIdQuery):
        return [national_id_token(query.country, query.number)]
    surname, forename = normalize_name(query.surname), normalize_name(query.forename)
    return [(IdentifierKind.PERSON, f"{surname}|{forename}|{query.date_of_birth or ''}")]
