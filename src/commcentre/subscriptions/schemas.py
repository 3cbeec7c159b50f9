"""Subscription request and response bodies.

Secrets come in as `SecretStr` and never go out (a count and hints); the
filter's `case_ref` is stored only as a blind-index digest and, sealed, with
the secrets: the owner sees it again from the sealed copy.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from commcentre.messages.schemas import (
    CaseRef,
    Channel,
    MessageType,
    Priority,
    ShortText,
    SubjectKind,
)
from commcentre.partners.schemas import (
    PartnerId,
    SigningSecrets,
    SigningSecretsOut,
)

MAX_FILTER_PARTNERS = 100
URL_MAX = 2048

_E = TypeVar("_E")


class SubscriptionEvent(StrEnum):
    """What a subscriber can be told about. Add a member to offer a new event."""

    MESSAGE_INBOUND = "message.inbound"
    # A supplementary-information request passed its due_at unanswered and was escalated.
    REQUEST_OVERDUE = "request.overdue"
    # An arrest warrant's decision (FD 2002/584 Art. 17) or surrender (Art. 23) is late.
    REQUEST_EAW_DECISION_OVERDUE = "request.eaw_decision_overdue"
    REQUEST_EAW_SURRENDER_OVERDUE = "request.eaw_surrender_overdue"


# Sent to a subscription whose `events` is empty; any other event must be listed.
DEFAULT_EVENTS = (SubscriptionEvent.MESSAGE_INBOUND,)


def _distinct(values: list[_E]) -> list[_E]:
    return list(dict.fromkeys(values))


SubjectKinds = Annotated[
    list[SubjectKind],
    AfterValidator(_distinct),
    Field(
        max_length=len(SubjectKind),
        description="Messages about at least one of these subject kinds; empty: any.",
    ),
]
Channels = Annotated[
    list[Channel],
    AfterValidator(_distinct),
    Field(max_length=len(Channel), description="Messages on one of these channels; empty: any."),
]
Priorities = Annotated[
    list[Priority],
    AfterValidator(_distinct),
    Field(max_length=len(Priority), description="Messages of one of these priorities; empty: any."),
]
MessageTypes = Annotated[
    list[MessageType],
    AfterValidator(_distinct),
    Field(max_length=len(MessageType), description="Messages of one of these types; empty: any."),
]
Events = Annotated[
    list[SubscriptionEvent],
    AfterValidator(_distinct),
    Field(
        max_length=len(SubscriptionEvent),
        description=(
            "Events to receive: `message.inbound` (an inbound message that passes the other "
            "criteria) and `request.overdue` (a supplementary-information request escalated "
            "past its due_at: request metadata only, matched on `case_ref` alone). Empty: "
            "`message.inbound` only."
        ),
    ),
]
SourcePartners = Annotated[
    list[PartnerId],
    AfterValidator(_distinct),
    Field(
        max_length=MAX_FILTER_PARTNERS,
        description="Messages sent by one of these partners (ids); empty: any.",
    ),
]


class SubscriptionFilter(BaseModel):
    """Which inbound messages (and request events) a subscriber gets.

    For `message.inbound` every criterion given must match. A `request.overdue`
    event is sent only when `events` lists it, and only `case_ref` applies to it
    (compared with the request's reference); the message criteria do not.
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "example": {
                "subject_kinds": ["person", "vehicle"],
                "channels": ["sirene"],
                "partners": ["se-bureau"],
                "priorities": ["urgent", "high"],
                "types": ["hit", "reply"],
                "case_ref": "FI-NBI-2026-004411",
                "events": ["message.inbound", "request.overdue"],
            }
        },
    )

    subject_kinds: SubjectKinds = []
    channels: Channels = []
    partners: SourcePartners = []
    priorities: Priorities = []
    types: MessageTypes = []
    case_ref: CaseRef | None = Field(
        None,
        description=(
            "Only messages of this case, and events of requests with this reference "
            "(compared through the blind index; stored sealed, shown to the owner only)."
        ),
    )
    events: Events = []

    def routing_metadata(self) -> dict[str, list[str]]:
        """The filter as stored in clear: everything but the case_ref."""
        return {
            "subject_kinds": [k.value for k in self.subject_kinds],
            "channels": [c.value for c in self.channels],
            "partners": list(self.partners),
            "priorities": [p.value for p in self.priorities],
            "types": [t.value for t in self.types],
            "events": [e.value for e in self.events],
        }


def check_callback_url(value: str) -> str:
    """An absolute http(s) URL without credentials or fragment (the network is checked later)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise PydanticCustomError("url", "must be an absolute https URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise PydanticCustomError("url", "must be an absolute https URL")
    if "@" in parts.netloc:
        raise PydanticCustomError("url", "must not contain credentials")
    if parts.fragment:
        raise PydanticCustomError("url", "must not contain a fragment")
    return value


CallbackUrl = Annotated[
    str,
    Field(min_length=1, max_length=URL_MAX, examples=["https://alerts.police.internal/hooks/cc"]),
    AfterValidator(check_callback_url),
]


class SubscriptionCreate(BaseModel):
    """Body of POST /v1/subscriptions."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "example": {
                "name": "Border control alerts",
                "url": "https://alerts.police.internal/hooks/cc",
                "filter": {"subject_kinds": ["person"], "channels": ["sirene"]},
            }
        },
    )

    name: ShortText
    url: CallbackUrl = Field(
        description=(
            "Callback: https, or http only to the configured internal subscriber networks. "
            "It must resolve to a public address or one inside those networks."
        )
    )
    filter: SubscriptionFilter = Field(default_factory=SubscriptionFilter)
    signing_secrets: SigningSecrets = Field(
        default=[], description="None given: one is generated and returned once."
    )
    enabled: bool = True

    def canonical(self) -> bytes:
        """The body as stable JSON, secrets included (for the Idempotency-Key fingerprint)."""
        data = self.model_dump(mode="json")
        data["signing_secrets"] = [s.get_secret_value() for s in self.signing_secrets]
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


class SubscriptionPatch(BaseModel):
    """Body of PATCH /v1/subscriptions/{id}: only the fields given change.

    `filter` replaces the whole filter; `signing_secrets` replaces the list
    (rotation: send the new and the old one, then only the new one).
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"enabled": False},
                {
                    "filter": {
                        "channels": ["sirene"],
                        "events": ["message.inbound", "request.overdue"],
                    }
                },
                {"url": "https://alerts.police.internal/hooks/cc-v2"},
            ]
        },
    )

    name: ShortText | None = None
    url: CallbackUrl | None = None
    filter: SubscriptionFilter | None = None
    signing_secrets: SigningSecrets | None = None
    enabled: bool | None = None

    @field_validator("name", "url", "filter", "signing_secrets", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("not_null", "may be left out but not set to null")
        return value

    @field_validator("signing_secrets")
    @classmethod
    def _keep_one_secret(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise PydanticCustomError(
                "too_short", "a subscription keeps at least one signing secret"
            )
        return value


class SubscriptionOut(BaseModel):
    """A subscription as its owner (or an admin) sees it: no secret ever."""

    id: uuid.UUID
    owner: uuid.UUID = Field(description="The API client that made it.")
    name: str
    url: str
    filter: SubscriptionFilter = Field(
        description="`case_ref` is shown from the sealed copy (null when it cannot be opened)."
    )
    signing_secrets: SigningSecretsOut
    sealed_problem: str | None = Field(
        None, description="Why the sealed secrets and case_ref cannot be read, if they cannot."
    )
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionOut):
    """The answer to a create: the generated signing secret appears here and nowhere else."""

    generated_signing_secret: str | None = Field(
        None,
        description=(
            "Set when no secret was given: store it now, it is never shown again "
            "(not even when the request is replayed with its Idempotency-Key)."
        ),
    )
