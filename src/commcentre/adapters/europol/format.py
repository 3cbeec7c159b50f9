"""The SIENA-like wire format, `commcentre.siena-like/1`.

An envelope shaped after what is publicly known of Europol SIENA messages:
the message block, the handling codes (H0..H3, with `h3_text` for H3), the 4x4
evaluation, and the subjects as entities with UMF-like labels (`Person`,
`Document`, `Vehicle`, `Substance`) whose attributes carry commcentre's
canonical field names. No public schema of SIENA or UMF exists (DOMAIN.md):
this is commcentre's own format, not Europol's, and it claims no conformance.
"""

from collections.abc import Mapping
from typing import Any, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from commcentre.adapters.base import OutboundMessage
from commcentre.adapters.formats import (
    CANONICAL_SUBJECT_PATHS,
    HANDLING_PATHS,
    SIRENE_ONLY,
    DocumentFields,
    EnvelopeFields,
    Evaluation,
    Handling,
    ParsedInbound,
    PersonFields,
    SubstanceFields,
    VehicleFields,
    WireModel,
    WireSubject,
    assemble,
    envelope_values,
    field_paths,
    lift,
    place,
    read_subject,
    subject_values,
    validate_wire,
    wire_timestamp,
)
from commcentre.messages.schemas import MessageIn, Reference, SubjectKind

FORMAT: Final = "commcentre.siena-like/1"
EntityType = Literal["Person", "Document", "Vehicle", "Substance"]

ENVELOPE_PATHS: Final = field_paths(
    MessageIn, base=("message",), renames=HANDLING_PATHS, exclude=SIRENE_ONLY
)
ENTITY_TYPES: Final[Mapping[SubjectKind, EntityType]] = {
    SubjectKind.PERSON: "Person",
    SubjectKind.DOCUMENT: "Document",
    SubjectKind.VEHICLE: "Vehicle",
    SubjectKind.SUBSTANCE: "Substance",
}
_ATTRIBUTES: Final[Mapping[EntityType, tuple[SubjectKind, type[WireModel]]]] = {
    "Person": (SubjectKind.PERSON, PersonFields),
    "Document": (SubjectKind.DOCUMENT, DocumentFields),
    "Vehicle": (SubjectKind.VEHICLE, VehicleFields),
    "Substance": (SubjectKind.SUBSTANCE, SubstanceFields),
}


class SienaMessage(EnvelopeFields):
    """The message block: ids, sender, routing and the free-text body."""

    message_id: Reference
    delivery_id: Reference | None = None
    sender_unit: Reference
    created_at: AwareDatetime = Field(strict=False)
    type: str
    case_ref: str | None = None


class Entity(WireModel):
    """One subject; `attributes` are checked against the model of its `entity_type`."""

    entity_type: EntityType
    attributes: dict[str, Any]


class SienaWireMessage(WireModel):
    """A whole `commcentre.siena-like/1` document."""

    format: Literal["commcentre.siena-like/1"]
    message: SienaMessage
    handling: Handling = Handling()
    evaluation: Evaluation = Evaluation()
    entities: list[Entity] = []


def to_wire(message: OutboundMessage, *, delivery_id: UUID, sender: str) -> dict[str, Any]:
    """The SIENA-like document of a message; `sender` is our unit (e.g. `FI-ENU`)."""
    content = message.content
    placed = place(envelope_values(content), ENVELOPE_PATHS)
    return {
        "format": FORMAT,
        "message": {
            "message_id": str(message.id),
            "delivery_id": str(delivery_id),
            "sender_unit": sender,
            "created_at": wire_timestamp(message.created_at),
            **placed["message"],
        },
        "handling": placed.get("handling", {}),
        "evaluation": placed.get("evaluation", {}),
        "entities": [
            {
                "entity_type": ENTITY_TYPES[SubjectKind(subject.kind)],
                "attributes": subject_values(subject),
            }
            for subject in content.subjects
        ],
    }


def from_wire(doc: Mapping[str, Any]) -> ParsedInbound:
    """Read a SIENA-like document; raises `WireFormatError` naming the JSON path."""
    wire = validate_wire(SienaWireMessage, doc)
    subjects: list[WireSubject] = []
    for index, entity in enumerate(wire.entities):
        kind, model = _ATTRIBUTES[entity.entity_type]
        loc = ("entities", index, "attributes")
        attributes = validate_wire(model, entity.attributes, at=loc)
        subjects.append(read_subject(kind, loc, attributes, CANONICAL_SUBJECT_PATHS[kind]))
    envelope = lift(wire.model_dump(), ENVELOPE_PATHS)
    message = assemble(envelope, ENVELOPE_PATHS, subjects)
    return ParsedInbound(message=message, partner_ref=wire.message.message_id)
