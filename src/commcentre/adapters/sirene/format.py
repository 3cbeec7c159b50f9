"""The SIRENE-like wire format, `commcentre.sirene-like/1`.

A supplementary-information exchange shaped after what is publicly known of
the SIRENE forms: the form letter, the SIS alert article and references, the
sending SIRENE bureau, the case reference as the SIRENE reference, and the
subjects by kind (each record's `seq` keeps the message's subject order). No
public schema of the SIRENE forms exists (DOMAIN.md): this is commcentre's own
format, not the SIRENE Manual's, and it claims no conformance.

The message's `sirene` block travels both ways: `form`, `alert_article`,
`alert_category`, `sis_alert_ref` and `eaw_ref` are top-level fields of the
document, and a document read back gives the block again (a J form on an
Art. 32 alert stays a J form on an Art. 32 alert). A message without the block
gets a derived form: a hit is form G, anything else the partner's configured
default (M, miscellaneous, unless configured); read back, it has a block with
that form. Whether the form fits the alert is not checked here: a partner's
document is kept even when it contradicts itself (see `requests.automation`).
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
    DocumentFields,
    EnvelopeFields,
    Evaluation,
    Handling,
    Loc,
    ParsedInbound,
    PersonFields,
    Sequenced,
    SubstanceFields,
    VehicleFields,
    WireSubject,
    assemble,
    envelope_values,
    field_paths,
    in_seq_order,
    lift,
    place,
    read_subject,
    subject_values,
    validate_wire,
    wire_timestamp,
)
from commcentre.messages.schemas import MessageIn, MessageType, Reference, SubjectKind

FORMAT: Final = "commcentre.sirene-like/1"
# A: EAW data, G: hit, H: hit but the action cannot be taken, I: another purpose,
# J: data error, L: fingerprints/photos, M: miscellaneous, Q: misused identity, F: flag.
SireneForm = Literal["A", "G", "H", "I", "J", "L", "M", "Q", "F"]
# Reg. 2018/1862: 26 arrest, 32 missing and vulnerable persons, 34 judicial procedure,
# 36 discreet/inquiry/specific check, 38 objects, 40 unknown wanted persons; Reg.
# 2018/1861 Art. 24 refusal of entry and stay; Reg. 2018/1860 Art. 3 return.
AlertArticle = Literal[3, 24, 26, 32, 34, 36, 38, 40]
# The point of Reg. 2018/1862 Art. 32(1) of an Art. 32 alert.
AlertCategory = Literal["a", "b", "c", "d", "e"]

ENVELOPE_PATHS: Final = field_paths(
    MessageIn,
    renames={"type": ("message_type",), "case_ref": ("reference",), **HANDLING_PATHS},
    exclude=SIRENE_ONLY,
)
# The fields of the message's `sirene` block, each a top-level field of the document.
SIRENE_FIELDS: Final = ("form", "alert_article", "alert_category", "sis_alert_ref", "eaw_ref")
SECTIONS: Final[Mapping[SubjectKind, str]] = {
    SubjectKind.PERSON: "persons",
    SubjectKind.DOCUMENT: "documents",
    SubjectKind.VEHICLE: "vehicles",
    SubjectKind.SUBSTANCE: "substances",
}


def choose_form(message_type: MessageType, default_form: SireneForm = "M") -> SireneForm:
    """The form of an outbound message: G for a hit, otherwise `default_form`."""
    return "G" if message_type is MessageType.HIT else default_form


class SirenePerson(PersonFields, Sequenced):
    """A person on the form."""


class SireneDocument(DocumentFields, Sequenced):
    """A document on the form."""


class SireneVehicle(VehicleFields, Sequenced):
    """A vehicle on the form."""


class SireneSubstance(SubstanceFields, Sequenced):
    """A substance on the form."""


class SireneWireForm(EnvelopeFields):
    """A whole `commcentre.sirene-like/1` document."""

    format: Literal["commcentre.sirene-like/1"]
    form: SireneForm
    message_id: Reference
    delivery_id: Reference | None = None
    sirene_bureau: Reference
    created_at: AwareDatetime = Field(strict=False)
    message_type: str
    reference: str | None = None
    alert_article: AlertArticle | None = None
    alert_category: AlertCategory | None = None
    sis_alert_ref: Reference | None = None
    eaw_ref: Reference | None = None
    handling: Handling = Handling()
    evaluation: Evaluation = Evaluation()
    persons: list[SirenePerson] = []
    documents: list[SireneDocument] = []
    vehicles: list[SireneVehicle] = []
    substances: list[SireneSubstance] = []


def to_wire(
    message: OutboundMessage,
    *,
    delivery_id: UUID,
    sender: str,
    default_form: SireneForm = "M",
) -> dict[str, Any]:
    """The SIRENE-like form of a message; `sender` is our SIRENE bureau (e.g. `FI`)."""
    content = message.content
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name in SECTIONS.values()}
    for seq, subject in enumerate(content.subjects):
        sections[SECTIONS[SubjectKind(subject.kind)]].append(
            {"seq": seq, **subject_values(subject)}
        )
    block = (
        content.sirene.model_dump(mode="json", exclude_none=True)
        if content.sirene is not None
        else {"form": choose_form(content.type, default_form)}
    )
    return {
        "format": FORMAT,
        "form": block.pop("form"),
        "message_id": str(message.id),
        "delivery_id": str(delivery_id),
        "sirene_bureau": sender,
        "created_at": wire_timestamp(message.created_at),
        **place(envelope_values(content), ENVELOPE_PATHS),
        **block,
        **sections,
    }


def from_wire(doc: Mapping[str, Any]) -> ParsedInbound:
    """Read a SIRENE-like form; raises `WireFormatError` naming the JSON path.

    The form letter, alert article and category and the SIS/EAW references become the
    message's `sirene` block.
    """
    wire = validate_wire(SireneWireForm, doc)
    records: Sequence[tuple[SubjectKind, Sequence[Sequenced]]] = (
        (SubjectKind.PERSON, wire.persons),
        (SubjectKind.DOCUMENT, wire.documents),
        (SubjectKind.VEHICLE, wire.vehicles),
        (SubjectKind.SUBSTANCE, wire.substances),
    )
    subjects: list[WireSubject] = [
        read_subject(
            kind, (SECTIONS[kind], index), record, CANONICAL_SUBJECT_PATHS[kind], seq=record.seq
        )
        for kind, section in records
        for index, record in enumerate(section)
    ]
    dumped = wire.model_dump()
    envelope = lift(dumped, ENVELOPE_PATHS)
    envelope["sirene"] = {name: dumped[name] for name in SIRENE_FIELDS if dumped[name] is not None}
    locations: dict[Loc, Loc] = {("sirene", name): (name,) for name in SIRENE_FIELDS}
    message = assemble(envelope, ENVELOPE_PATHS, in_seq_order(subjects), locations=locations)
    return ParsedInbound(message=message, partner_ref=wire.message_id)
