"""The retry policy: its own object, so that it can be read, tuned and tested alone."""

import random
from dataclasses import dataclass
from datetime import timedelta

from commcentre.adapters.base import DeliveryError, RetryableDeliveryError

MAX_RETRY_AFTER = 24 * 3600.0  # a partner asking for more than a day is not taken literally

# The jitter's own generator (seeded from the OS): drawing from the `random` module's
# shared one would move a state that other code in the process (tests, libraries) may
# rely on.
_JITTER = random.Random()  # noqa: S311 (jitter, not secrecy)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Try again after `delay` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring Retry-After, bounded by attempts and age."""

    base: float = 1.0
    cap: float = 3600.0
    max_attempts: int = 15
    max_age: timedelta = timedelta(days=2)

    def decide(
        self,
        error: DeliveryError,
        *,
        attempt: int,
        age: timedelta,
        rng: random.Random | None = None,
    ) -> RetryDecision | None:
        """When to try again after `attempt` failed, or None: give up (dead letter)."""
        if not isinstance(error, RetryableDeliveryError):
            return None
        if attempt >= self.max_attempts:
            return None
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        delay = (rng or _JITTER).uniform(0, ceiling)
        if error.retry_after is not None:
            delay = max(delay, min(error.retry_after, MAX_RETRY_AFTER))
        if age + timedelta(seconds=delay) > self.max_age:
            return None
        return RetryDecision(delay)
