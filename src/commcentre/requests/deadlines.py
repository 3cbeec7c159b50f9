"""Legal time limits of supplementary-information requests (pure functions, no I/O).

DOMAIN.md's table, in calendar days counted from the moment of receipt in UTC
(a day is 24 hours: UTC has no daylight-saving shifts):

- SIRENE supplementary information: 12 h; at once for terrorism alerts and alerts on
  children (Reg. (EU) 2018/1862 Art. 8(3))
- SIRENE J form (data error): 10 days (SIRENE Manual)
- Dir. (EU) 2023/977 Art. 5: urgent, data directly accessible 8 h; urgent, indirectly
  accessible 3 days; other requests 7 days
- EAW decision: 10 days after consent (FD 2002/584 Art. 17(2)), else 60 days after
  arrest (17(3)), +30 on extension (17(4)); surrender 10 days after the decision
  (23(2)), or 10 days after a new date agreed (23(3), 23(4))
- Nordic Arrest Warrant (Convention of 15 December 2005, in force 2012): decision 3 days
  after consent, else 30 days after arrest (Art. 15); surrender 5 days after the
  decision or a new date agreed (Art. 23)
"""

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Form(StrEnum):
    """SIRENE forms a supplementary-information request can be about."""

    A = "A"  # European Arrest Warrant data
    G = "G"  # hit
    H = "H"  # hit, but the action cannot be taken
    I = "I"  # noqa: E741 - the SIRENE form's own letter
    J = "J"  # data error
    L = "L"  # fingerprints/photos
    M = "M"  # miscellaneous
    Q = "Q"  # misused identity
    F = "F"  # flag


class Urgency(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


class InfoAccess(StrEnum):
    """Dir. 2023/977: is the information directly accessible to the requested SPOC?"""

    DIRECT = "direct"
    INDIRECT = "indirect"


class AlertFlag(StrEnum):
    """What makes a SIRENE reply due at once (Reg. 2018/1862 Art. 8(3))."""

    TERRORISM = "terrorism"
    CHILD = "child"


class TimeLimitRule(StrEnum):
    SIRENE_SUPPLEMENTARY = "sirene_supplementary"
    SIRENE_IMMEDIATE = "sirene_immediate"
    SIRENE_DATA_ERROR = "sirene_data_error"
    DIR_URGENT_DIRECT = "dir_2023_977_urgent_direct"
    DIR_URGENT_INDIRECT = "dir_2023_977_urgent_indirect"
    DIR_OTHER = "dir_2023_977_other"


ALERT_ARTICLES = frozenset({26, 32, 34, 36, 38})
DIRECTIVE_2023_977 = "DIR_2023_977"
# SIRENE exchanges: alerts under the SIS police-cooperation regulation, and the EAWs
# (FD 2002/584) that arrest alerts (Art. 26) carry.
# The Nordic Arrest Warrant travels in SIS arrest alerts too.
_SIRENE_BASIS = re.compile(r"^(SIS_2018_1862|FD_2002_584|NAW_2005)(_[A-Z0-9_]+)?$")
_ARTICLE_SUFFIX = re.compile(r"_ART([0-9]{2})$")

_LIMITS: dict[TimeLimitRule, timedelta] = {
    TimeLimitRule.SIRENE_SUPPLEMENTARY: timedelta(hours=12),
    TimeLimitRule.SIRENE_IMMEDIATE: timedelta(0),
    TimeLimitRule.SIRENE_DATA_ERROR: timedelta(days=10),
    TimeLimitRule.DIR_URGENT_DIRECT: timedelta(hours=8),
    TimeLimitRule.DIR_URGENT_INDIRECT: timedelta(days=3),
    TimeLimitRule.DIR_OTHER: timedelta(days=7),
}

EAW_DECISION_WITH_CONSENT = timedelta(days=10)
EAW_DECISION_WITHOUT_CONSENT = timedelta(days=60)
EAW_EXTENSION = timedelta(days=30)
EAW_SURRENDER = timedelta(days=10)
NORDIC_ARREST_WARRANT = "NAW_2005"
NAW_DECISION_WITH_CONSENT = timedelta(days=3)
NAW_DECISION_WITHOUT_CONSENT = timedelta(days=30)
NAW_SURRENDER = timedelta(days=5)


class SurrenderPostponement(StrEnum):
    """Why a new surrender date was agreed (FD 2002/584 Art. 23)."""

    # 23(3): prevented by circumstances beyond the control of any of the Member States.
    BEYOND_CONTROL = "beyond_control"
    # 23(4): serious humanitarian reasons, e.g. a risk to the person's life or health.
    HUMANITARIAN = "humanitarian"


class UnknownTimeLimit(ValueError):
    """No row of the table applies; `str(exc)` says what is missing, never a value."""


@dataclass(frozen=True, slots=True)
class TimeLimit:
    rule: TimeLimitRule
    due_at: datetime

    @property
    def immediate(self) -> bool:
        """Due at once: the reply is due the moment the request arrives."""
        return self.rule is TimeLimitRule.SIRENE_IMMEDIATE


def is_sirene_basis(legal_basis: str) -> bool:
    return _SIRENE_BASIS.fullmatch(legal_basis) is not None


def article_of(legal_basis: str) -> int | None:
    """The SIS alert article a basis such as `SIS_2018_1862_ART26` names, if any."""
    match = _ARTICLE_SUFFIX.search(legal_basis)
    if match is None or not is_sirene_basis(legal_basis):
        return None
    article = int(match[1])
    return article if article in ALERT_ARTICLES else None


def time_limit_rule(
    *,
    legal_basis: str,
    form: Form,
    urgency: Urgency,
    info_access: InfoAccess | None,
    alert_flags: Collection[AlertFlag] = (),
) -> TimeLimitRule:
    """Which row of the table applies; raises UnknownTimeLimit when none does."""
    if legal_basis == DIRECTIVE_2023_977:
        if urgency is Urgency.NORMAL:
            return TimeLimitRule.DIR_OTHER
        if info_access is None:
            raise UnknownTimeLimit(
                "an urgent request under DIR_2023_977 needs info_access (direct or indirect)"
            )
        if info_access is InfoAccess.DIRECT:
            return TimeLimitRule.DIR_URGENT_DIRECT
        return TimeLimitRule.DIR_URGENT_INDIRECT
    if is_sirene_basis(legal_basis):
        if form is Form.J:
            return TimeLimitRule.SIRENE_DATA_ERROR
        if alert_flags:
            return TimeLimitRule.SIRENE_IMMEDIATE
        return TimeLimitRule.SIRENE_SUPPLEMENTARY
    raise UnknownTimeLimit(
        "no time limit is known for this legal basis: use DIR_2023_977, "
        "SIS_2018_1862[_ARTnn], FD_2002_584 or NAW_2005"
    )


def due_at(rule: TimeLimitRule, received_at: datetime) -> datetime:
    """The deadline of `rule` for a request received at `received_at` (timezone-aware)."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return received_at + _LIMITS[rule]


def time_limit(
    *,
    legal_basis: str,
    form: Form,
    urgency: Urgency,
    info_access: InfoAccess | None,
    received_at: datetime,
    alert_flags: Collection[AlertFlag] = (),
) -> TimeLimit:
    """The applicable rule and its deadline."""
    rule = time_limit_rule(
        legal_basis=legal_basis,
        form=form,
        urgency=urgency,
        info_access=info_access,
        alert_flags=alert_flags,
    )
    return TimeLimit(rule=rule, due_at=due_at(rule, received_at))


@dataclass(frozen=True, slots=True)
class EawDeadlines:
    decision_due_at: datetime
    surrender_due_at: datetime | None


def is_nordic_warrant(legal_basis: str) -> bool:
    """A Nordic Arrest Warrant (`NAW_2005[...]`) rather than a European one."""
    return legal_basis == NORDIC_ARREST_WARRANT or legal_basis.startswith(
        NORDIC_ARREST_WARRANT + "_"
    )


def eaw_deadlines(
    *,
    arrested_at: datetime,
    consent: bool,
    extended: bool,
    decided_at: datetime | None,
    consented_at: datetime | None = None,
    surrender_agreed_at: datetime | None = None,
    nordic: bool = False,
) -> EawDeadlines:
    """The decision and surrender deadlines of an arrest warrant.

    European (FD 2002/584): decision 10 days after consent (Art. 17(2); consent given at
    the arrest unless `consented_at` says later), else 60 days after arrest (17(3)); +30
    on extension (17(4)); surrender 10 days after the decision (23(2)) or after a new
    date agreed (23(3), 23(4)). Nordic (`nordic`): 3 days after consent, else 30 days
    after arrest; surrender 5 days after the decision or the new date.
    """
    with_consent, without_consent, surrender_limit = (
        (NAW_DECISION_WITH_CONSENT, NAW_DECISION_WITHOUT_CONSENT, NAW_SURRENDER)
        if nordic
        else (EAW_DECISION_WITH_CONSENT, EAW_DECISION_WITHOUT_CONSENT, EAW_SURRENDER)
    )
    if consent:
        decision = (consented_at or arrested_at) + with_consent
    else:
        decision = arrested_at + without_consent
    if extended:
        decision += EAW_EXTENSION
    surrender_from = surrender_agreed_at or decided_at
    surrender = surrender_from + surrender_limit if surrender_from is not None else None
    return EawDeadlines(decision_due_at=decision, surrender_due_at=surrender)
