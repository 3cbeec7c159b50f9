"""delivery.retry, delivery.breaker and delivery.ratelimit: pure policy objects, fake clocks."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from commcentre.adapters.base import (
    DeliveryError,
    PartnerGoneError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from commcentre.delivery.breaker import BreakerState, CircuitBreakers
from commcentre.delivery.ratelimit import next_slot
from commcentre.delivery.retry import MAX_RETRY_AFTER, RetryPolicy

RETRYABLE = RetryableDeliveryError("partner answered HTTP 503", status_code=503)
NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


def decide(
    policy: RetryPolicy,
    error: DeliveryError = RETRYABLE,
    *,
    attempt: int = 1,
    age: float = 0.0,
    seed: int = 7,
) -> float | None:
    decision = policy.decide(
        error, attempt=attempt, age=timedelta(seconds=age), rng=random.Random(seed)
    )
    return None if decision is None else decision.delay


# -- retry policy ---------------------------------------------------------------------------------


def test_jitter_leaves_the_shared_random_state_alone() -> None:
    # The dispatcher decides retries while other code in the process may draw from the
    # `random` module (Hypothesis checks that a strategy did not move its state).
    before = random.getstate()
    delays = {
        decision.delay
        for _ in range(20)
        if (decision := RetryPolicy().decide(RETRYABLE, attempt=8, age=timedelta(0)))
    }
    assert random.getstate() == before
    assert len(delays) > 1  # still jittered


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6])
def test_full_jitter_stays_within_the_exponential_ceiling(attempt: int) -> None:
    policy = RetryPolicy(base=0.5, cap=3600.0, max_attempts=100)
    ceiling = 0.5 * 2 ** (attempt - 1)
    delays = [decide(policy, attempt=attempt, seed=seed) for seed in range(300)]
    assert all(d is not None and 0.0 <= d <= ceiling for d in delays)
    spread = [d for d in delays if d is not None]
    # Full jitter: the whole range is used, not just the top of it.
    assert min(spread) < ceiling * 0.1
    assert max(spread) > ceiling * 0.9


def test_jitter_is_the_seeded_uniform_draw() -> None:
    policy = RetryPolicy(base=1.0, cap=3600.0)
    expected = random.Random(42).uniform(0, 4.0)
    assert decide(policy, attempt=3, seed=42) == expected
    assert decide(policy, attempt=3, seed=42) == decide(policy, attempt=3, seed=42)


def test_cap_bounds_the_delay_at_any_attempt() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0, max_attempts=100)
    delays = [decide(policy, attempt=60, seed=seed) for seed in range(200)]
    assert all(d is not None and 0.0 <= d <= 10.0 for d in delays)
    assert max(d for d in delays if d is not None) > 9.0


def test_retry_after_is_honoured_over_a_shorter_jitter() -> None:
    policy = RetryPolicy(base=0.01, cap=0.05)
    error = RetryableDeliveryError("429", status_code=429, retry_after=120.0)
    assert decide(policy, error) == 120.0


def test_jitter_longer_than_retry_after_wins() -> None:
    policy = RetryPolicy(base=100.0, cap=100.0)
    error = RetryableDeliveryError("503", status_code=503, retry_after=0.5)
    delays = [decide(policy, error, seed=seed) for seed in range(50)]
    assert all(d is not None and 0.5 <= d <= 100.0 for d in delays)
    assert max(d for d in delays if d is not None) > 50.0


def test_retry_after_is_capped_at_one_day() -> None:
    policy = RetryPolicy(base=0.01, cap=0.05, max_age=timedelta(days=7))
    error = RetryableDeliveryError("429", status_code=429, retry_after=10.0**9)
    assert MAX_RETRY_AFTER == 24 * 3600
    assert decide(policy, error) == MAX_RETRY_AFTER


def test_max_attempts_gives_up_at_the_last_attempt() -> None:
    policy = RetryPolicy(base=0.01, cap=0.05, max_attempts=3)
    assert decide(policy, attempt=1) is not None
    assert decide(policy, attempt=2) is not None
    assert decide(policy, attempt=3) is None
    assert decide(policy, attempt=4) is None


def test_max_age_gives_up_when_the_next_attempt_would_be_too_late() -> None:
    policy = RetryPolicy(base=0.01, cap=0.05, max_age=timedelta(seconds=60))
    error = RetryableDeliveryError("429", status_code=429, retry_after=10.0)
    assert decide(policy, error, age=49.0) == 10.0
    assert decide(policy, error, age=51.0) is None
    assert decide(policy, age=61.0) is None


@pytest.mark.parametrize(
    "error",
    [
        PermanentDeliveryError("partner answered HTTP 400", status_code=400),
        PartnerGoneError("partner answered HTTP 410", status_code=410),
        DeliveryError("neither retryable nor permanent"),
    ],
)
def test_anything_not_retryable_is_never_retried(error: DeliveryError) -> None:
    assert decide(RetryPolicy(), error) is None


# -- circuit breaker ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breakers(clock: FakeClock) -> CircuitBreakers:
    return CircuitBreakers(threshold=3, cooldown=30.0, clock=clock)


def test_breaker_opens_after_threshold_consecutive_failures(breakers: CircuitBreakers) -> None:
    for _ in range(2):
        breakers.record_failure("se")
        assert breakers.state("se") is BreakerState.CLOSED
        assert breakers.allow("se")
    breakers.record_failure("se")
    assert breakers.state("se") is BreakerState.OPEN
    assert breakers.open_partners() == ["se"]


def test_a_success_resets_the_count(breakers: CircuitBreakers) -> None:
    for _ in range(2):
        breakers.record_failure("se")
    breakers.record_success("se")
    for _ in range(2):
        breakers.record_failure("se")
    assert breakers.state("se") is BreakerState.CLOSED


def test_open_circuit_blocks_until_the_cooldown_ends(
    breakers: CircuitBreakers, clock: FakeClock
) -> None:
    for _ in range(3):
        breakers.record_failure("se")
    assert not breakers.allow("se")
    assert breakers.retry_in("se") == 30.0
    clock.advance(29.9)
    assert not breakers.allow("se")
    assert breakers.retry_in("se") == pytest.approx(0.1)
    assert breakers.allow("other-partner")  # circuits are per partner
    assert breakers.open_partners() == ["se"]
    clock.advance(0.1)
    assert breakers.state("se") is BreakerState.HALF_OPEN
    assert breakers.retry_in("se") == 0.0
    assert breakers.open_partners() == []  # half-open: claimable again, for the probe


def test_half_open_lets_exactly_one_probe(breakers: CircuitBreakers, clock: FakeClock) -> None:
    for _ in range(3):
        breakers.record_failure("se")
    clock.advance(30.0)
    assert breakers.allow("se")  # the probe
    assert not breakers.allow("se")
    assert not breakers.allow("se")


def test_probe_success_closes(breakers: CircuitBreakers, clock: FakeClock) -> None:
    for _ in range(3):
        breakers.record_failure("se")
    clock.advance(30.0)
    assert breakers.allow("se")
    breakers.record_success("se")
    assert breakers.state("se") is BreakerState.CLOSED
    assert all(breakers.allow("se") for _ in range(5))
    # Closed again from scratch: it takes `threshold` new failures to open.
    breakers.record_failure("se")
    assert breakers.state("se") is BreakerState.CLOSED


def test_probe_failure_reopens_for_a_full_cooldown(
    breakers: CircuitBreakers, clock: FakeClock
) -> None:
    for _ in range(3):
        breakers.record_failure("se")
    clock.advance(45.0)
    assert breakers.allow("se")
    breakers.record_failure("se")
    assert breakers.state("se") is BreakerState.OPEN
    assert breakers.retry_in("se") == 30.0
    clock.advance(29.0)
    assert not breakers.allow("se")
    clock.advance(1.0)
    assert breakers.allow("se")  # the next probe
    assert not breakers.allow("se")


# -- rate limit (GCRA) ----------------------------------------------------------------------------


def take(count: int, *, rate: float, burst: int, at: datetime = NOW) -> list[float]:
    """Reserve `count` starts all asked for at the same instant; their delays."""
    tat: datetime | None = None
    delays = []
    for _ in range(count):
        slot = next_slot(tat, at, rate=rate, burst=burst)
        delays.append(slot.delay)
        tat = slot.tat
    return delays


def test_burst_one_spaces_every_start() -> None:
    assert take(5, rate=10, burst=1) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_burst_allows_that_many_at_once_then_spaces() -> None:
    assert take(6, rate=10, burst=3) == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])


def test_starts_at_the_rate_never_wait() -> None:
    tat: datetime | None = None
    now = NOW
    for _ in range(20):
        slot = next_slot(tat, now, rate=20, burst=1)
        assert slot.delay == 0.0
        assert slot.tat == now + timedelta(seconds=0.05)
        tat, now = slot.tat, now + timedelta(seconds=0.05)


def test_idle_time_does_not_bank_more_than_the_burst() -> None:
    slot = next_slot(NOW, NOW, rate=10, burst=2)
    tat = slot.tat
    later = NOW + timedelta(hours=1)
    delays = []
    for _ in range(4):
        slot = next_slot(tat, later, rate=10, burst=2)
        delays.append(slot.delay)
        tat = slot.tat
    assert delays == pytest.approx([0.0, 0.0, 0.1, 0.2])


def test_delay_is_what_is_left_until_the_slot() -> None:
    tat = NOW + timedelta(seconds=2)  # ten starts already reserved at 5/s
    slot = next_slot(tat, NOW, rate=5, burst=1)
    assert slot.delay == pytest.approx(2.0)
    assert slot.tat == NOW + timedelta(seconds=2.2)
    half_way = next_slot(tat, NOW + timedelta(seconds=1.5), rate=5, burst=1)
    assert half_way.delay == pytest.approx(0.5)
