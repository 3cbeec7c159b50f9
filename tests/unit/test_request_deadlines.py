"""Legal time limits and the state machine of supplementary-information requests."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commcentre.requests.deadlines import (
    ALERT_ARTICLES,
    AlertCategory,
    AlertFlag,
    Form,
    InfoAccess,
    TimeLimitRule,
    UnknownTimeLimit,
    Urgency,
    article_of,
    basis_article_problem,
    category_problem,
    child_flag_problem,
    eaw_deadlines,
    form_article_problem,
    immediate_reasons,
    is_nordic_warrant,
    is_sirene_basis,
    time_limit,
)
from commcentre.requests.states import (
    TRANSITIONS,
    RequestStatus,
    allowed_from,
    is_allowed,
    is_overdue,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def limit(
    received: str,
    *,
    basis: str = "SIS_2018_1862_ART26",
    form: Form = Form.G,
    urgency: Urgency = Urgency.NORMAL,
    access: InfoAccess | None = None,
    flags: tuple[AlertFlag, ...] = (),
) -> tuple[TimeLimitRule, datetime, bool]:
    result = time_limit(
        legal_basis=basis,
        form=form,
        urgency=urgency,
        info_access=access,
        received_at=at(received),
    )
    return result.rule, result.due_at, bool(immediate_reasons(basis, flags))


# Every row of DOMAIN.md's table, with day, month, year and leap-day boundaries.
@pytest.mark.parametrize(
    ("received", "kwargs", "rule", "due"),
    [
        # SIRENE supplementary information: 12 h.
        ("2026-03-10T08:00Z", {}, TimeLimitRule.SIRENE_SUPPLEMENTARY, "2026-03-10T20:00Z"),
        ("2026-03-10T18:30Z", {}, TimeLimitRule.SIRENE_SUPPLEMENTARY, "2026-03-11T06:30Z"),
        ("2026-12-31T13:00Z", {}, TimeLimitRule.SIRENE_SUPPLEMENTARY, "2027-01-01T01:00Z"),
        (
            "2026-05-01T09:00Z",
            {"basis": "FD_2002_584", "form": Form.A},
            TimeLimitRule.SIRENE_SUPPLEMENTARY,
            "2026-05-01T21:00Z",
        ),
        # SIRENE J form: 10 calendar days.
        (
            "2026-02-25T10:00Z",
            {"form": Form.J},
            TimeLimitRule.SIRENE_DATA_ERROR,
            "2026-03-07T10:00Z",
        ),
        (
            "2024-02-25T10:00Z",
            {"form": Form.J},
            TimeLimitRule.SIRENE_DATA_ERROR,
            "2024-03-06T10:00Z",
        ),
        (
            "2026-12-28T23:59Z",
            {"form": Form.J, "flags": (AlertFlag.TERRORISM,)},
            TimeLimitRule.SIRENE_DATA_ERROR,
            "2027-01-07T23:59Z",
        ),
        # Dir. 2023/977 urgent, directly accessible: 8 h.
        (
            "2026-06-01T23:30Z",
            {"basis": "DIR_2023_977", "urgency": Urgency.URGENT, "access": InfoAccess.DIRECT},
            TimeLimitRule.DIR_URGENT_DIRECT,
            "2026-06-02T07:30Z",
        ),
        (
            "2026-01-31T20:00Z",
            {"basis": "DIR_2023_977", "urgency": Urgency.URGENT, "access": InfoAccess.DIRECT},
            TimeLimitRule.DIR_URGENT_DIRECT,
            "2026-02-01T04:00Z",
        ),
        # Dir. 2023/977 urgent, indirectly accessible: 3 calendar days.
        (
            "2026-01-31T20:00Z",
            {"basis": "DIR_2023_977", "urgency": Urgency.URGENT, "access": InfoAccess.INDIRECT},
            TimeLimitRule.DIR_URGENT_INDIRECT,
            "2026-02-03T20:00Z",
        ),
        (
            "2024-02-27T12:00Z",
            {"basis": "DIR_2023_977", "urgency": Urgency.URGENT, "access": InfoAccess.INDIRECT},
            TimeLimitRule.DIR_URGENT_INDIRECT,
            "2024-03-01T12:00Z",
        ),
        # Dir. 2023/977 other requests: 7 calendar days (info access does not matter).
        (
            "2024-02-28T09:15Z",
            {"basis": "DIR_2023_977"},
            TimeLimitRule.DIR_OTHER,
            "2024-03-06T09:15Z",
        ),
        (
            "2025-02-28T09:15Z",
            {"basis": "DIR_2023_977", "access": InfoAccess.INDIRECT},
            TimeLimitRule.DIR_OTHER,
            "2025-03-07T09:15Z",
        ),
        (
            "2026-12-29T00:00Z",
            {"basis": "DIR_2023_977"},
            TimeLimitRule.DIR_OTHER,
            "2027-01-05T00:00Z",
        ),
    ],
)
def test_time_limit_table(
    received: str, kwargs: dict[str, object], rule: TimeLimitRule, due: str
) -> None:
    got_rule, got_due, immediate = limit(received, **kwargs)  # type: ignore[arg-type]
    assert (got_rule, got_due, immediate) == (rule, at(due), "flags" in kwargs)


@pytest.mark.parametrize("flag", list(AlertFlag))
def test_terrorism_and_child_alerts_are_immediate_within_the_12_hour_limit(
    flag: AlertFlag,
) -> None:
    """Reg. (EU) 2018/1862 Art. 8(3): a reply is due "as soon as possible but not later
    than 12 hours after the receipt"; for alerts for terrorist offences and alerts on
    children of Art. 32(1)(c) the SIRENE Bureau "shall act immediately". That is a
    priority, not a deadline at the instant of receipt (which made every answer late)."""
    rule, due, immediate = limit("2026-03-10T08:00Z", basis="SIS_2018_1862_ART32", flags=(flag,))
    assert rule is TimeLimitRule.SIRENE_SUPPLEMENTARY
    assert due == at("2026-03-10T20:00Z")
    assert immediate


@pytest.mark.parametrize(
    ("basis", "article"),
    [
        ("SIS_2018_1862_ART40", 40),
        ("SIS_2018_1861_ART24", 24),
        ("SIS_2018_1861", None),
        ("SIS_2018_1860_ART3", 3),
        ("SIS_2018_1860", None),
    ],
)
def test_every_sis_alert_basis_has_the_12_hour_sirene_limit(
    basis: str, article: int | None
) -> None:
    """Reg. (EU) 2018/1862 Art. 8(3) (police cooperation, Art. 40 unknown wanted persons
    included) and Reg. (EU) 2018/1861 Art. 8(3) (border checks, Art. 24 refusal of entry
    and stay), which Reg. (EU) 2018/1860 Art. 19 applies to return alerts (Art. 3): a
    SIRENE reply is due 12 hours after receipt."""
    rule, due, _ = limit("2026-03-10T08:00Z", basis=basis)
    assert (rule, due) == (TimeLimitRule.SIRENE_SUPPLEMENTARY, at("2026-03-10T20:00Z"))
    assert article_of(basis) == article


@pytest.mark.parametrize("basis", ["SIS_2018_1861_ART24", "SIS_2018_1860_ART3"])
def test_immediate_action_is_a_rule_of_the_police_cooperation_regulation_only(basis: str) -> None:
    """Only Reg. (EU) 2018/1862 Art. 8(3) has the "act immediately" sentence; border-check
    and return alerts (Reg. 2018/1861 Art. 8(3), Reg. 2018/1860 Art. 19) have the 12-hour
    limit alone."""
    assert immediate_reasons(basis, [AlertFlag.TERRORISM]) == []
    assert immediate_reasons("SIS_2018_1862_ART36", [AlertFlag.TERRORISM]) == [AlertFlag.TERRORISM]


@pytest.mark.parametrize(
    ("basis", "article", "problem"),
    [
        ("SIS_2018_1862_ART26", None, None),
        ("SIS_2018_1862_ART26", 26, None),
        ("SIS_2018_1862", 40, None),
        ("SIS_2018_1861_ART24", 24, None),
        ("SIS_2018_1860", 3, None),
        ("FD_2002_584", 26, None),
        ("DIR_2023_977", None, None),
        ("SIS_2018_1862_ART26", 32, "differs"),
        ("SIS_2018_1862_ART24", None, "no alert article 24"),
        ("SIS_2018_1862_ART99", None, "no alert article 99"),
        ("SIS_2018_1861_ART26", None, "no alert article 26"),
        ("SIS_2018_1861", 32, "not an alert of SIS_2018_1861"),
        ("SIS_2018_1860", 24, "not an alert of SIS_2018_1860"),
        ("SIS_2018_1862", 3, "not an alert of SIS_2018_1862"),
        ("FD_2002_584", 32, "not an alert of FD_2002_584"),
    ],
)
def test_the_alert_article_belongs_to_the_regulation_of_the_basis(
    basis: str, article: int | None, problem: str | None
) -> None:
    """Alert articles per regulation: Reg. (EU) 2018/1862 Art. 26, 32, 34, 36, 38, 40;
    Reg. (EU) 2018/1861 Art. 24; Reg. (EU) 2018/1860 Art. 3; an EAW (FD 2002/584) goes
    with an Art. 26 arrest alert of Reg. 2018/1862 (its Art. 26(1))."""
    found = basis_article_problem(basis, article)
    assert (found is None) if problem is None else (found is not None and problem in found)


# Form letter -> the alert articles it can be about (None: every article).
FORM_TABLE: dict[Form, frozenset[int] | None] = {
    Form.A: frozenset({26}),
    Form.F: frozenset({26, 32, 36}),
    Form.L: frozenset({3, 24, 26, 32, 34, 36, 40}),
    Form.Q: frozenset({3, 24, 26, 32, 34, 36}),
    Form.G: None,
    Form.H: None,
    Form.I: None,
    Form.J: None,
    Form.M: None,
}


@pytest.mark.parametrize("form", list(Form))
@pytest.mark.parametrize("article", sorted(ALERT_ARTICLES))
def test_form_and_article_pairs(form: Form, article: int) -> None:
    """Which SIRENE form fits which alert: A (EAW data) only Art. 26 arrest alerts (Reg.
    (EU) 2018/1862 Art. 27-29, FD 2002/584 Art. 8(1)); F (flag) only the alerts a flag
    can be added to, Art. 26, 32 and 36 (Reg. 2018/1862 Art. 24(1), 25); L
    (fingerprints, photographs) alerts on persons, not Art. 38 objects; Q (misused
    identity, Reg. 2018/1862 Art. 62) alerts on known persons, not objects nor Art. 40
    unknown persons; G, H, I, J, M any alert."""
    allowed = FORM_TABLE[form]
    fits = allowed is None or article in allowed
    assert (form_article_problem(form, article) is None) is fits
    assert form_article_problem(form, None) is None


def test_only_art_32_alerts_have_a_category_and_only_32_1_c_is_a_child_alert() -> None:
    """Reg. (EU) 2018/1862 Art. 32(1) points (a) to (e) categorise Art. 32 alerts only;
    Art. 8(3) names "alerts on children referred to in Article 32(1)(c)" (children at
    risk of abduction by a parent, family member or guardian), not the children of
    (a), (b) or (d) nor a minor in another alert."""
    assert category_problem(32, AlertCategory.CHILD_AT_RISK) is None
    assert category_problem(26, AlertCategory.CHILD_ABDUCTION) is not None
    assert child_flag_problem(32, AlertCategory.CHILD_ABDUCTION) is None
    assert child_flag_problem(32, None) is None
    for category in set(AlertCategory) - {AlertCategory.CHILD_ABDUCTION}:
        assert child_flag_problem(32, category) is not None
    assert child_flag_problem(26, None) is not None


def test_flags_do_not_change_directive_limits() -> None:
    rule, due, immediate = limit(
        "2026-03-10T08:00Z", basis="DIR_2023_977", flags=(AlertFlag.TERRORISM,)
    )
    assert (rule, due, immediate) == (TimeLimitRule.DIR_OTHER, at("2026-03-17T08:00Z"), False)


def test_urgent_directive_request_needs_info_access() -> None:
    with pytest.raises(UnknownTimeLimit, match="info_access"):
        limit("2026-03-10T08:00Z", basis="DIR_2023_977", urgency=Urgency.URGENT)


@pytest.mark.parametrize("basis", ["GDPR", "DIR_2016_680", "SIS_2018", "FD_2002_5840"])
def test_unknown_basis_has_no_time_limit(basis: str) -> None:
    with pytest.raises(UnknownTimeLimit):
        limit("2026-03-10T08:00Z", basis=basis)


def test_naive_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        limit("2026-03-10T08:00")


def test_received_in_another_zone_counts_from_the_same_instant() -> None:
    _, due, _ = limit("2026-03-29T00:30+02:00")  # CEST starts that night: UTC has no gap
    assert due == at("2026-03-29T10:30Z")


@pytest.mark.parametrize(
    ("basis", "article"),
    [
        ("SIS_2018_1862_ART26", 26),
        ("SIS_2018_1862_ART32", 32),
        ("SIS_2018_1862_ART38", 38),
        ("SIS_2018_1862_ART99", None),
        ("SIS_2018_1862_ART24", None),
        ("SIS_2018_1862_ART40", 40),
        ("SIS_2018_1862", None),
        ("DIR_2023_977", None),
    ],
)
def test_article_from_legal_basis(basis: str, article: int | None) -> None:
    assert article_of(basis) == article


@pytest.mark.parametrize(
    ("consent", "extended", "decision"),
    [
        (True, False, "2026-02-07T10:00Z"),
        (False, False, "2026-03-29T10:00Z"),
        (True, True, "2026-03-09T10:00Z"),
        (False, True, "2026-04-28T10:00Z"),
    ],
)
def test_eaw_decision_deadline(consent: bool, extended: bool, decision: str) -> None:
    got = eaw_deadlines(
        arrested_at=at("2026-01-28T10:00Z"), consent=consent, extended=extended, decided_at=None
    )
    assert got.decision_due_at == at(decision)
    assert got.surrender_due_at is None


def test_eaw_surrender_is_ten_days_after_the_decision() -> None:
    got = eaw_deadlines(
        arrested_at=at("2024-02-01T10:00Z"),
        consent=True,
        extended=False,
        decided_at=at("2024-02-25T16:00Z"),
    )
    assert got.surrender_due_at == at("2024-03-06T16:00Z")


def test_eaw_decision_runs_from_the_consent() -> None:
    """FD 2002/584 Art. 17(2): the decision is due 10 days after consent is given."""
    got = eaw_deadlines(
        arrested_at=at("2026-01-28T10:00Z"),
        consent=True,
        consented_at=at("2026-02-03T15:00Z"),
        extended=False,
        decided_at=None,
    )
    assert got.decision_due_at == at("2026-02-13T15:00Z")


def test_eaw_surrender_runs_from_a_new_date_agreed() -> None:
    """FD 2002/584 Art. 23(3)/(4): surrender within 10 days of the new date agreed."""
    got = eaw_deadlines(
        arrested_at=at("2026-01-28T10:00Z"),
        consent=True,
        extended=False,
        decided_at=at("2026-02-05T10:00Z"),
        surrender_agreed_at=at("2026-02-20T08:00Z"),
    )
    assert got.surrender_due_at == at("2026-03-02T08:00Z")


@pytest.mark.parametrize(
    ("consent", "decision", "surrender"),
    [
        (True, "2026-01-31T10:00Z", "2026-02-10T12:00Z"),
        (False, "2026-02-27T10:00Z", "2026-02-10T12:00Z"),
    ],
)
def test_nordic_arrest_warrant_limits(consent: bool, decision: str, surrender: str) -> None:
    """Nordic Arrest Warrant Convention (2005): decision 3 days after consent, else 30 days
    after the arrest; surrender 5 days after the final decision."""
    got = eaw_deadlines(
        arrested_at=at("2026-01-28T10:00Z"),
        consent=consent,
        extended=False,
        decided_at=at("2026-02-05T12:00Z"),
        nordic=True,
    )
    assert got.decision_due_at == at(decision)
    assert got.surrender_due_at == at(surrender)


def test_nordic_arrest_warrant_requests_have_a_time_limit() -> None:
    """A NAW travels in a SIS arrest alert: its requests get the SIRENE limit, not an error."""
    assert is_nordic_warrant("NAW_2005")
    assert is_sirene_basis("NAW_2005")
    assert not is_nordic_warrant("FD_2002_584")


@given(
    received=st.datetimes(
        # hypothesis takes naive bounds and attaches the zone itself
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    urgency=st.sampled_from(Urgency),
    access=st.sampled_from(InfoAccess),
)
def test_directive_deadline_never_precedes_receipt(
    received: datetime, urgency: Urgency, access: InfoAccess
) -> None:
    result = time_limit(
        legal_basis="DIR_2023_977",
        form=Form.M,
        urgency=urgency,
        info_access=access,
        received_at=received,
    )
    assert received + timedelta(hours=8) <= result.due_at <= received + timedelta(days=7)


# The state machine.
def test_transition_table() -> None:
    s = RequestStatus
    assert allowed_from(s.RECEIVED) == (s.ASSIGNED, s.ANSWERED, s.REJECTED)
    assert allowed_from(s.ASSIGNED) == (s.AWAITING_INFORMATION, s.ANSWERED, s.REJECTED)
    assert allowed_from(s.AWAITING_INFORMATION) == (s.ANSWERED, s.REJECTED)
    assert allowed_from(s.ANSWERED) == (s.CLOSED,)
    assert allowed_from(s.CLOSED) == ()
    assert allowed_from(s.REJECTED) == ()
    assert set(TRANSITIONS) == set(RequestStatus)


@pytest.mark.parametrize("status", list(RequestStatus))
def test_no_state_moves_to_itself_or_back_to_received(status: RequestStatus) -> None:
    assert not is_allowed(status, status)
    assert not is_allowed(status, RequestStatus.RECEIVED)


def test_overdue_is_derived_for_open_requests_only() -> None:
    due = at("2026-03-10T20:00Z")
    later = due + timedelta(seconds=1)
    assert not is_overdue(RequestStatus.RECEIVED, due, due)
    assert is_overdue(RequestStatus.RECEIVED, due, later)
    assert is_overdue(RequestStatus.AWAITING_INFORMATION, due, later)
    assert not is_overdue(RequestStatus.ANSWERED, due, later)
    assert not is_overdue(RequestStatus.REJECTED, due, later)
