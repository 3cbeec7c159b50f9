"""Legal time limits of supplementary-information requests (pure functions, no I/O).

DOMAIN.md's table, in calendar days counted from the moment of receipt in UTC
(a day is 24 hours: UTC has no daylight-saving shifts):

- SIRENE supplementary information: 12 h (Reg. (EU) 2018/1862 Art. 8(3); Reg. (EU)
  2018/1861 Art. 8(3), which Reg. (EU) 2018/1860 Art. 19 applies to return alerts).
  Art. 8(3) of 2018/1862 also says the SIRENE Bureaux "act immediately" on alerts for
  terrorist offences and on alerts on children referred to in its Art. 32(1)(c): that is
  a priority (`immediate_reasons`), not a shorter deadline; the 12 h limit still holds.
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
    """Why a SIRENE Bureau must act immediately (Reg. 2018/1862 Art. 8(3), second sentence).

    TERRORISM: an alert for terrorist offences. CHILD: an alert on a child referred to in
    Art. 32(1)(c) (a child at risk of abduction by a parent, family member or guardian);
    no other alert on a minor.
    """

    TERRORISM = "terrorism"
    CHILD = "child"


class AlertCategory(StrEnum):
    """The point of Reg. 2018/1862 Art. 32(1) an Art. 32 alert is entered under."""

    MISSING_PROTECTED = "a"  # missing persons who need to be placed under protection
    MISSING = "b"  # missing persons who do not need to be placed under protection
    CHILD_ABDUCTION = "c"  # children at risk of abduction by a parent, family member, guardian
    CHILD_AT_RISK = "d"  # children at risk of trafficking, forced marriage, terrorism, ...
    VULNERABLE_ADULT = "e"  # vulnerable adults to be prevented from travelling


class TimeLimitRule(StrEnum):
    SIRENE_SUPPLEMENTARY = "sirene_supplementary"
    SIRENE_DATA_ERROR = "sirene_data_error"
    DIR_URGENT_DIRECT = "dir_2023_977_urgent_direct"
    DIR_URGENT_INDIRECT = "dir_2023_977_urgent_indirect"
    DIR_OTHER = "dir_2023_977_other"


POLICE_COOPERATION = "SIS_2018_1862"
BORDER_CHECKS = "SIS_2018_1861"
RETURN = "SIS_2018_1860"
EAW_FRAMEWORK_DECISION = "FD_2002_584"
# The alert articles of each SIS regulation: 2018/1862 Art. 26 arrest for surrender or
# extradition, 32 missing and vulnerable persons, 34 judicial procedure, 36 discreet,
# inquiry and specific checks, 38 objects for seizure or evidence, 40 unknown wanted
# persons; 2018/1861 Art. 24 refusal of entry and stay; 2018/1860 Art. 3 return.
ARTICLES_BY_REGULATION: dict[str, frozenset[int]] = {
    POLICE_COOPERATION: frozenset({26, 32, 34, 36, 38, 40}),
    BORDER_CHECKS: frozenset({24}),
    RETURN: frozenset({3}),
}
ALERT_ARTICLES = frozenset().union(*ARTICLES_BY_REGULATION.values())
_PERSON_ALERTS = frozenset({26, 32, 34, 36, 40, 24, 3})
# Which SIRENE form can be about an alert under which article. A (EAW and extradition
# data): arrest alerts only (Reg. 2018/1862 Art. 27-29, FD 2002/584 Art. 8(1)). F (flag):
# only alerts a flag can be added to, Art. 26, 32 and 36 (Reg. 2018/1862 Art. 24(1),
# 25). L (fingerprints, photographs): alerts on persons, not objects (Art. 38). Q
# (misused identity): alerts on a known person (Reg. 2018/1862 Art. 62; Reg. 2018/1861
# Art. 59), not on objects nor on unknown persons (Art. 40). G, H, I, J, M: any alert.
FORM_ARTICLES: dict[Form, frozenset[int]] = {
    Form.A: frozenset({26}),
    Form.F: frozenset({26, 32, 36}),
    Form.L: _PERSON_ALERTS,
    Form.Q: _PERSON_ALERTS - {40},
}
DIRECTIVE_2023_977 = "DIR_2023_977"
# SIRENE exchanges: alerts under the three SIS regulations, and the EAWs (FD 2002/584)
# that arrest alerts (Art. 26) carry. The Nordic Arrest Warrant travels in SIS arrest
# alerts too.
_SIRENE_BASIS = re.compile(r"^(SIS_2018_186[012]|FD_2002_584|NAW_2005)(_[A-Z0-9_]+)?$")
_ARTICLE_SUFFIX = re.compile(r"_ART([0-9]{1,3})$")

_LIMITS: dict[TimeLimitRule, timedelta] = {
    TimeLimitRule.SIRENE_SUPPLEMENTARY: timedelta(hours=12),
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


def is_sirene_basis(legal_basis: str) -> bool:
    return _SIRENE_BASIS.fullmatch(legal_basis) is not None


def regulation_of(legal_basis: str) -> str | None:
    """`SIS_2018_1862`, `SIS_2018_1861`, `SIS_2018_1860` or `FD_2002_584`, for a SIRENE basis."""
    match = _SIRENE_BASIS.fullmatch(legal_basis)
    return match[1] if match is not None else None


def article_of(legal_basis: str) -> int | None:
    """The SIS alert article a basis such as `SIS_2018_1862_ART26` names, if any."""
    match = _ARTICLE_SUFFIX.search(legal_basis)
    regulation = regulation_of(legal_basis)
    if match is None or regulation is None:
        return None
    article = int(match[1])
    return article if article in ARTICLES_BY_REGULATION.get(regulation, ()) else None


def basis_article_problem(legal_basis: str, alert_article: int | None) -> str | None:
    """Why the basis and the alert article contradict each other, or None.

    A SIS basis naming an article must name one of that regulation's alert articles;
    an alert article must belong to the regulation the basis names (an EAW under
    FD 2002/584 goes with an Art. 26 arrest alert of Reg. 2018/1862).
    """
    regulation = regulation_of(legal_basis)
    if regulation is None:
        return None
    named = _ARTICLE_SUFFIX.search(legal_basis)
    allowed = ARTICLES_BY_REGULATION.get(regulation, frozenset({26}))
    if named is not None and regulation in ARTICLES_BY_REGULATION:
        if int(named[1]) not in allowed:
            return f"{regulation} has no alert article {int(named[1])}: " + _listed(allowed)
        if alert_article is not None and alert_article != int(named[1]):
            return "alert_article differs from the article the legal_basis names"
    if alert_article is not None and alert_article not in allowed:
        return f"alert article {alert_article} is not an alert of {regulation}: " + _listed(allowed)
    return None


def form_article_problem(form: Form, alert_article: int | None) -> str | None:
    """Why a SIRENE form cannot be about an alert under this article (`FORM_ARTICLES`)."""
    allowed = FORM_ARTICLES.get(form)
    if alert_article is None or allowed is None or alert_article in allowed:
        return None
    return f"form {form.value} is not used with Art. {alert_article} alerts: " + _listed(allowed)


def category_problem(alert_article: int | None, category: AlertCategory | None) -> str | None:
    """An alert category is a point of Reg. 2018/1862 Art. 32(1): only Art. 32 alerts have one."""
    if category is not None and alert_article != 32:
        return "alert_category is only for Art. 32 alerts (Reg. 2018/1862 Art. 32(1))"
    return None


def child_flag_problem(alert_article: int | None, category: AlertCategory | None) -> str | None:
    """Art. 8(3) names the children of Art. 32(1)(c) only: the flag needs such an alert."""
    if alert_article != 32 or category not in (None, AlertCategory.CHILD_ABDUCTION):
        return (
            "the child flag is for alerts on children referred to in Reg. 2018/1862 "
            "Art. 32(1)(c): alert_article 32 with alert_category c"
        )
    return None


def immediate_reasons(legal_basis: str, alert_flags: Collection[AlertFlag]) -> list[AlertFlag]:
    """The flags that oblige the SIRENE Bureau to act immediately (Reg. 2018/1862 Art. 8(3)).

    Only police-cooperation alerts (and the EAWs their Art. 26 alerts carry) have this
    rule; border-check and return alerts have the 12-hour limit alone (Reg. 2018/1861
    Art. 8(3)). The deadline is not shortened: immediacy is a priority.
    """
    if regulation_of(legal_basis) not in (POLICE_COOPERATION, EAW_FRAMEWORK_DECISION):
        return []
    return sorted(set(alert_flags))


def _listed(articles: Collection[int]) -> str:
    return "expected one of " + ", ".join(str(article) for article in sorted(articles))


def time_limit_rule(
    *,
    legal_basis: str,
    form: Form,
    urgency: Urgency,
    info_access: InfoAccess | None,
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
        return TimeLimitRule.SIRENE_SUPPLEMENTARY
    raise UnknownTimeLimit(
        "no time limit is known for this legal basis: use DIR_2023_977, "
        "SIS_2018_1862[_ARTnn], SIS_2018_1861[_ART24], SIS_2018_1860[_ART3], FD_2002_584 "
        "or NAW_2005"
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
) -> TimeLimit:
    """The applicable rule and its deadline."""
    rule = time_limit_rule(
        legal_basis=legal_basis, form=form, urgency=urgency, info_access=info_access
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
