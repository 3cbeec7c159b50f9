"""Input schemas for exchange messages: the body of POST /v1/messages.

commcentre's own person/object/event schema with UMF-like labels (DOMAIN.md); it
claims conformance to no EU or Interpol format. Field values are personal data, so
no error message written here contains the rejected value, and pydantic errors
that would (the union tag, UUID parsing) are reworded.
"""

import json
import re
from collections.abc import Hashable
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError, PydanticKnownError

from commcentre.clock import utcnow
from commcentre.messages.mrz import parse_mrz
from commcentre.messages.national_ids import check_national_id
from commcentre.messages.normalise import normalize_identifier
from commcentre.requests.deadlines import (
    ALERT_ARTICLES,
    AlertCategory,
    Form,
    article_of,
    basis_article_problem,
    category_problem,
    form_article_problem,
)

_H = TypeVar("_H", bound=Hashable)


# Closed vocabularies (DOMAIN.md).
class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class MessageType(StrEnum):
    REQUEST = "request"
    REPLY = "reply"
    SPONTANEOUS = "spontaneous"
    HIT = "hit"
    NOTICE = "notice"
    DIFFUSION = "diffusion"
    ACK = "ack"


class Channel(StrEnum):
    INTERPOL = "interpol"
    EUROPOL = "europol"
    SIRENE = "sirene"
    BILATERAL = "bilateral"


class InformationAccess(StrEnum):
    """Dir. (EU) 2023/977 Art. 5(1): is the requested information directly accessible?"""

    DIRECT = "direct"
    INDIRECT = "indirect"


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class HandlingCode(StrEnum):
    """Europol/SIENA handling codes; H3 carries free text in `h3_text`."""

    H0 = "H0"
    H1 = "H1"
    H2 = "H2"
    H3 = "H3"


class SourceReliability(StrEnum):
    """Europol 4x4 evaluation of the source."""

    A = "A"
    B = "B"
    C = "C"
    X = "X"


class Sex(StrEnum):
    M = "M"
    F = "F"
    X = "X"
    U = "U"


class PersonRole(StrEnum):
    SUSPECT = "suspect"
    WANTED = "wanted"
    WITNESS = "witness"
    VICTIM = "victim"
    MISSING = "missing"


class PersonWarning(StrEnum):
    ARMED = "armed"
    VIOLENT = "violent"
    ESCAPED = "escaped"
    SUICIDE_RISK = "suicide_risk"
    PUBLIC_HEALTH = "public_health"
    TERRORISM = "terrorism"


class InterpolNoticeColour(StrEnum):
    """INTERPOL's notices about persons (interpol.int, "About Notices")."""

    RED = "red"  # locate and provisionally arrest, pending extradition
    YELLOW = "yellow"  # locate a missing person, identify one who cannot say who they are
    BLUE = "blue"  # collect information on a person's identity, location or activities
    BLACK = "black"  # information on unidentified bodies
    GREEN = "green"  # warn about a person's criminal activities
    ORANGE = "orange"  # warn of a serious and imminent threat to public safety
    PURPLE = "purple"  # modus operandi, objects, devices, concealment methods
    SILVER = "silver"  # assets linked to a person's criminal activities (pilot since 2025)
    UN_SPECIAL = "un_special"  # INTERPOL-United Nations Security Council Special Notice


class DocumentType(StrEnum):
    PASSPORT = "passport"
    DIPLOMATIC_PASSPORT = "diplomatic_passport"
    SERVICE_PASSPORT = "service_passport"
    ID_CARD = "id_card"
    RESIDENCE_PERMIT = "residence_permit"
    VISA = "visa"
    DRIVING_LICENCE = "driving_licence"
    VEHICLE_REGISTRATION = "vehicle_registration"
    REFUGEE_TRAVEL_DOCUMENT = "refugee_travel_document"
    BLANK = "blank"


class DocumentStatus(StrEnum):
    STOLEN = "stolen"
    STOLEN_FROM_BEARER = "stolen_from_bearer"
    LOST = "lost"
    REVOKED = "revoked"
    INVALID = "invalid"
    STOLEN_BLANK = "stolen_blank"
    FALSE = "false"


class VehicleStatus(StrEnum):
    STOLEN = "stolen"
    MISAPPROPRIATED = "misappropriated"
    SOUGHT_AS_EVIDENCE = "sought_as_evidence"
    EXPORTED = "exported"
    DESTROYED = "destroyed"


class SubstanceForm(StrEnum):
    POWDER = "powder"
    TABLET = "tablet"
    CAPSULE = "capsule"
    LIQUID = "liquid"
    PLANT = "plant"
    RESIN = "resin"
    BLOTTER = "blotter"


class SubstanceUnit(StrEnum):
    G = "g"
    KG = "kg"
    ML = "ml"
    L = "l"
    DOSAGE_UNITS = "dosage_units"
    PLANTS = "plants"


class SubjectKind(StrEnum):
    PERSON = "person"
    DOCUMENT = "document"
    VEHICLE = "vehicle"
    SUBSTANCE = "substance"


def _error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


# Country codes: ISO 3166-1 alpha-2/alpha-3 plus the ICAO Doc 9303 Part 3 codes that
# differ from ISO (Germany's D; the UK nationality categories GBD, GBN, GBO, GBP, GBS),
# and Kosovo: XK, the user-assigned code the EU uses, and RKS, its ICAO code.
_COUNTRIES: dict[str, str] = {
    **{c.alpha_2: c.alpha_2 for c in pycountry.countries},
    **{c.alpha_3: c.alpha_2 for c in pycountry.countries},
    "D": "DE",
    **dict.fromkeys(("GBD", "GBN", "GBO", "GBP", "GBS"), "GB"),
    "XK": "XK",
    "RKS": "XK",
}

# ICAO Doc 9303 Part 3 section 5 codes that name no country, so no ISO alpha-2 exists:
# they are stored as themselves (three letters, never confused with an alpha-2).
ICAO_NATIONALITY_CODES = frozenset(
    {
        "XXA",  # stateless person (Art. 1, 1954 Convention on the Status of Stateless Persons)
        "XXB",  # refugee (Art. 1, 1951 Convention relating to the Status of Refugees)
        "XXC",  # refugee other than XXB
        "XXX",  # person of unspecified nationality
    }
)
ICAO_ORGANISATION_CODES = frozenset(
    {
        "EUE",  # European Union
        "UNO",  # United Nations Organization or one of its officials
        "UNA",  # a specialized agency of the United Nations or one of its officials
        "UNK",  # resident of Kosovo given a travel document by UNMIK
        "XPO",  # INTERPOL or one of its officials
        "XOM",  # Sovereign Military Order of Malta or one of its emissaries
        "XBA",  # African Development Bank
        "XIM",  # African Export-Import Bank
        "XCC",  # Caribbean Community or one of its emissaries
        "XCE",  # Council of Europe
        "XCO",  # Common Market for Eastern and Southern Africa
        "XEC",  # Economic Community of West African States
        "XES",  # Organisation of Eastern Caribbean States
        "XMP",  # Parliamentary Assembly of the Mediterranean
        "XDC",  # Southern African Development Community
    }
)


def _lookup_code(value: str, extra: frozenset[str], expected: str) -> str:
    # isascii() first: str.upper() maps some non-ASCII letters onto ASCII ones.
    code = value.strip().upper() if value.isascii() else ""
    if code in extra:
        return code
    country = _COUNTRIES.get(code)
    if country is None:
        raise _error("country_code", f"unknown country code: expected {expected}")
    return country


def normalize_country(value: str) -> str:
    """ISO 3166-1 alpha-2 for an alpha-2, alpha-3 or ICAO 9303 code, any case."""
    return _lookup_code(value, frozenset(), "ISO 3166-1 alpha-2 or alpha-3, or an ICAO 9303 code")


def normalize_nationality(value: str) -> str:
    """A country as in `normalize_country`, or XXA, XXB, XXC or XXX kept as they are."""
    return _lookup_code(
        value,
        ICAO_NATIONALITY_CODES,
        "ISO 3166-1 alpha-2 or alpha-3, an ICAO 9303 code, or XXA, XXB, XXC, XXX",
    )


def normalize_issuer(value: str) -> str:
    """A country as in `normalize_country`, or an ICAO 9303 organisation code kept as it is."""
    return _lookup_code(
        value,
        ICAO_ORGANISATION_CODES,
        "ISO 3166-1 alpha-2 or alpha-3, an ICAO 9303 code, or an ICAO 9303 organisation "
        "code such as EUE, UNO or XPO",
    )


_PARTIAL_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")


def _check_partial_date(value: str) -> str:
    match = _PARTIAL_DATE.fullmatch(value)
    try:
        if match is None:
            raise ValueError
        year, month, day = (int(part) if part else 1 for part in match.groups())
        date(year, month, day)
    except ValueError:
        raise _error(
            "partial_date", "must be a calendar date written YYYY, YYYY-MM or YYYY-MM-DD"
        ) from None
    return value


_LANGUAGES = frozenset(lang.alpha_2 for lang in pycountry.languages if hasattr(lang, "alpha_2"))


def _check_language(value: str) -> str:
    code = value.lower()
    if not code.isascii() or code not in _LANGUAGES:
        raise _error("language_code", "unknown language code: expected ISO 639-1 (two letters)")
    return code


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; a regex is ~20x
# faster than asking unicodedata per character, and this runs on every text field.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _single_line(value: str) -> str:
    # Control characters in names and codes break logs, CSV exports and partner forms.
    if _CONTROL.search(value):
        raise _error("control_characters", "must not contain control characters")
    return value


def _multi_line(value: str) -> str:
    if _CONTROL_EXCEPT_LAYOUT.search(value):
        raise _error(
            "control_characters", "must not contain control characters except tab and newline"
        )
    return value


def _has_alnum(value: str) -> str:
    # Separators are dropped from the blind index; an identifier of only separators
    # would index as the empty string and match every other such record.
    if not any(char.isalnum() for char in value):
        raise _error("identifier", "must contain at least one letter or digit")
    return value


_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")


def _normalize_vin(value: str) -> str:
    # ISO 3779: I, O and Q are never used. The check digit (position 9) is only
    # mandatory for North American VINs, so it is not verified.
    vin = "".join(value.split()).upper()
    if not value.isascii() or _VIN.fullmatch(vin) is None:
        raise _error("vin", "VIN must be 17 characters from 0-9 and A-Z except I, O and Q")
    return vin


def cas_check_digit(digits: str) -> int:
    """CAS Registry Number check digit of the digits before it (weights 1, 2, 3... from right)."""
    return sum(weight * int(digit) for weight, digit in enumerate(reversed(digits), 1)) % 10


_CAS = re.compile(r"([1-9][0-9]{1,6})-([0-9]{2})-([0-9])")


def _check_cas(value: str) -> str:
    match = _CAS.fullmatch(value)
    if match is None:
        raise _error("cas_rn_format", "CAS registry number must be written NNNNNNN-NN-N")
    if cas_check_digit(match[1] + match[2]) != int(match[3]):
        raise _error("cas_rn_check_digit", "CAS registry number check digit does not match")
    return value


# EU vehicle categories (Reg. 2018/858, 168/2013, 167/2013); suffix G = off-road.
_VEHICLE_CATEGORY = re.compile(
    r"[MN][1-3]G?|O[1-4]|L[1-7]e(?:-[A-Z][A-Z0-9]{0,2})?|(?:T[1-5]|R[1-4]|S[12])[ab]?|C[1-5]|[TCRS]"
)


def _check_vehicle_category(value: str) -> str:
    if _VEHICLE_CATEGORY.fullmatch(value) is None:
        raise _error("vehicle_category", "must be an EU vehicle category such as M1, N3G, O2, L3e")
    return value


_PARTNER_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_COUNTRY_RECIPIENT = re.compile(r"[A-Z]{2,3}")


def _normalize_recipient(value: str) -> str:
    if _PARTNER_ID.fullmatch(value):
        return value
    if _COUNTRY_RECIPIENT.fullmatch(value):
        return normalize_country(value)
    raise _error(
        "recipient",
        "must be a partner id (lowercase letters, digits, '-') or an upper-case country code",
    )


def _latest_today() -> date:
    # Dates arrive from every timezone; the calendar day anywhere is at most one day
    # ahead of UTC, so a date up to tomorrow (UTC) is not in the future for someone.
    return utcnow().date() + timedelta(days=1)


def _not_future(value: date) -> date:
    if value > _latest_today():
        raise _error("date_in_future", "must not be in the future")
    return value


def _partial_not_future(value: str) -> str:
    # ISO strings of equal precision order like the dates they denote.
    if value > _latest_today().isoformat()[: len(value)]:
        raise _error("date_in_future", "must not be in the future")
    return value


def _unique(items: list[_H]) -> list[_H]:
    """Reject repeated items, reporting each repeat at its own index."""
    seen: set[_H] = set()
    errors: list[InitErrorDetails] = []
    for index, item in enumerate(items):
        if item in seen:
            errors.append(
                InitErrorDetails(
                    type=_error("unique_items", "repeats an earlier item"), loc=(index,), input=item
                )
            )
        seen.add(item)
    if errors:
        raise ValidationError.from_exception_data("unique_items", errors)
    return items


def _rebuild(error: ErrorDetails, loc: tuple[str | int, ...]) -> InitErrorDetails:
    if error["type"] == "union_tag_not_found":
        return InitErrorDetails(type="missing", loc=(*loc, "kind"), input=error["input"])
    if error["type"] == "union_tag_invalid":
        # Pydantic's message repeats the rejected tag; list the accepted ones only.
        tags = str(error.get("ctx", {}).get("expected_tags", ""))
        return InitErrorDetails(
            type=_error("union_tag_invalid", f"kind must be one of {tags}"),
            loc=(*loc, "kind"),
            input=error["input"],
        )
    ctx = error.get("ctx")
    try:
        PydanticKnownError(error["type"], ctx)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return InitErrorDetails(
            type=_error(error["type"], error["msg"]), loc=loc, input=error["input"]
        )
    details = InitErrorDetails(type=error["type"], loc=loc, input=error["input"])
    if ctx is not None:
        details["ctx"] = ctx
    return details


def tagged_union_list(*tags: str) -> WrapValidator:
    """Validator for a list of discriminated-union items that reports errors by field path.

    Pydantic puts the union tag into ``loc`` (``('subjects', 1, 'vehicle', 'vin')``);
    clients address fields by path, so the tag is dropped: ``('subjects', 1, 'vin')``.
    """

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            rebuilt = []
            for error in exc.errors():
                loc = error["loc"]
                if len(loc) >= 2 and isinstance(loc[0], int) and loc[1] in tags:
                    loc = (loc[0], *loc[2:])
                rebuilt.append(_rebuild(error, loc))
            raise ValidationError.from_exception_data(exc.title, rebuilt) from None

    return WrapValidator(validate)


def _uuid_without_echo(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # Pydantic's UUID message quotes the offending character.
    try:
        return handler(value)
    except ValidationError:
        raise _error("uuid", "must be a UUID") from None


# Reusable field types.
CountryCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=3),
    AfterValidator(normalize_country),
    Field(
        description="ISO 3166-1 alpha-2; alpha-3 and ICAO 9303 codes are normalised to it "
        "(Kosovo: XK, or RKS normalised to XK)"
    ),
]
NationalityCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=3),
    AfterValidator(normalize_nationality),
    Field(
        description="A country as in CountryCode, or the ICAO 9303 code XXA (stateless), "
        "XXB (refugee, 1951 Convention), XXC (other refugee) or XXX (unspecified), kept as is"
    ),
]
IssuerCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=3),
    AfterValidator(normalize_issuer),
    Field(
        description="A country as in CountryCode, or an ICAO 9303 organisation code kept as "
        "is: EUE, UNO, UNA, UNK, XPO, XOM, XBA, XIM, XCC, XCE, XCO, XEC, XES, XMP, XDC"
    ),
]
PartialDate = Annotated[
    str,
    StringConstraints(min_length=4, max_length=10),
    AfterValidator(_check_partial_date),
    Field(description="YYYY, YYYY-MM or YYYY-MM-DD", examples=["1984-07"]),
]
PastPartialDate = Annotated[PartialDate, AfterValidator(_partial_not_future)]
PastDate = Annotated[date, AfterValidator(_not_future)]
LanguageCode = Annotated[
    str, StringConstraints(min_length=2, max_length=2), AfterValidator(_check_language)
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_single_line)]
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_single_line)
]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_single_line)]
FreeText = Annotated[
    str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_multi_line)
]
Body = Annotated[
    str, StringConstraints(min_length=1, max_length=20_000), AfterValidator(_multi_line)
]
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_single_line),
    AfterValidator(_has_alnum),
]
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_single_line)
]
BiometricRef = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127}$"),
    Field(description="Reference into a biometric system; never biometric data itself"),
]
Vin = Annotated[str, StringConstraints(min_length=1, max_length=40), AfterValidator(_normalize_vin)]
CasNumber = Annotated[str, StringConstraints(max_length=20), AfterValidator(_check_cas)]
VehicleCategory = Annotated[
    str, StringConstraints(max_length=8), AfterValidator(_check_vehicle_category)
]
Recipient = Annotated[
    str,
    StringConstraints(min_length=2, max_length=63),
    AfterValidator(_normalize_recipient),
    Field(description="Partner id (lowercase slug) or country code, normalised to alpha-2"),
]
LegalBasis = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,63}$")]
CaseRef = Annotated[
    str, StringConstraints(max_length=64, pattern=r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")
]


class InputModel(BaseModel):
    """Base of request bodies: unknown fields are rejected, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


MrzLine = Annotated[str, StringConstraints(min_length=30, max_length=44)]


class InterpolNotice(InputModel):
    """An INTERPOL notice published about the person."""

    colour: InterpolNoticeColour
    reference: Reference | None = Field(
        default=None, description="The notice's INTERPOL reference, e.g. A-1234/5-2026"
    )


class Person(InputModel):
    kind: Literal["person"]
    surnames: list[Name] = Field(default_factory=list, max_length=20)
    forenames: list[Name] = Field(default_factory=list, max_length=20)
    name_at_birth: Name | None = None
    aliases: list[Name] = Field(default_factory=list, max_length=20)
    sex: Sex | None = None
    date_of_birth: PastPartialDate | None = None
    place_of_birth: ShortText | None = None
    country_of_birth: CountryCode | None = None
    nationalities: Annotated[list[NationalityCode], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=20
    )
    role: PersonRole | None = None
    warnings: Annotated[list[PersonWarning], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=len(PersonWarning)
    )
    # Before national_id: the country decides how the id is validated.
    national_id_country: CountryCode | None = Field(
        default=None,
        description="The country that issued national_id. With FI the id must be a valid "
        "Finnish personal identity code (century signs of 2023 included). A national id is "
        "indexed for lookups only with its country.",
    )
    national_id: Identifier | None = None
    document_refs: list[Reference] = Field(default_factory=list, max_length=50)
    biometric_refs: list[BiometricRef] = Field(default_factory=list, max_length=50)
    interpol_notice: InterpolNotice | None = None

    @field_validator("national_id")
    @classmethod
    def _national_id_format(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return check_national_id(info.data.get("national_id_country"), value)

    @model_validator(mode="after")
    def _identifiable(self) -> "Person":
        if not (
            self.surnames
            or self.forenames
            or self.name_at_birth
            or self.aliases
            or self.national_id
            or self.document_refs
            or self.biometric_refs
        ):
            raise _error(
                "person_unidentified",
                "a person needs surnames, forenames, name_at_birth, aliases, national_id, "
                "document_refs or biometric_refs",
            )
        return self


class Document(InputModel):
    """A document; Interpol SLTD needs number, type, issuing_country and status."""

    kind: Literal["document"]
    number: Identifier
    type: DocumentType
    issuing_country: IssuerCode
    issued_on: date | None = None
    expires_on: date | None = None
    status: DocumentStatus
    event_date: PastDate | None = None
    event_country: CountryCode | None = None
    mrz: list[MrzLine] | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        description="The machine-readable zone as read, one string per line (ICAO 9303: "
        "TD1 3 x 30, TD2 2 x 36, TD3 2 x 44); its check digits are verified and its "
        "document number must be `number`.",
    )

    @field_validator("mrz")
    @classmethod
    def _mrz_valid(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        mrz = parse_mrz(value)
        number = info.data.get("number")
        if number is not None and normalize_identifier(number) != mrz.document_number:
            raise _error("mrz_number_mismatch", "the MRZ document number is not `number`")
        return value

    @field_validator("expires_on")
    @classmethod
    def _expires_after_issue(cls, value: date | None, info: ValidationInfo) -> date | None:
        issued = info.data.get("issued_on")
        if value is not None and issued is not None and value < issued:
            raise _error("date_order", "expires_on must not be before issued_on")
        return value


class Vehicle(InputModel):
    """A vehicle; needs a VIN, or a plate with its registration country."""

    kind: Literal["vehicle"]
    vin: Vin | None = None
    plate: Identifier | None = None
    registration_country: CountryCode | None = Field(default=None, validate_default=True)
    make: ShortText | None = None
    model: ShortText | None = None
    colour: ShortText | None = None
    category: VehicleCategory | None = None
    status: VehicleStatus | None = None

    @field_validator("registration_country")
    @classmethod
    def _plate_needs_country(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A plate is only unique within its country; without a VIN it must say which.
        vin_absent = "vin" in info.data and info.data["vin"] is None
        if value is None and info.data.get("plate") and vin_absent:
            raise _error("plate_without_country", "registration_country is required with a plate")
        return value

    @model_validator(mode="after")
    def _identifiable(self) -> "Vehicle":
        if self.vin is None and self.plate is None:
            raise _error(
                "vehicle_unidentified", "a vehicle needs a vin, or a plate and registration_country"
            )
        return self


class Substance(InputModel):
    kind: Literal["substance"]
    name: ShortText | None = None
    cas_rn: CasNumber | None = None
    form: SubstanceForm | None = None
    quantity: Decimal | None = Field(default=None, gt=0, max_digits=15, decimal_places=3)
    unit: SubstanceUnit | None = Field(default=None, validate_default=True)
    purity_pct: Decimal | None = Field(default=None, ge=0, le=100, max_digits=6, decimal_places=3)
    markings: FreeText | None = None
    seized_on: PastDate | None = None
    seizure_country: CountryCode | None = None

    @field_validator("unit")
    @classmethod
    def _unit_with_quantity(
        cls, value: SubstanceUnit | None, info: ValidationInfo
    ) -> SubstanceUnit | None:
        if "quantity" not in info.data:  # quantity itself was rejected
            return value
        if info.data["quantity"] is not None and value is None:
            raise _error("unit_missing", "unit is required when quantity is given")
        if info.data["quantity"] is None and value is not None:
            raise _error("quantity_missing", "unit is only allowed together with quantity")
        return value

    @model_validator(mode="after")
    def _identifiable(self) -> "Substance":
        if not (self.name or self.cas_rn or self.form or self.markings):
            raise _error(
                "substance_unidentified", "a substance needs a name, cas_rn, form or markings"
            )
        return self


Subject = Annotated[Person | Document | Vehicle | Substance, Field(discriminator="kind")]

_ALERT_ARTICLE_LIST = ", ".join(str(article) for article in sorted(ALERT_ARTICLES))
# Validation context of a message a client submits: only then are the SIRENE fields
# checked against each other. A partner's message is stored even when they contradict
# each other (it must not be lost), and a stored message is read back unchecked.
OUTBOUND_CONTEXT: dict[str, bool] = {"outbound": True}


def _alert_article(value: int) -> int:
    if value not in ALERT_ARTICLES:
        raise _error("alert_article", f"must be one of {_ALERT_ARTICLE_LIST}")
    return value


class SireneInfo(InputModel):
    """What a SIRENE exchange is about: the form, the SIS alert and the EAW."""

    form: Form = Field(
        description="SIRENE form: A EAW data, G hit, H hit but the action cannot be taken, "
        "I use for another purpose, J data error, L fingerprints/photos, M miscellaneous, "
        "Q misused identity, F flag."
    )
    alert_article: Annotated[int, AfterValidator(_alert_article)] | None = Field(
        None,
        description="Alert article: Reg. 2018/1862 Art. 26, 32, 34, 36, 38, 40; Reg. "
        "2018/1861 Art. 24; Reg. 2018/1860 Art. 3.",
    )
    alert_category: AlertCategory | None = Field(
        None, description="Art. 32 alerts: the point of Reg. 2018/1862 Art. 32(1), a to e."
    )
    sis_alert_ref: Annotated[Reference, Field(max_length=64)] | None = None
    eaw_ref: Annotated[Reference, Field(max_length=64)] | None = None


def sirene_problems(sirene: SireneInfo, legal_basis: str) -> list[InitErrorDetails]:
    """Where the SIRENE fields contradict the legal basis or each other (field paths)."""

    def at(kind: str, message: str, *loc: tuple[str, ...]) -> list[InitErrorDetails]:
        return [InitErrorDetails(type=_error(kind, message), loc=path, input=None) for path in loc]

    problem = basis_article_problem(legal_basis, sirene.alert_article)
    if problem is not None:
        return at("basis_article", problem, ("legal_basis",), ("sirene", "alert_article"))
    article = sirene.alert_article or article_of(legal_basis)
    errors = []
    if (problem := form_article_problem(sirene.form, article)) is not None:
        errors += at("form_article", problem, ("sirene", "form"), ("sirene", "alert_article"))
    if (problem := category_problem(article, sirene.alert_category)) is not None:
        errors += at("alert_category", problem, ("sirene", "alert_category"))
    return errors


# The example of API.md, shown in the OpenAPI documentation.
MESSAGE_EXAMPLE: dict[str, Any] = json.loads("""
{
  "type": "request",
  "channel": "interpol",
  "recipients": ["SE"],
  "priority": "urgent",
  "legal_basis": "DIR_2023_977",
  "handling_codes": ["H2"],
  "source_reliability": "B",
  "info_accuracy": 2,
  "case_ref": "FI-NBI-2026-004411",
  "subjects": [
    {"kind": "person", "surnames": ["VIRTANEN"], "forenames": ["MATTI"],
     "date_of_birth": "1984-07", "nationalities": ["FI"], "role": "suspect"},
    {"kind": "document", "number": "XP1234567", "type": "passport",
     "issuing_country": "FI", "status": "stolen"},
    {"kind": "vehicle", "vin": "WVWZZZ1KZAW000001", "plate": "ABC-123",
     "registration_country": "FI", "status": "stolen"},
    {"kind": "substance", "name": "amphetamine", "form": "powder",
     "quantity": "12.5", "unit": "kg", "purity_pct": 35}
  ],
  "body": "Suspect crossed at Tornio on 2026-11-27; vehicle reported stolen."
}
""")


class MessageIn(InputModel):
    """An outbound exchange message; `id`, `direction` and `status` are set by the server."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"example": MESSAGE_EXAMPLE}
    )

    type: MessageType
    channel: Channel | None = None
    recipients: Annotated[list[Recipient], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=50
    )
    priority: Priority = Priority.NORMAL
    urgency_reason: ShortText | None = None
    legal_basis: LegalBasis
    info_access: InformationAccess | None = Field(
        default=None,
        description=(
            "DIR_2023_977 only: whether the requested information is directly or indirectly "
            "accessible; with an urgent priority it sets the time limit (8 h or 3 days, Art. 5)."
        ),
    )
    handling_codes: Annotated[list[HandlingCode], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=len(HandlingCode)
    )
    h3_text: ShortText | None = Field(default=None, validate_default=True)
    source_reliability: SourceReliability | None = None
    info_accuracy: int | None = Field(default=None, ge=1, le=4, strict=True)
    classification: Code | None = None
    language: LanguageCode | None = None
    offence: Code | None = None
    case_ref: CaseRef | None = None
    in_reply_to: Annotated[UUID, WrapValidator(_uuid_without_echo)] | None = None
    partner_ref: Reference | None = None
    subjects: Annotated[list[Subject], tagged_union_list(*SubjectKind), Field(max_length=100)] = (
        Field(default_factory=list)
    )
    sirene: SireneInfo | None = Field(
        None,
        description="SIRENE exchanges: form, alert article and category, SIS alert id, EAW "
        "reference. The form must fit the alert (docs/requests.md); the sirene-like partner "
        "format carries them.",
    )
    body: Body | None = Field(default=None, validate_default=True)

    @field_validator("info_access")
    @classmethod
    def _info_access_under_the_directive(
        cls, value: InformationAccess | None, info: ValidationInfo
    ) -> InformationAccess | None:
        basis = info.data.get("legal_basis")
        if value is not None and basis is not None and basis != "DIR_2023_977":
            raise _error(
                "info_access_without_directive", "info_access is only for DIR_2023_977 messages"
            )
        return value

    @field_validator("h3_text")
    @classmethod
    def _h3_text_with_h3(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "handling_codes" not in info.data:  # handling_codes itself was rejected
            return value
        has_h3 = HandlingCode.H3 in info.data["handling_codes"]
        if has_h3 and value is None:
            raise _error("h3_text_missing", "h3_text is required with handling code H3")
        if not has_h3 and value is not None:
            raise _error("h3_text_without_h3", "h3_text is only allowed with handling code H3")
        return value

    @field_validator("body")
    @classmethod
    def _content(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("subjects") == []:
            raise _error("message_empty", "a message needs at least one subject or a body")
        return value

    @model_validator(mode="after")
    def _sirene_fits(self, info: ValidationInfo) -> "MessageIn":
        context = info.context
        if self.sirene is not None and isinstance(context, dict) and context.get("outbound"):
            errors = sirene_problems(self.sirene, self.legal_basis)
            if errors:
                raise ValidationError.from_exception_data("MessageIn", errors)
        return self
