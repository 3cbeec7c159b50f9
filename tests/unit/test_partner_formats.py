"""Partner wire formats (interpol-, siena- and sirene-like): round trip, rejection, docs.

`python -m tests.unit.test_partner_formats` prints the JSON examples of
docs/partners.md, rendered from the code; `test_docs_examples_are_what_the_code_sends`
fails when the docs drift from it.
"""

import copy
import importlib.metadata
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from uuid import UUID

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, ValidationError

from commcentre.adapters.base import (
    AdapterContext,
    DeliveryContext,
    InboundNotSupportedError,
    OutboundMessage,
    PartnerView,
)
from commcentre.adapters.europol import EuropolAdapter, EuropolConfig
from commcentre.adapters.europol import format as europol
from commcentre.adapters.filedrop import FiledropConfig
from commcentre.adapters.formats import ParsedInbound, WireFormatError, json_path
from commcentre.adapters.http import HttpPushAdapter, HttpPushConfig
from commcentre.adapters.interpol import InterpolAdapter, InterpolConfig
from commcentre.adapters.interpol import format as interpol
from commcentre.adapters.sirene import SireneAdapter, SireneConfig
from commcentre.adapters.sirene import format as sirene
from commcentre.adapters.webhook import WebhookAdapter
from commcentre.messages.schemas import (
    MESSAGE_EXAMPLE,
    DocumentStatus,
    DocumentType,
    HandlingCode,
    MessageIn,
    MessageType,
    PersonRole,
    PersonWarning,
    Priority,
    Sex,
    SireneInfo,
    SourceReliability,
    SubstanceForm,
    SubstanceUnit,
    VehicleStatus,
)
from commcentre.requests.deadlines import ALERT_ARTICLES, AlertCategory, Form

DOCS = Path(__file__).resolve().parents[2] / "docs" / "partners.md"
MESSAGE_ID = UUID("01937f4e-9c00-7a3e-8a1b-2c3d4e5f6a7b")
DELIVERY_ID = UUID("01937f4e-9c3a-7c41-b2d5-6e7f8091a2b3")
CREATED_AT = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
ATTEMPTED_AT = datetime(2026, 11, 28, 14, 0, 2, tzinfo=UTC)
URL = "https://partner.example/commcentre/inbound"
# Per format: the module and the sender named in its docs example config.
FORMATS: dict[str, tuple[ModuleType, str]] = {
    "interpol": (interpol, "HELSINKI"),
    "europol": (europol, "FI-ENU"),
    "sirene": (sirene, "FI"),
}
CANARY = "QZXCANARY"


def outbound(content: MessageIn | dict[str, Any] = MESSAGE_EXAMPLE) -> OutboundMessage:
    message = content if isinstance(content, MessageIn) else MessageIn.model_validate(content)
    return OutboundMessage(id=MESSAGE_ID, created_at=CREATED_AT, content=message)


def wire(name: str, message: OutboundMessage | None = None) -> dict[str, Any]:
    """The document `name` sends for the message (the API.md example by default), as JSON."""
    module, sender = FORMATS[name]
    doc = module.to_wire(message or outbound(), delivery_id=DELIVERY_ID, sender=sender)
    return cast(dict[str, Any], orjson.loads(orjson.dumps(doc)))


def read_back(name: str, content: MessageIn, default_form: str = "M") -> dict[str, Any]:
    """The canonical message `name` reads back from what it sends for `content`.

    Every field comes back, except the `sirene` block: the interpol- and siena-like
    formats have no place for it, and the sirene-like one always has a form (derived
    for a message without the block).
    """
    expected = content.model_dump()
    if name in ("interpol", "europol"):
        expected["sirene"] = None
    elif name == "sirene" and content.sirene is None:
        form = sirene.choose_form(content.type, cast(sirene.SireneForm, default_form))
        expected["sirene"] = SireneInfo(form=Form(form)).model_dump()
    return expected


def webhook_example() -> dict[str, Any]:
    partner = PartnerView(id="se-bureau", name="SE bureau", country="SE", config=_push_config())
    adapter = WebhookAdapter(cast(AdapterContext, None))  # build_body needs no transport
    body = adapter.build_body(outbound(), partner, DeliveryContext(DELIVERY_ID, 1, ATTEMPTED_AT))
    return cast(dict[str, Any], orjson.loads(orjson.dumps(body)))


def _push_config() -> HttpPushConfig:
    return HttpPushConfig(url=URL)


def rendered_examples() -> dict[str, dict[str, Any]]:
    """Every JSON example of docs/partners.md, as the code produces it."""
    return {"webhook": webhook_example(), **{name: wire(name) for name in FORMATS}}


# --- round trip -----------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_api_example_round_trips(name: str) -> None:
    module, _ = FORMATS[name]
    parsed = module.from_wire(wire(name))
    assert parsed.message.model_dump() == read_back(name, outbound().content)
    assert parsed.partner_ref == str(MESSAGE_ID)


def _values(enum: Any) -> st.SearchStrategy[str]:
    return st.sampled_from([member.value for member in enum])


NAMES = st.one_of(
    st.sampled_from(["VIRTANEN", "Mäki", "O'Brien", "Åström-Ek", "Ngũgĩ", "José María"]),
    st.text(st.characters(categories=("Lu", "Ll")), min_size=1, max_size=12),
)
LINES = st.text(st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=30).filter(
    str.strip
)
BODIES = st.text(
    st.characters(categories=("L", "N", "P", "Zs"), include_characters="\n\t"), max_size=200
).filter(str.strip)
IDENTIFIERS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 -]{0,10}", fullmatch=True)
COUNTRIES = st.sampled_from(["FI", "SE", "DE", "EE", "NO", "FR"])
ANY_COUNTRY_CODE = st.sampled_from(["FI", "FIN", "fi", "D", "SWE", "GBD", "EE"])  # normalised
DATES = st.dates(min_value=date(1920, 1, 1), max_value=date(2025, 12, 31)).map(date.isoformat)
PARTIAL_DATES = DATES.flatmap(lambda day: st.sampled_from([day[:4], day[:7], day]))
DECIMALS = st.one_of(
    st.sampled_from(["12.5", "35", "1E+2", "0.001", "12.500"]),
    st.decimals(Decimal("0.001"), Decimal("999999999999.999"), places=3).map(str),
)
PERCENTAGES = st.decimals(Decimal(0), Decimal(100), places=3).map(str)


def _lists(items: st.SearchStrategy[str], **kwargs: Any) -> st.SearchStrategy[list[str]]:
    return st.lists(items, min_size=1, max_size=3, **kwargs)


PERSONS = st.fixed_dictionaries(
    {"kind": st.just("person")},
    optional={
        "surnames": _lists(NAMES),
        "forenames": _lists(NAMES),
        "name_at_birth": NAMES,
        "aliases": _lists(NAMES),
        "sex": _values(Sex),
        "date_of_birth": PARTIAL_DATES,
        "place_of_birth": LINES,
        "country_of_birth": ANY_COUNTRY_CODE,
        "nationalities": _lists(COUNTRIES, unique=True),
        "role": _values(PersonRole),
        "warnings": _lists(_values(PersonWarning), unique=True),
        "national_id": IDENTIFIERS,
        "document_refs": _lists(IDENTIFIERS),
        "biometric_refs": _lists(
            st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,20}", fullmatch=True)
        ),
    },
).filter(lambda p: len(p.keys() & {"surnames", "forenames", "national_id", "aliases"}) > 0)
DOCUMENTS = st.fixed_dictionaries(
    {
        "kind": st.just("document"),
        "number": IDENTIFIERS,
        "type": _values(DocumentType),
        "issuing_country": ANY_COUNTRY_CODE,
        "status": _values(DocumentStatus),
    },
    optional={
        "issued_on": DATES,
        "expires_on": DATES,
        "event_date": DATES,
        "event_country": COUNTRIES,
    },
).filter(lambda d: d.get("expires_on", "9") >= d.get("issued_on", "0"))
VEHICLE_IDS = st.one_of(
    st.fixed_dictionaries({"vin": st.from_regex(r"[A-HJ-NPR-Za-hj-npr-z0-9]{17}", fullmatch=True)}),
    st.fixed_dictionaries({"plate": IDENTIFIERS, "registration_country": ANY_COUNTRY_CODE}),
    st.fixed_dictionaries(
        {"vin": st.just("WVWZZZ1KZAW000001"), "plate": IDENTIFIERS}  # a plate without country
    ),
)
VEHICLES = st.tuples(
    VEHICLE_IDS,
    st.fixed_dictionaries(
        {"kind": st.just("vehicle")},
        optional={
            "make": LINES,
            "model": LINES,
            "colour": LINES,
            "category": st.sampled_from(["M1", "N3G", "O2", "L3e-A1", "T1a", "C"]),
            "status": _values(VehicleStatus),
        },
    ),
).map(lambda parts: {**parts[1], **parts[0]})
SUBSTANCES = st.tuples(
    st.fixed_dictionaries(
        {"kind": st.just("substance"), "name": LINES},
        optional={
            "cas_rn": st.sampled_from(["50-00-0", "7732-18-5", "300-62-9"]),
            "form": _values(SubstanceForm),
            "purity_pct": PERCENTAGES,
            "markings": BODIES,
            "seized_on": DATES,
            "seizure_country": COUNTRIES,
        },
    ),
    st.none() | st.tuples(DECIMALS, _values(SubstanceUnit)),
).map(lambda parts: {**parts[0], **dict(zip(("quantity", "unit"), parts[1] or (), strict=False))})
SUBJECTS = st.lists(st.one_of(PERSONS, DOCUMENTS, VEHICLES, SUBSTANCES), max_size=6)


# Any form with any article: the formats carry a partner's block as it is, contradictions
# included (whether a form fits its alert is the requests' rule, not the format's).
SIRENE_BLOCKS = st.fixed_dictionaries(
    {"form": _values(Form)},
    optional={
        "alert_article": st.sampled_from(sorted(ALERT_ARTICLES)),
        "alert_category": _values(AlertCategory),
        "sis_alert_ref": IDENTIFIERS,
        "eaw_ref": IDENTIFIERS,
    },
)


@st.composite
def messages(draw: st.DrawFn) -> OutboundMessage:
    """Valid canonical messages: a random subset of subjects, optional fields present or not."""
    data = draw(
        st.fixed_dictionaries(
            {"type": _values(MessageType), "legal_basis": st.sampled_from(["DIR_2023_977"])},
            optional={
                "channel": st.sampled_from(["interpol", "europol", "sirene", "bilateral"]),
                "recipients": _lists(
                    st.sampled_from(["SE", "DE", "interpol-ncb", "ee-bureau"]), unique=True
                ),
                "priority": _values(Priority),
                "urgency_reason": LINES,
                "info_access": st.sampled_from(["direct", "indirect"]),
                "source_reliability": _values(SourceReliability),
                "info_accuracy": st.integers(1, 4),
                "classification": st.sampled_from(["RESTRICTED", "EU RESTRICTED", "BASIC"]),
                "language": st.sampled_from(["fi", "sv", "en"]),
                "offence": st.sampled_from(["drug_trafficking", "3.2"]),
                "case_ref": st.from_regex(r"[A-Z]{2}-[A-Z0-9 /-]{0,20}[0-9]", fullmatch=True),
                "in_reply_to": st.uuids().map(str),
                "partner_ref": LINES,
            },
        )
    )
    codes = draw(st.lists(_values(HandlingCode), unique=True, max_size=4))
    if codes:
        data["handling_codes"] = codes
    if HandlingCode.H3 in codes:
        data["h3_text"] = draw(LINES)
    subjects = draw(SUBJECTS)
    if subjects:
        data["subjects"] = subjects
    if not subjects or draw(st.booleans()):
        data["body"] = draw(BODIES)
    if draw(st.booleans()):
        data["sirene"] = draw(SIRENE_BLOCKS)
    created_at = draw(st.datetimes(timezones=st.just(UTC)))
    return OutboundMessage(draw(st.uuids()), created_at, MessageIn.model_validate(data))


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=75, deadline=None)
@given(message=messages(), delivery_id=st.uuids())
def test_generated_messages_round_trip(
    name: str, message: OutboundMessage, delivery_id: UUID
) -> None:
    module, sender = FORMATS[name]
    doc = orjson.loads(
        orjson.dumps(module.to_wire(message, delivery_id=delivery_id, sender=sender))
    )
    parsed = module.from_wire(doc)
    assert parsed.message.model_dump() == read_back(name, message.content)
    assert parsed.partner_ref == str(message.id)


# --- format specifics -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_type", "expected"),
    [("diffusion", "diffusion"), ("request", "notice_request"), ("hit", "information")],
)
def test_interpol_person_request_type_follows_the_message_type(
    message_type: str, expected: str
) -> None:
    doc = wire("interpol", outbound({**MESSAGE_EXAMPLE, "type": message_type}))
    assert [person["request_type"] for person in doc["persons"]] == [expected]


def test_interpol_keeps_the_order_of_mixed_subjects() -> None:
    subjects = list(reversed(MESSAGE_EXAMPLE["subjects"]))
    doc = wire("interpol", outbound({**MESSAGE_EXAMPLE, "subjects": subjects}))
    assert [doc[section][0]["seq"] for section in ("substances", "smv", "sltd", "persons")] == [
        0,
        1,
        2,
        3,
    ]
    assert interpol.from_wire(doc).message.subjects[0].kind == "substance"


@pytest.mark.parametrize(
    ("message_type", "default_form", "form"),
    [("hit", "M", "G"), ("hit", "Q", "G"), ("reply", "M", "M"), ("request", "I", "I")],
)
def test_sirene_form_is_g_for_a_hit_else_the_configured_default(
    message_type: str, default_form: sirene.SireneForm, form: str
) -> None:
    message = outbound({**MESSAGE_EXAMPLE, "type": message_type})
    doc = sirene.to_wire(message, delivery_id=DELIVERY_ID, sender="FI", default_form=default_form)
    assert doc["form"] == form


def test_sirene_carries_the_case_ref_as_reference_and_invents_nothing() -> None:
    doc = wire("sirene")
    assert doc["reference"] == MESSAGE_EXAMPLE["case_ref"]
    assert "case_ref" not in doc
    assert not doc.keys() & {"alert_article", "alert_category", "sis_alert_ref", "eaw_ref"}


def _with_sirene(**block: Any) -> OutboundMessage:
    return outbound(
        {**MESSAGE_EXAMPLE, "channel": "sirene", "legal_basis": "SIS_2018_1862", "sirene": block}
    )


def test_a_j_form_on_an_art_32_alert_stays_a_j_form_on_an_art_32_alert() -> None:
    """The SIRENE Manual's forms are about one SIS alert: a J form (data error) on an
    Art. 32 alert (Reg. (EU) 2018/1862 Art. 32, missing and vulnerable persons) must
    reach the partner as a J form on that Art. 32 alert, with its SIS alert id, and be
    read back the same, not as the M form and no alert the format used to send."""
    message = _with_sirene(
        form="J", alert_article=32, alert_category="c", sis_alert_ref="SE0000123456789"
    )
    doc = wire("sirene", message)
    assert (doc["form"], doc["alert_article"], doc["alert_category"]) == ("J", 32, "c")
    assert doc["sis_alert_ref"] == "SE0000123456789"
    assert "sirene" not in doc
    read = sirene.from_wire(doc).message
    assert read.sirene is not None
    assert read.sirene.model_dump(mode="json") == {
        "form": "J",
        "alert_article": 32,
        "alert_category": "c",
        "sis_alert_ref": "SE0000123456789",
        "eaw_ref": None,
    }
    assert read == message.content


@pytest.mark.parametrize("form", list(Form))
@pytest.mark.parametrize("article", sorted(ALERT_ARTICLES))
def test_every_form_and_article_round_trips(form: Form, article: int) -> None:
    """Every SIRENE form letter (A, F, G, H, I, J, L, M, Q) and every alert article (Reg.
    (EU) 2018/1862 Art. 26, 32, 34, 36, 38, 40; Reg. (EU) 2018/1861 Art. 24; Reg. (EU)
    2018/1860 Art. 3) crosses the sirene-like format both ways, with the EAW reference,
    even in pairs the SIRENE Manual would not use (a partner's data error is kept)."""
    message = _with_sirene(form=form.value, alert_article=article, eaw_ref="FI-EAW-2026-7")
    doc = wire("sirene", message)
    assert (doc["form"], doc["alert_article"], doc["eaw_ref"]) == (
        form.value,
        article,
        "FI-EAW-2026-7",
    )
    assert sirene.from_wire(doc).message == message.content


def test_sirene_reads_the_form_fields_of_a_partner_document_into_the_sirene_block() -> None:
    doc = {**wire("sirene"), "form": "G", "alert_article": 26, "sis_alert_ref": "SIS-FI-1"}
    read = sirene.from_wire(doc).message
    assert read.sirene == SireneInfo(form=Form.G, alert_article=26, sis_alert_ref="SIS-FI-1")
    assert read.model_dump(exclude={"sirene"}) == outbound().content.model_dump(exclude={"sirene"})


@pytest.mark.parametrize("name", ["interpol", "europol"])
def test_other_formats_leave_the_sirene_block_out(name: str) -> None:
    doc = wire(name, _with_sirene(form="G", alert_article=26))
    text = json.dumps(doc)
    assert '"sirene": {' not in text
    assert "alert_article" not in text


def test_europol_handling_and_evaluation() -> None:
    content = {**MESSAGE_EXAMPLE, "handling_codes": ["H3", "H0"], "h3_text": "not for courts"}
    doc = wire("europol", outbound(content))
    assert doc["handling"] == {"codes": ["H3", "H0"], "h3_text": "not for courts"}
    assert doc["evaluation"] == {"source_reliability": "B", "information_accuracy": 2}
    assert [e["entity_type"] for e in doc["entities"]] == [
        "Person",
        "Document",
        "Vehicle",
        "Substance",
    ]


@pytest.mark.parametrize("name", FORMATS)
def test_decimals_travel_as_strings(name: str) -> None:
    text = json.dumps(wire(name))
    assert '"quantity": "12.5"' in text
    assert '"purity_pct": "35"' in text


@pytest.mark.parametrize("name", FORMATS)
def test_a_message_without_optional_fields_round_trips(name: str) -> None:
    message = outbound({"type": "ack", "legal_basis": "DIR_2023_977", "body": "received"})
    module, _ = FORMATS[name]
    doc = wire(name, message)
    assert "evaluation" not in doc or doc["evaluation"] == {}
    assert module.from_wire(doc).message.model_dump() == read_back(name, message.content)


# --- rejection ------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], object]

# (format, what, expected JSON path, mutation of the API.md example document)
REJECTED: list[tuple[str, str, str, Mutation]] = [
    ("interpol", "missing field", "$.legal_basis", lambda d: d.pop("legal_basis")),
    (
        "interpol",
        "missing record field",
        "$.sltd[0].document_number",
        lambda d: d["sltd"][0].pop("document_number"),
    ),
    ("interpol", "wrong type", "$.persons", lambda d: d.update(persons="VIRTANEN")),
    (
        "interpol",
        "decimal as number",
        "$.substances[0].quantity",
        lambda d: d["substances"][0].update(quantity=12.5),
    ),
    (
        "interpol",
        "extra field",
        "$.persons[0].names.nickname",
        lambda d: d["persons"][0]["names"].update(nickname=["M"]),
    ),
    (
        "interpol",
        "wrong format tag",
        "$.format",
        lambda d: d.update(format="commcentre.interpol-like/2"),
    ),
    ("interpol", "bad date", "$.persons[0].dob", lambda d: d["persons"][0].update(dob="1984-13")),
    ("interpol", "bad VIN", "$.smv[0].vin", lambda d: d["smv"][0].update(vin="WVWZZZ1KZAW00000I")),
    ("interpol", "bad message type", "$.message_type", lambda d: d.update(message_type="gossip")),
    (
        "interpol",
        "request type disagrees",
        "$.persons[0].request_type",
        lambda d: d["persons"][0].update(request_type="diffusion"),
    ),
    ("interpol", "repeated seq", "$.sltd[0].seq", lambda d: d["sltd"][0].update(seq=0)),
    (
        "interpol",
        "h3_text without H3",
        "$.handling.h3_text",
        lambda d: d["handling"].update(h3_text="x"),
    ),
    ("interpol", "no created_at", "$.created_at", lambda d: d.pop("created_at")),
    (
        "europol",
        "missing field",
        "$.message.legal_basis",
        lambda d: d["message"].pop("legal_basis"),
    ),
    (
        "europol",
        "missing attribute",
        "$.entities[1].attributes.status",
        lambda d: d["entities"][1]["attributes"].pop("status"),
    ),
    (
        "europol",
        "wrong type",
        "$.evaluation.information_accuracy",
        lambda d: d["evaluation"].update(information_accuracy="2"),
    ),
    (
        "europol",
        "attributes not an object",
        "$.entities[0].attributes",
        lambda d: d["entities"][0].update(attributes=[]),
    ),
    (
        "europol",
        "extra attribute",
        "$.entities[0].attributes.kind",
        lambda d: d["entities"][0]["attributes"].update(kind="person"),
    ),
    ("europol", "extra field", "$.priority", lambda d: d.update(priority="urgent")),
    (
        "europol",
        "wrong format tag",
        "$.format",
        lambda d: d.update(format="commcentre.interpol-like/1"),
    ),
    (
        "europol",
        "unknown entity type",
        "$.entities[0].entity_type",
        lambda d: d["entities"][0].update(entity_type="Weapon"),
    ),
    (
        "europol",
        "unknown country",
        "$.entities[0].attributes.nationalities[0]",
        lambda d: d["entities"][0]["attributes"].update(nationalities=["XX"]),
    ),
    (
        "europol",
        "unidentified person",
        "$.entities[0].attributes",
        lambda d: d["entities"][0].update(attributes={"role": "suspect"}),
    ),
    (
        "europol",
        "bad source reliability",
        "$.evaluation.source_reliability",
        lambda d: d["evaluation"].update(source_reliability="E"),
    ),
    ("sirene", "missing field", "$.sirene_bureau", lambda d: d.pop("sirene_bureau")),
    ("sirene", "unknown form", "$.form", lambda d: d.update(form="Z")),
    ("sirene", "unknown alert article", "$.alert_article", lambda d: d.update(alert_article=99)),
    (
        "sirene",
        "unknown alert category",
        "$.alert_category",
        lambda d: d.update(alert_category="f"),
    ),
    ("sirene", "bad SIS alert id", "$.sis_alert_ref", lambda d: d.update(sis_alert_ref="A" * 65)),
    ("sirene", "bad reference", "$.reference", lambda d: d.update(reference="FI\n4411")),
    ("sirene", "extra field", "$.surplus", lambda d: d.update(surplus=True)),
    (
        "sirene",
        "wrong type",
        "$.persons[0].surnames",
        lambda d: d["persons"][0].update(surnames="VIRTANEN"),
    ),
    ("sirene", "seq out of range", "$.documents[0].seq", lambda d: d["documents"][0].update(seq=7)),
    (
        "sirene",
        "plate without country",
        "$.vehicles[0].registration_country",
        lambda d: [d["vehicles"][0].pop(k) for k in ("vin", "registration_country")],
    ),
    (
        "sirene",
        "wrong format tag",
        "$.format",
        lambda d: d.update(format="commcentre.sirene-like/0"),
    ),
    (
        "sirene",
        "message without content",
        "$.body",
        lambda d: d.update(persons=[], documents=[], vehicles=[], substances=[], body=None),
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "path"),
    [
        pytest.param(name, mutate, path, id=f"{name}: {what}")
        for name, what, path, mutate in REJECTED
    ],
)
def test_malformed_documents_are_rejected_with_their_path(
    name: str, mutate: Mutation, path: str
) -> None:
    module, _ = FORMATS[name]
    doc = copy.deepcopy(wire(name))
    mutate(doc)
    with pytest.raises(WireFormatError) as caught:
        module.from_wire(doc)
    assert isinstance(caught.value, ValueError)
    assert path in [problem.path for problem in caught.value.problems], str(caught.value)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("doc", [[], "doc", None, {}])
def test_a_document_that_is_no_object_is_rejected_at_the_root(name: str, doc: Any) -> None:
    module, _ = FORMATS[name]
    with pytest.raises(WireFormatError) as caught:
        module.from_wire(doc)
    assert caught.value.path.startswith("$")


CANARY_MUTATIONS: list[tuple[str, Mutation]] = [
    ("interpol", lambda d: d.update(format=CANARY)),
    ("interpol", lambda d: d.update(in_reply_to=CANARY)),
    ("interpol", lambda d: d["persons"][0].update(sex=CANARY, dob=CANARY, nationalities=[CANARY])),
    ("interpol", lambda d: d["persons"][0]["names"].update(surnames=[f"{CANARY}\x00"])),
    ("europol", lambda d: d["entities"][0].update(entity_type=CANARY)),
    ("europol", lambda d: d["entities"][2]["attributes"].update(vin=CANARY, category=CANARY)),
    ("europol", lambda d: d["entities"][3]["attributes"].update(cas_rn=CANARY, quantity=CANARY)),
    ("sirene", lambda d: d.update(form=CANARY, priority=CANARY, language=CANARY)),
    ("sirene", lambda d: d["documents"][0].update(number=f"{CANARY}\n", issued_on=CANARY)),
]


@pytest.mark.parametrize(("name", "mutate"), CANARY_MUTATIONS)
def test_errors_never_carry_the_rejected_value(name: str, mutate: Mutation) -> None:
    module, _ = FORMATS[name]
    doc = copy.deepcopy(wire(name))
    mutate(doc)
    with pytest.raises(WireFormatError) as caught:
        module.from_wire(doc)
    assert CANARY not in str(caught.value)
    assert CANARY not in repr(caught.value.problems)
    assert caught.value.__cause__ is None


def test_json_paths() -> None:
    assert json_path(()) == "$"
    assert json_path(("persons", 0, "names", "surnames", 1)) == "$.persons[0].names.surnames[1]"
    assert json_path(("odd key", "x.y")) == '$["odd key"]["x.y"]'


# --- adapters -------------------------------------------------------------------------

CONFIGS: dict[str, tuple[type[HttpPushAdapter], BaseModel]] = {
    "interpol": (InterpolAdapter, InterpolConfig(url=URL, ncb_code="HELSINKI")),
    "europol": (EuropolAdapter, EuropolConfig(url=URL, sender_unit="FI-ENU")),
    "sirene": (SireneAdapter, SireneConfig(url=URL, sirene_bureau="FIN", default_form="M")),
}


def test_entry_points_name_the_adapters() -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="commcentre.adapters")}
    for name, (adapter, _) in CONFIGS.items():
        assert found[name].load() is adapter
        assert adapter.name == name
        assert issubclass(adapter.config_model, HttpPushConfig)


@pytest.mark.parametrize(
    ("model", "config"),
    [
        (InterpolConfig, {"url": URL}),
        (InterpolConfig, {"url": URL, "ncb_code": "helsinki"}),
        (EuropolConfig, {"url": URL, "sender_unit": ""}),
        (SireneConfig, {"url": URL, "sirene_bureau": "XX"}),
        (SireneConfig, {"url": URL, "sirene_bureau": "FI", "default_form": "Z"}),
        (SireneConfig, {"url": "ftp://partner.example", "sirene_bureau": "FI"}),
    ],
)
def test_invalid_configs_are_rejected(model: type[BaseModel], config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(config)


@pytest.mark.parametrize("name", CONFIGS)
async def test_adapter_pushes_what_to_wire_produces(name: str) -> None:
    adapter_class, config = CONFIGS[name]
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        # A streamed body, as from the network: the adapter reads it capped.
        return httpx.Response(202, stream=httpx.ByteStream(b'{"id": "partner-4411"}'))

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    secret = SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    partner = PartnerView("p", "Partner", "SE", config, signing_secrets=(secret,))
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        adapter = adapter_class(AdapterContext(http=http, resolver=resolver))
        receipt = await adapter.deliver(
            outbound(), partner, DeliveryContext(DELIVERY_ID, 1, ATTEMPTED_AT)
        )
    assert receipt.status_code == 202
    assert receipt.partner_ref == "partner-4411"
    (request,) = requests
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == str(DELIVERY_ID)
    assert json.loads(request.content) == wire(name)


# --- parse_inbound: each adapter reads back what it sends ---------------------------------

# Adapter name -> how it sends a message (the body our adapter builds) and the adapter whose
# parse_inbound reads it. The loopback partner pushes the webhook event.
SENDERS: dict[str, tuple[HttpPushAdapter, BaseModel]] = {
    "webhook": (WebhookAdapter(cast(AdapterContext, None)), _push_config()),
    "loopback": (WebhookAdapter(cast(AdapterContext, None)), _push_config()),
    **{
        name: (adapter_class(cast(AdapterContext, None)), config)
        for name, (adapter_class, config) in CONFIGS.items()
    },
}


def _receiver(name: str) -> Any:
    return _adapters()[name](cast(AdapterContext, None))


def _sent_and_parsed(name: str, message: OutboundMessage) -> ParsedInbound:
    sender, config = SENDERS[name]
    partner = PartnerView("p", "Partner", "SE", config)
    body = sender.build_body(message, partner, DeliveryContext(DELIVERY_ID, 1, ATTEMPTED_AT))
    document = orjson.loads(orjson.dumps(body))  # as it crosses the wire
    parsed: ParsedInbound = _receiver(name).parse_inbound(document, partner)
    return parsed


@pytest.mark.parametrize("name", SENDERS)
def test_parse_inbound_reads_what_the_adapter_sends(name: str) -> None:
    parsed = _sent_and_parsed(name, outbound())
    assert parsed.message.model_dump() == read_back(name, outbound().content)
    assert parsed.partner_ref == str(MESSAGE_ID)


@pytest.mark.parametrize("name", SENDERS)
@settings(max_examples=40, deadline=None)
@given(message=messages())
def test_parse_inbound_round_trips_generated_messages(name: str, message: OutboundMessage) -> None:
    parsed = _sent_and_parsed(name, message)
    assert parsed.message.model_dump() == read_back(name, message.content)
    assert parsed.partner_ref == str(message.id)


def test_webhook_events_are_rejected_at_their_paths_without_values() -> None:
    event = webhook_example()
    del event["data"]["legal_basis"]
    del event["data"]["message_id"]
    event["data"]["subjects"][0]["date_of_birth"] = CANARY
    with pytest.raises(WireFormatError) as caught:
        _receiver("webhook").parse_inbound(event, PartnerView("p", "P", None, _push_config()))
    assert caught.value.path == "$.data.message_id"
    assert CANARY not in str(caught.value)
    with pytest.raises(WireFormatError) as caught:
        _receiver("webhook").parse_inbound(
            {"data": []}, PartnerView("p", "P", None, _push_config())
        )
    assert {p.path for p in caught.value.problems} >= {"$.type", "$.data"}


def test_filedrop_partners_do_not_push() -> None:
    config = FiledropConfig(directory="/srv/drop")
    with pytest.raises(InboundNotSupportedError):
        _receiver("filedrop").parse_inbound(webhook_example(), PartnerView("p", "P", None, config))


# --- docs -----------------------------------------------------------------------------

_BLOCK = re.compile(r"<!-- (example|config): ([a-z]+) -->\n```json\n(.*?)\n```", re.DOTALL)


def _docs_blocks(tag: str) -> dict[str, Any]:
    text = DOCS.read_text(encoding="utf-8")
    assert text.count("```json") == len(_BLOCK.findall(text)), "every JSON block is tagged"
    return {name: json.loads(body) for kind, name, body in _BLOCK.findall(text) if kind == tag}


def test_docs_examples_are_what_the_code_sends() -> None:
    examples = _docs_blocks("example")
    assert examples == rendered_examples()


def _adapters() -> dict[str, Any]:
    group = importlib.metadata.entry_points(group="commcentre.adapters")
    return {entry_point.name: entry_point.load() for entry_point in group}


def test_docs_config_examples_are_valid() -> None:
    configs, adapters = _docs_blocks("config"), _adapters()
    assert configs.keys() == adapters.keys()
    for name, config in configs.items():
        adapters[name].config_model.model_validate(config)
    senders = (configs["interpol"]["ncb_code"], configs["europol"]["sender_unit"])
    assert (*senders, configs["sirene"]["sirene_bureau"]) == tuple(s for _, s in FORMATS.values())


def test_docs_list_every_config_field() -> None:
    text = DOCS.read_text(encoding="utf-8")
    sections = {
        match[1]: match[2]
        for match in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    }
    shared = set(HttpPushConfig.model_fields)
    (http_push,) = (body for title, body in sections.items() if title.startswith("HTTP push"))
    assert all(f"| `{field}` |" in http_push for field in shared)
    for name, adapter in _adapters().items():
        for field in set(adapter.config_model.model_fields) - shared:
            assert f"| `{field}` |" in sections[f"`{name}`"], (name, field)


def _pretty(document: dict[str, Any]) -> str:
    """Indented JSON with arrays of scalars on one line, as in the docs."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    # Inside JSON strings a newline is always escaped, so ",\n" separates items.
    return re.sub(
        r"\[\n\s*([^\[\]{}]*?)\n\s*\]",
        lambda m: "[" + ", ".join(item.strip() for item in m[1].split(",\n")) + "]",
        text,
    )


if __name__ == "__main__":
    for example_name, example in rendered_examples().items():
        print(f"<!-- example: {example_name} -->\n```json\n{_pretty(example)}\n```\n")
