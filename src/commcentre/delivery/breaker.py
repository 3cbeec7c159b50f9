"""A circuit breaker per partner, in this worker's memory.

After `threshold` consecutive retryable failures a partner's circuit opens:
nothing is sent to it for `cooldown` seconds. Then one probe is let through
(half-open); its success closes the circuit, its failure opens it again.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


@dataclass(slots=True)
class CircuitBreakers:
    threshold: int = 5
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _circuits: dict[str, _Circuit] = field(default_factory=dict)

    def state(self, partner_id: str) -> BreakerState:
        circuit = self._circuits.get(partner_id)
        if circuit is None or circuit.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - circuit.opened_at < self.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self, partner_id: str) -> bool:
        """May a delivery to this partner start now? Takes the probe slot when half-open."""
        state = self.state(partner_id)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        circuit = self._circuits[partner_id]
        if circuit.probing:
            return False
        circuit.probing = True
        return True

    def retry_in(self, partner_id: str) -> float:
        """Seconds until this partner's circuit lets a probe through."""
        circuit = self._circuits.get(partner_id)
        if circuit is None or circuit.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - circuit.opened_at))

    def record_success(self, partner_id: str) -> None:
        self._circuits.pop(partner_id, None)

    def record_failure(self, partner_id: str) -> None:
        circuit = self._circuits.setdefault(partner_id, _Circuit())
        circuit.failures += 1
        if circuit.probing or circuit.failures >= self.threshold:
            circuit.opened_at = self.clock()
        circuit.probing = False

    def open_partners(self) -> list[str]:
        return [p for p in self._circuits if self.state(p) is BreakerState.OPEN]
