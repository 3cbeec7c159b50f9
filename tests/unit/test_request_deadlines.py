"""Legal time limits and the state machine of supplementary-information requests."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commcentre.requests.deadlines import (
    AlertFlag,
    Form,
    InfoAccess,
    TimeLimitRule,
    UnknownTimeLimit,
    Urgency,
    article_of,
    eaw_deadlines,
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
        alert_flags=flags,
    )
    return result.rule, result.due_at, result.immediate


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
    assert (got_rule, got_due, immediate) == (rule, at(due), False)


@pytest.mark.parametrize("flag", list(AlertFlag))
def test_terrorism_and_child_alerts_are_due_at_once(flag: AlertFlag) -> None:
    rule, due, immediate = limit("2026-03-10T08:00Z", flags=(flag,))
    assert rule is TimeLimitRule.SIRENE_IMMEDIATE
    assert due == at("2026-03-10T08:00Z")
    assert immediate


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
