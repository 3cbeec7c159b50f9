"""What commcentre's partner wire formats share: parsing results, errors, field placement.

No public schema exists for Interpol I-24/7, Europol SIENA/UMF or the SIRENE
forms (DOMAIN.md). The `interpol`, `europol` and `sirene` adapters therefore
speak commcentre's own "-like" formats with UMF-like labels; none of them
conforms to, or claims to implement, the real thing.

Each format module has a pure `to_wire(message, *, delivery_id, sender) -> dict`
and `from_wire(doc) -> ParsedInbound`, and the round trip is the contract:
`from_wire(to_wire(m)).message == m.content`. Each canonical field has one path
in a document (`field_paths`): `to_wire` puts values there (`place`) and
`from_wire` reads them back (`lift`). `from_wire` checks the structure with
wire models (JSON types, strictly; unknown fields rejected), then the content
with the canonical `MessageIn`, and reports every problem at its JSON path in
the partner's document, never with the rejected value:

ValueError
 └── WireFormatError        `problems`: (path, message) pairs; `path`: the first
"""

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from commcentre.messages.schemas import (
    Document,
    MessageIn,
    Person,
    SubjectKind,
    Substance,
    Vehicle,
)

Loc = tuple[str | int, ...]
Path = tuple[str, ...]
Paths = Mapping[str, Path]
CanonicalSubject = Person | Document | Vehicle | Substance

_M = TypeVar("_M", bound=BaseModel)
# Pydantic messages of these types can quote the input (a union tag, a UUID character).
_QUOTING_ERRORS = frozenset({"union_tag_invalid", "uuid_parsing", "value_error", "assertion_error"})
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class ParsedInbound:
    """A partner document read into the canonical message, with the partner's own id of it."""

    message: MessageIn
    partner_ref: str | None


def json_path(loc: Loc) -> str:
    """`("persons", 0, "dob")` -> `$.persons[0].dob`; other keys are bracketed and quoted."""
    parts = ["$"]
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            parts.append(f".{part}")
        else:  # an unknown key a partner sent: shown, but bounded
            parts.append(f"[{json.dumps(part[:64])}]")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class WireProblem:
    """One problem in a partner document: where, and what (never the value)."""

    path: str
    message: str


class WireFormatError(ValueError):
    """A partner document that does not fit its format; names JSON paths, never values."""

    def __init__(self, problems: Sequence[WireProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))

    @property
    def path(self) -> str:
        """The JSON path of the first problem."""
        return self.problems[0].path if self.problems else "$"


def _problems(exc: ValidationError, locate: Callable[[Loc], Loc]) -> list[WireProblem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        kind = error["type"]
        message = kind.replace("_", " ") if kind in _QUOTING_ERRORS else error["msg"]
        problems.append(WireProblem(json_path(locate(error["loc"])), message))
    return problems


class WireModel(BaseModel):
    """The structure of (part of) a wire document: JSON types, strictly; no unknown fields.

    Values keep their JSON types here (dates and decimals are strings); the
    canonical `MessageIn` checks what they mean.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def validate_wire(model: type[_M], data: object, *, at: Loc = ()) -> _M:
    """Check `data` (found at `at` in the document) against a wire model."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise WireFormatError(_problems(exc, lambda loc: (*at, *loc))) from None


class EnvelopeFields(WireModel):
    """Canonical envelope fields that every format carries under their canonical names."""

    channel: str | None = None
    recipients: list[str] = []
    priority: str
    urgency_reason: str | None = None
    legal_basis: str
    info_access: str | None = None
    classification: str | None = None
    language: str | None = None
    offence: str | None = None
    in_reply_to: str | None = None
    partner_ref: str | None = None
    body: str | None = None


class Handling(WireModel):
    """Europol/SIENA-like handling codes, in the message's order; `h3_text` goes with H3."""

    codes: list[str] = []
    h3_text: str | None = None


class Evaluation(WireModel):
    """The 4x4 evaluation: source reliability A|B|C|X, information accuracy 1..4."""

    source_reliability: str | None = None
    information_accuracy: int | None = None


# Where every format keeps the handling codes and the evaluation.
HANDLING_PATHS: Paths = {
    "handling_codes": ("handling", "codes"),
    "h3_text": ("handling", "h3_text"),
    "source_reliability": ("evaluation", "source_reliability"),
    "info_accuracy": ("evaluation", "information_accuracy"),
}


class PersonFields(WireModel):
    """A person's canonical fields as JSON."""

    surnames: list[str] = []
    forenames: list[str] = []
    name_at_birth: str | None = None
    aliases: list[str] = []
    sex: str | None = None
    date_of_birth: str | None = None
    place_of_birth: str | None = None
    country_of_birth: str | None = None
    nationalities: list[str] = []
    role: str | None = None
    warnings: list[str] = []
    national_id: str | None = None
    document_refs: list[str] = []
    biometric_refs: list[str] = []


class DocumentFields(WireModel):
    """A document's canonical fields as JSON (dates `YYYY-MM-DD`)."""

    number: str | None = None
    type: str | None = None
    issuing_country: str | None = None
    issued_on: str | None = None
    expires_on: str | None = None
    status: str | None = None
    event_date: str | None = None
    event_country: str | None = None


class VehicleFields(WireModel):
    """A vehicle's canonical fields as JSON."""

    vin: str | None = None
    plate: str | None = None
    registration_country: str | None = None
    make: str | None = None
    model: str | None = None
    colour: str | None = None
    category: str | None = None
    status: str | None = None


class SubstanceFields(WireModel):
    """A substance's canonical fields as JSON; `quantity` and `purity_pct` are decimal strings."""

    name: str | None = None
    cas_rn: str | None = None
    form: str | None = None
    quantity: str | None = None
    unit: str | None = None
    purity_pct: str | None = None
    markings: str | None = None
    seized_on: str | None = None
    seizure_country: str | None = None


class Sequenced(WireModel):
    """A subject record kept in a list per kind: `seq` is its place in the message (0..n-1)."""

    seq: int


def field_paths(
    model: type[BaseModel],
    *,
    base: Path = (),
    renames: Paths | None = None,
    exclude: Sequence[str] = (),
) -> dict[str, Path]:
    """Where each canonical field of `model` goes: `base + (name,)` unless renamed.

    `exclude`d fields have no place in the format (or a format-specific one).
    """
    renames = renames or {}
    return {
        name: renames.get(name, (*base, name))
        for name in model.model_fields
        if name not in ("kind", "subjects", *exclude)
    }


# The SIRENE block (form, alert, EAW) travels in the sirene-like format only; the other
# formats have no place for it and leave it out.
SIRENE_ONLY: Final = ("sirene",)


# Subject fields under their canonical names, for formats that do not rename them.
CANONICAL_SUBJECT_PATHS: Mapping[SubjectKind, Paths] = {
    SubjectKind.PERSON: field_paths(Person),
    SubjectKind.DOCUMENT: field_paths(Document),
    SubjectKind.VEHICLE: field_paths(Vehicle),
    SubjectKind.SUBSTANCE: field_paths(Substance),
}


def place(values: Mapping[str, Any], paths: Paths) -> dict[str, Any]:
    """Nest canonical `values` at their wire `paths`; values not given stay absent."""
    doc: dict[str, Any] = {}
    for name, path in paths.items():
        if name in values:
            target = doc
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = values[name]
    return doc


def lift(doc: Mapping[str, Any], paths: Paths) -> dict[str, Any]:
    """Read canonical values back from their wire `paths`; absent and null stay absent."""
    values: dict[str, Any] = {}
    for name, path in paths.items():
        value: Any = doc
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            values[name] = value
    return values


def envelope_values(content: MessageIn) -> dict[str, Any]:
    """The envelope fields as JSON values (no subjects); fields without a value are left out."""
    return content.model_dump(mode="json", exclude_none=True, exclude={"subjects"})


def subject_values(subject: CanonicalSubject) -> dict[str, Any]:
    """A subject's fields as JSON values, without `kind`, unset fields or empty lists.

    Decimals become strings (`"12.5"`), exactly as the canonical value, so they survive.
    """
    dumped = subject.model_dump(mode="json", exclude_none=True, exclude={"kind"})
    return {name: value for name, value in dumped.items() if value != []}


def wire_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC; a naive time is taken to be UTC, as the store keeps it."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class WireSubject:
    """A subject read from a document: canonical values, and where they came from."""

    kind: SubjectKind
    loc: Loc  # the record in the document
    paths: Paths  # canonical field -> path inside the record
    values: dict[str, Any]
    seq: int | None = None


def read_subject(
    kind: SubjectKind, loc: Loc, record: WireModel, paths: Paths, *, seq: int | None = None
) -> WireSubject:
    """Lift a validated wire record into canonical subject values."""
    return WireSubject(kind, loc, paths, lift(record.model_dump(), paths), seq)


def in_seq_order(subjects: Sequence[WireSubject]) -> list[WireSubject]:
    """Subjects kept in separate lists, put back in message order by their `seq` (0..n-1)."""
    count = len(subjects)
    seen: set[int] = set()
    problems: list[WireProblem] = []
    for subject in subjects:
        if subject.seq is None or not 0 <= subject.seq < count or subject.seq in seen:
            message = f"must number the subjects 0 to {count - 1}, each once"
            problems.append(WireProblem(json_path((*subject.loc, "seq")), message))
        else:
            seen.add(subject.seq)
    if problems:
        raise WireFormatError(problems)
    return sorted(subjects, key=lambda subject: subject.seq or 0)


def _locate(loc: Loc, where: Mapping[Loc, Loc]) -> Loc:
    for end in range(len(loc), 0, -1):
        found = where.get(loc[:end])
        if found is not None:
            return (*found, *loc[end:])
    return ()


def assemble(
    envelope: Mapping[str, Any],
    envelope_paths: Paths,
    subjects: Sequence[WireSubject],
    *,
    locations: Mapping[Loc, Loc] | None = None,
) -> MessageIn:
    """Validate the canonical message read from a document; problems point into the document.

    `locations` maps canonical locations the envelope paths do not cover to the document.
    """
    where: dict[Loc, Loc] = {(name,): path for name, path in envelope_paths.items()}
    where.update(locations or {})
    for index, subject in enumerate(subjects):
        where[("subjects", index)] = subject.loc
        for name, path in subject.paths.items():
            where[("subjects", index, name)] = (*subject.loc, *path)
    data = {
        **envelope,
        "subjects": [{"kind": subject.kind.value, **subject.values} for subject in subjects],
    }
    try:
        return MessageIn.model_validate(data)
    except ValidationError as exc:
        raise WireFormatError(_problems(exc, lambda loc: _locate(loc, where))) from None
