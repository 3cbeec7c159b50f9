"""The interpol-like wire format, `commcentre.interpol-like/1`.

An envelope shaped after what is publicly known of Interpol I-24/7 messages,
with persons as notice/diffusion-style requests, documents as SLTD-style
records, vehicles as SMV-style records, and substances. No public schema of
I-24/7 exists (DOMAIN.md): this is commcentre's own format, not Interpol's,
and it claims no conformance.

Subjects are grouped by kind; each record's `seq` is its position in the
message's subject list, so the order survives. A person's `request_type` is
derived from the message type and must agree with it.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from commcentre.adapters.base import OutboundMessage
from commcentre.adapters.formats import (
    CANONICAL_SUBJECT_PATHS,
    HANDLING_PATHS,
    SIRENE_ONLY,
    EnvelopeFields,
    Evaluation,
    Handling,
    ParsedInbound,
    Paths,
    Sequenced,
    SubstanceFields,
    VehicleFields,
    WireFormatError,
    WireModel,
    WireProblem,
    WireSubject,
    assemble,
    envelope_values,
    field_paths,
    in_seq_order,
    json_path,
    lift,
    place,
    read_subject,
    subject_values,
    validate_wire,
    wire_timestamp,
)
from commcentre.messages.schemas import (
    Document,
    MessageIn,
    MessageType,
    Person,
    Reference,
    SubjectKind,
)

FORMAT: Final = "commcentre.interpol-like/1"
RequestType = Literal["diffusion", "notice_request", "information"]

ENVELOPE_PATHS: Final = field_paths(
    MessageIn, renames={"type": ("message_type",), **HANDLING_PATHS}, exclude=SIRENE_ONLY
)
PERSON_PATHS: Final = field_paths(
    Person,
    renames={
        "surnames": ("names", "surnames"),
        "forenames": ("names", "forenames"),
        "name_at_birth": ("names", "name_at_birth"),
        "aliases": ("names", "aliases"),
        "date_of_birth": ("dob",),
    },
)
SLTD_PATHS: Final = field_paths(
    Document, renames={"number": ("document_number",), "type": ("document_type",)}
)
# Subject kind -> the list it goes into and where its fields go in a record.
SECTIONS: Final[Mapping[SubjectKind, tuple[str, Paths]]] = {
    SubjectKind.PERSON: ("persons", PERSON_PATHS),
    SubjectKind.DOCUMENT: ("sltd", SLTD_PATHS),
    SubjectKind.VEHICLE: ("smv", CANONICAL_SUBJECT_PATHS[SubjectKind.VEHICLE]),
    SubjectKind.SUBSTANCE: ("substances", CANONICAL_SUBJECT_PATHS[SubjectKind.SUBSTANCE]),
}


def request_type(message_type: MessageType) -> RequestType:
    """What is asked about each person: a diffusion, a notice request, or information."""
    if message_type is MessageType.DIFFUSION:
        return "diffusion"
    if message_type is MessageType.REQUEST:
        return "notice_request"
    return "information"


class PersonNames(WireModel):
    """A person's names, grouped as on a notice."""

    surnames: list[str] = []
    forenames: list[str] = []
    name_at_birth: str | None = None
    aliases: list[str] = []


class PersonRecord(Sequenced):
    """A notice/diffusion-style person request."""

    request_type: RequestType
    names: PersonNames = PersonNames()
    sex: str | None = None
    dob: str | None = None
    place_of_birth: str | None = None
    country_of_birth: str | None = None
    nationalities: list[str] = []
    role: str | None = None
    warnings: list[str] = []
    national_id: str | None = None
    document_refs: list[str] = []
    biometric_refs: list[str] = []


class SltdRecord(Sequenced):
    """An SLTD-style travel or identity document record."""

    document_number: str | None = None
    document_type: str | None = None
    issuing_country: str | None = None
    status: str | None = None
    issued_on: str | None = None
    expires_on: str | None = None
    event_date: str | None = None
    event_country: str | None = None


class SmvRecord(VehicleFields, Sequenced):
    """An SMV-style motor vehicle record."""


class SubstanceRecord(SubstanceFields, Sequenced):
    """A seized or sought substance."""


class InterpolWireMessage(EnvelopeFields):
    """A whole `commcentre.interpol-like/1` document."""

    format: Literal["commcentre.interpol-like/1"]
    message_id: Reference
    delivery_id: Reference | None = None
    sender_ncb: Reference
    created_at: AwareDatetime = Field(strict=False)
    message_type: str
    case_ref: str | None = None
    handling: Handling = Handling()
    evaluation: Evaluation = Evaluation()
    persons: list[PersonRecord] = []
    sltd: list[SltdRecord] = []
    smv: list[SmvRecord] = []
    substances: list[SubstanceRecord] = []


def to_wire(message: OutboundMessage, *, delivery_id: UUID, sender: str) -> dict[str, Any]:
    """The interpol-like document of a message; `sender` is our NCB (e.g. `HELSINKI`)."""
    content = message.content
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in SECTIONS.values()}
    for seq, subject in enumerate(content.subjects):
        name, paths = SECTIONS[SubjectKind(subject.kind)]
        record: dict[str, Any] = {"seq": seq}
        if isinstance(subject, Person):
            record["request_type"] = request_type(content.type)
        record.update(place(subject_values(subject), paths))
        sections[name].append(record)
    return {
        "format": FORMAT,
        "message_id": str(message.id),
        "delivery_id": str(delivery_id),
        "sender_ncb": sender,
        "created_at": wire_timestamp(message.created_at),
        **place(envelope_values(content), ENVELOPE_PATHS),
        **sections,
    }


def from_wire(doc: Mapping[str, Any]) -> ParsedInbound:
    """Read an interpol-like document; raises `WireFormatError` naming the JSON path."""
    wire = validate_wire(InterpolWireMessage, doc)
    records: Sequence[tuple[SubjectKind, Sequence[Sequenced]]] = (
        (SubjectKind.PERSON, wire.persons),
        (SubjectKind.DOCUMENT, wire.sltd),
        (SubjectKind.VEHICLE, wire.smv),
        (SubjectKind.SUBSTANCE, wire.substances),
    )
    subjects: list[WireSubject] = []
    for kind, section in records:
        name, paths = SECTIONS[kind]
        for index, record in enumerate(section):
            subjects.append(read_subject(kind, (name, index), record, paths, seq=record.seq))
    envelope = lift(wire.model_dump(), ENVELOPE_PATHS)
    message = assemble(envelope, ENVELOPE_PATHS, in_seq_order(subjects))
    expected = request_type(message.type)
    problems = [
        WireProblem(json_path(("persons", index, "request_type")), f"must be {expected!r}")
        for index, person in enumerate(wire.persons)
        if person.request_type != expected
    ]
    if problems:
        raise WireFormatError(problems)
    return ParsedInbound(message=message, partner_ref=wire.message_id)
