"""Inputs and outputs of the requests API. Free text is personal data: no error
message written here repeats a rejected value."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from commcentre.clock import IsoDatetime
from commcentre.messages.schemas import (
    Body,
    Channel,
    Code,
    CountryCode,
    FreeText,
    HandlingCode,
    InputModel,
    LanguageCode,
    LegalBasis,
    Priority,
    Reference,
    ShortText,
    SourceReliability,
    Subject,
    SubjectKind,
    tagged_union_list,
)
from commcentre.messages.views import MessageAccepted
from commcentre.pagination import Page
from commcentre.requests.deadlines import (
    ALERT_ARTICLES,
    AlertCategory,
    AlertFlag,
    Form,
    InfoAccess,
    SurrenderPostponement,
    TimeLimitRule,
    UnknownTimeLimit,
    Urgency,
    article_of,
    basis_article_problem,
    category_problem,
    child_flag_problem,
    form_article_problem,
    time_limit_rule,
)
from commcentre.requests.states import RequestStatus


class LinkRole(StrEnum):
    REQUEST = "request"
    REPLY = "reply"
    RELATED = "related"


_ARTICLE_LIST = ", ".join(str(article) for article in sorted(ALERT_ARTICLES))


def _alert_article(value: int | None) -> int | None:
    if value is not None and value not in ALERT_ARTICLES:
        raise PydanticCustomError("alert_article", f"must be one of {_ARTICLE_LIST}")
    return value


def _field_errors(*errors: tuple[str, tuple[str, ...], str]) -> ValidationError:
    """A validation error naming each field it is about (kind, fields, message)."""
    return ValidationError.from_exception_data(
        "RequestCreate",
        [
            InitErrorDetails(type=PydanticCustomError(kind, message), loc=(name,), input=None)
            for kind, names, message in errors
            for name in names
        ],
    )


AlertArticle = Annotated[int, AfterValidator(_alert_article)]
Assignee = ShortText
AlertRef = Annotated[Reference, Field(max_length=64)]


class LinkedMessageIn(InputModel):
    message_id: uuid.UUID
    role: LinkRole = LinkRole.RELATED


class RequestCreate(InputModel):
    """A supplementary-information request received (or sent) by the bureau."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reference": "SE-SIRENE-2026-118842",
                    "form": "G",
                    "alert_article": 26,
                    "sis_alert_ref": "SE0000123456789",
                    "issuing_state": "FI",
                    "requesting_state": "SE",
                    "urgency": "urgent",
                    "legal_basis": "SIS_2018_1862_ART26",
                    "received_at": "2026-11-28T09:15:00Z",
                    "subject": "Hit on FI arrest alert at Haparanda: confirm the EAW is valid.",
                },
                {
                    "reference": "DE-SPOC-2026-40117",
                    "form": "M",
                    "requesting_state": "DE",
                    "urgency": "urgent",
                    "legal_basis": "DIR_2023_977",
                    "info_access": "indirect",
                },
            ]
        },
    )

    reference: Reference
    form: Form = Field(
        description="SIRENE form; A only with Art. 26 alerts, F only with Art. 26, 32 and 36, "
        "L with alerts on persons, Q with alerts on known persons (see docs/requests.md)."
    )
    alert_article: AlertArticle | None = Field(
        None,
        description="Alert article: Reg. 2018/1862 Art. 26, 32, 34, 36, 38 or 40; Reg. "
        "2018/1861 Art. 24; Reg. 2018/1860 Art. 3. Default: the one the legal_basis names.",
    )
    alert_category: AlertCategory | None = Field(
        None, description="Art. 32 alerts: the point of Reg. 2018/1862 Art. 32(1), a to e."
    )
    alert_flags: list[AlertFlag] = Field(
        default_factory=list,
        max_length=len(AlertFlag),
        description="terrorism: an alert for terrorist offences; child: an alert on a child "
        "of Reg. 2018/1862 Art. 32(1)(c). The SIRENE Bureau must then act immediately "
        "(Art. 8(3)): the request is marked `immediate` and listed first; due_at stays 12 h.",
    )
    sis_alert_ref: AlertRef | None = None
    eaw_ref: AlertRef | None = None
    issuing_state: CountryCode | None = None
    requesting_state: CountryCode
    urgency: Urgency = Urgency.NORMAL
    legal_basis: LegalBasis = Field(
        description="DIR_2023_977, SIS_2018_1862[_ARTnn] or FD_2002_584: sets the time limit."
    )
    info_access: InfoAccess | None = Field(
        None, description="DIR_2023_977 urgent requests: is the information directly accessible?"
    )
    received_at: IsoDatetime | None = Field(
        None, description="When it arrived (default: now). The time limit runs from here."
    )
    channel: Channel | None = Field(
        None,
        description=(
            "The channel it came in on, where replies and notices go (default: europol, "
            "i.e. SIENA, for DIR_2023_977, Art. 12; sirene otherwise)."
        ),
    )
    assignee: Assignee | None = None
    subject: FreeText | None = Field(None, description="What is asked; stored encrypted.")
    note: FreeText | None = Field(None, description="Stored encrypted in the history.")
    linked_messages: list[LinkedMessageIn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _has_a_time_limit(self) -> "RequestCreate":
        self.alert_flags = sorted(set(self.alert_flags))
        try:
            time_limit_rule(
                legal_basis=self.legal_basis,
                form=self.form,
                urgency=self.urgency,
                info_access=self.info_access,
            )
        except UnknownTimeLimit as exc:
            raise PydanticCustomError("time_limit", str(exc)) from None
        return self

    @model_validator(mode="after")
    def _alert_fits_together(self) -> "RequestCreate":
        """Basis, article, form, category and flags must describe one possible alert."""
        problem = basis_article_problem(self.legal_basis, self.alert_article)
        if problem is not None:
            raise _field_errors(("basis_article", ("legal_basis", "alert_article"), problem))
        article = self.alert_article or article_of(self.legal_basis)
        problems = []
        if (problem := form_article_problem(self.form, article)) is not None:
            problems.append(("form_article", ("form", "alert_article"), problem))
        if (problem := category_problem(article, self.alert_category)) is not None:
            problems.append(("alert_category", ("alert_category", "alert_article"), problem))
        child = AlertFlag.CHILD in self.alert_flags
        if child and (problem := child_flag_problem(article, self.alert_category)) is not None:
            problems.append(("child_flag", ("alert_flags", "alert_category"), problem))
        if problems:
            raise _field_errors(*problems)
        # Art. 32(1)(c) alerts are exactly the child alerts of Art. 8(3): the flag and the
        # category say the same thing, so either one sets the other.
        if AlertFlag.CHILD in self.alert_flags:
            self.alert_category = AlertCategory.CHILD_ABDUCTION
        elif self.alert_category is AlertCategory.CHILD_ABDUCTION:
            self.alert_flags = sorted({*self.alert_flags, AlertFlag.CHILD})
        return self

    def canonical(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


class TransitionIn(InputModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"to": "assigned", "assignee": "sirene-duty-officer-2"},
                {"to": "awaiting_information", "note": "Asked the border guard for the file."},
                {"to": "answered", "delay_reason": "Court records were not available at night."},
                {"to": "rejected", "reason": "The alert was deleted before the request arrived."},
            ]
        },
    )
    to: RequestStatus
    note: FreeText | None = None
    reason: FreeText | None = Field(None, description="Required to reject; stored encrypted.")
    delay_reason: FreeText | None = Field(
        None, description="Required to answer after due_at; stored encrypted."
    )
    assignee: Assignee | None = Field(None, description="With `to: assigned` (default: you).")

    @model_validator(mode="after")
    def _fields_fit_target(self) -> "TransitionIn":
        if self.reason is not None and self.to is not RequestStatus.REJECTED:
            raise PydanticCustomError("reason_not_allowed", "reason is only for to=rejected")
        if self.reason is None and self.to is RequestStatus.REJECTED:
            raise PydanticCustomError("reason_missing", "a rejection needs a reason")
        if self.delay_reason is not None and self.to is not RequestStatus.ANSWERED:
            raise PydanticCustomError(
                "delay_reason_not_allowed", "delay_reason is only for to=answered"
            )
        if self.assignee is not None and self.to is not RequestStatus.ASSIGNED:
            raise PydanticCustomError("assignee_not_allowed", "assignee is only for to=assigned")
        return self


class EawUpdate(InputModel):
    """One arrest-warrant step: the arrest (with or without consent), a later consent, an
    extension, the decision, a new surrender date agreed, or the surrender."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"arrested_at": "2026-11-28T06:40:00Z", "consent": False},
                {"consented_at": "2026-12-02T09:00:00Z"},
                {"extension": True, "note": "Court granted 30 more days."},
                {"decided_at": "2026-12-20T12:00:00Z"},
                {"surrender_new_date": "2026-12-28T08:00:00Z", "postponement": "beyond_control"},
                {"surrendered_at": "2026-12-28T09:30:00Z"},
            ]
        },
    )

    arrested_at: IsoDatetime | None = None
    consent: bool | None = None
    consented_at: IsoDatetime | None = Field(
        None,
        description=(
            "When the person consented to surrender: the decision is then due 10 days later "
            "(FD 2002/584 Art. 17(2); 3 days for NAW_2005). With the arrest (default: "
            "arrested_at when consent is true) or alone, when consent comes later."
        ),
    )
    extension: Literal[True] | None = None
    decided_at: IsoDatetime | None = None
    surrender_new_date: IsoDatetime | None = Field(
        None,
        description=(
            "A new surrender date agreed with the issuing authority (FD 2002/584 Art. 23(3) "
            "or (4)): surrender is then due 10 days after it (5 for NAW_2005)."
        ),
    )
    postponement: SurrenderPostponement | None = Field(
        None, description="With surrender_new_date: beyond_control (23(3)) or humanitarian (23(4))."
    )
    surrendered_at: IsoDatetime | None = Field(
        None, description="The person was surrendered: the surrender deadline is met."
    )
    note: FreeText | None = None

    @model_validator(mode="after")
    def _one_step(self) -> "EawUpdate":
        if (self.arrested_at is None) != (self.consent is None):
            raise PydanticCustomError(
                "eaw_arrest", "an arrest is recorded with both arrested_at and consent"
            )
        if self.consent is False and self.consented_at is not None:
            raise PydanticCustomError("eaw_consent", "consented_at needs consent: true")
        if (self.surrender_new_date is None) != (self.postponement is None):
            raise PydanticCustomError(
                "eaw_postponement",
                "a new surrender date is recorded with both surrender_new_date and postponement",
            )
        later_consent = self.consented_at if self.arrested_at is None else None
        steps = (
            self.arrested_at,
            later_consent,
            self.extension,
            self.decided_at,
            self.surrender_new_date,
            self.surrendered_at,
        )
        if sum(step is not None for step in steps) != 1:
            raise PydanticCustomError(
                "eaw_step",
                "give exactly one of: arrested_at with consent, consented_at, extension, "
                "decided_at, surrender_new_date with postponement, surrendered_at",
            )
        return self


class ReplyIn(InputModel):
    """The reply message; type, channel, recipients and case_ref are set from the request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "priority": "urgent",
                    "handling_codes": ["H0"],
                    "body": "EAW FI-2026-0311 is valid; surrender procedure can start.",
                },
            ]
        },
    )

    priority: Priority = Priority.NORMAL
    urgency_reason: ShortText | None = None
    legal_basis: LegalBasis | None = Field(None, description="Default: the request's.")
    handling_codes: list[HandlingCode] = Field(default_factory=list, max_length=len(HandlingCode))
    h3_text: ShortText | None = None
    source_reliability: SourceReliability | None = None
    info_accuracy: int | None = Field(default=None, ge=1, le=4, strict=True)
    classification: Code | None = None
    language: LanguageCode | None = None
    offence: Code | None = None
    partner_ref: Reference | None = None
    subjects: Annotated[list[Subject], tagged_union_list(*SubjectKind), Field(max_length=100)] = (
        Field(default_factory=list)
    )
    body: Body | None = None
    delay_reason: FreeText | None = Field(
        None, description="Required when the request is past due_at; stored encrypted."
    )
    note: FreeText | None = None


class DelayNoticeIn(InputModel):
    """Dir. (EU) 2023/977 Art. 5(2): the reply will be late; why, and when it is expected."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason": "The vehicle registry needs a prosecutor's authorisation.",
                    "expected_at": "2026-12-09T12:00:00Z",
                }
            ]
        },
    )

    reason: FreeText = Field(description="Sent to the requester; stored encrypted.")
    expected_at: IsoDatetime = Field(description="When the reply is expected; in the future.")
    language: LanguageCode | None = None
    note: FreeText | None = Field(None, description="Internal; stored encrypted in the history.")


class HistoryEntryOut(BaseModel):
    id: uuid.UUID
    event: str = Field(description="created, transition, escalated, eaw_arrest, ...")
    actor: str
    occurred_at: datetime
    from_status: RequestStatus | None
    to_status: RequestStatus
    note: str | None = None
    reason: str | None = Field(None, description="Rejection or delay reason.")


class LinkedMessageOut(BaseModel):
    message_id: uuid.UUID
    role: LinkRole
    linked_at: datetime


class DelayNoticeOut(BaseModel):
    notified_at: datetime = Field(description="When the last delay notice was sent.")
    expected_at: datetime = Field(description="The reply date it announced.")


class EawOut(BaseModel):
    warrant: Literal["european", "nordic"] = Field(
        description="european (FD 2002/584) or nordic (NAW_2005): which limits apply."
    )
    arrested_at: datetime
    consent: bool
    consented_at: datetime | None
    extended: bool
    decision_due_at: datetime
    decided_at: datetime | None
    decision_overdue: bool = Field(description="No decision and past decision_due_at.")
    surrender_agreed_at: datetime | None = Field(description="A new surrender date agreed.")
    postponement: SurrenderPostponement | None
    surrender_due_at: datetime | None
    surrendered_at: datetime | None
    surrender_overdue: bool = Field(
        description=(
            "Decided, not surrendered and past surrender_due_at: a person still in custody "
            "is to be released (FD 2002/584 Art. 23(5))."
        )
    )


class RequestSummary(BaseModel):
    """Metadata of a request: what a listing shows; never its free text."""

    id: uuid.UUID
    reference: str
    form: Form
    alert_article: int | None
    alert_category: AlertCategory | None
    alert_flags: list[AlertFlag]
    sis_alert_ref: str | None
    eaw_ref: str | None
    issuing_state: str | None
    requesting_state: str | None
    urgency: Urgency
    legal_basis: str
    info_access: InfoAccess | None
    channel: Channel = Field(description="Where replies and notices about it go.")
    time_limit_rule: TimeLimitRule
    immediate: bool = Field(
        description="The SIRENE Bureau must act immediately (Reg. 2018/1862 Art. 8(3): an "
        "alert for terrorist offences or on an Art. 32(1)(c) child; reasons in alert_flags). "
        "A priority: such requests are listed first. due_at stays the 12-hour limit."
    )
    received_at: datetime
    due_at: datetime
    status: RequestStatus
    allowed_transitions: list[RequestStatus]
    overdue: bool = Field(description="Open and past due_at (derived from the clock).")
    unexplained_delay: bool = Field(
        description=(
            "Overdue and no delay notice recorded: the delay has no reason on record yet "
            "(Dir. (EU) 2023/977 Art. 5(2))."
        )
    )
    delay_notice: DelayNoticeOut | None
    escalated: bool = Field(description="An escalation was recorded for it.")
    escalated_at: datetime | None
    assignee: str | None
    answered_at: datetime | None
    answered_late: bool
    closed_at: datetime | None
    eaw: EawOut | None
    version: int
    created_at: datetime
    updated_at: datetime


class RequestOut(RequestSummary):
    """A request with its history, links and decrypted free text (a consultation, audited)."""

    subject: str | None
    delay_reason: str | None
    rejection_reason: str | None
    history: list[HistoryEntryOut]
    linked_messages: list[LinkedMessageOut]


class RequestPage(Page[RequestSummary]):
    """Most urgent first: by due_at, then id."""


class ReplyAccepted(BaseModel):
    """The reply was accepted for delivery; the request's state after it."""

    message: MessageAccepted
    request: RequestSummary


class NoticeAccepted(BaseModel):
    """The delay notice was accepted for delivery; the request's state after it."""

    message: MessageAccepted
    request: RequestSummary
