"""The counters and histograms a process updates as it works.

Labels are closed sets: directions, subject kinds, outcomes and partner ids (slugs an
administrator chose). Never a message id, a subscription id, a person or free text:
subscriber deliveries count under the one destination label `subscriber`.

With several processes on one host (uvicorn workers, or API and worker side by side),
set PROMETHEUS_MULTIPROC_DIR to an empty directory before the processes start:
prometheus-client then keeps the values in files there, and every process's
/metrics answers the sum over all of them.
"""

import os
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

SUBSCRIBER = "subscriber"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_ANSWER_BUCKETS = tuple(h * 3600.0 for h in (1, 4, 8, 12, 24, 72, 168, 336))


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """One per process, built in the lifespan; `registry` is what /metrics exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_accepted = Counter(
            "commcentre_messages_accepted",
            "Messages durably stored, by direction and subject kind (a message counts once "
            "per kind it carries).",
            ["direction", "subject_kind"],
            registry=r,
        )
        self.delivery_attempts = Counter(
            "commcentre_delivery_attempts",
            "Delivery attempts by destination and outcome "
            "(delivered, retry, permanent, gone, expired).",
            ["destination", "outcome"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "commcentre_delivery_attempt_seconds",
            "Duration of a delivery attempt, by destination.",
            ["destination"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.breaker_open = Gauge(
            "commcentre_circuit_breaker_open",
            "1 while this process's circuit breaker for the destination is open.",
            ["destination"],
            multiprocess_mode="max",
            registry=r,
        )
        self.ingest_batch_size = Histogram(
            "commcentre_ingest_batch_size",
            "Messages per group commit of the ingest writer.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.ingest_commit_seconds = Histogram(
            "commcentre_ingest_commit_seconds",
            "Duration of one group commit (the transaction, from begin to durable commit).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inbound_refused = Counter(
            "commcentre_inbound_refused",
            "Partner webhooks refused, by reason (signature, replay, payload, partner, other).",
            ["reason"],
            registry=r,
        )
        self.request_answer_seconds = Histogram(
            "commcentre_request_time_to_answer_seconds",
            "Time from receipt to answer of supplementary-information requests.",
            buckets=_ANSWER_BUCKETS,
            registry=r,
        )

    def accepted(self, direction: str, kinds: Sequence[str]) -> None:
        for kind in kinds:
            self.messages_accepted.labels(direction, kind).inc()

    def collecting_registry(self) -> CollectorRegistry:
        """What to expose: this process's registry, or all processes' in multiprocess mode."""
        if multiprocess_dir() is None:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return merged
