"""The dispatcher: claims due deliveries, hands them to adapters, records what happened.

One per worker process (and one inside `commcentre serve` in the embedded
shape). It leases due deliveries (FOR UPDATE SKIP LOCKED on PostgreSQL), so
many workers share the outbox without ever holding the same delivery at once;
a worker that dies leaves leases that expire and are claimed again. Outcomes
are written back in batches, with a disclosure audit entry for every delivery
that reached its partner.

At-least-once: a delivery whose outcome was not recorded (crash, lost lease)
is attempted again; the delivery id is the `webhook-id`, so partners can drop
the duplicate.
"""

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.adapters.base import (
    Adapter,
    AdapterConfigError,
    DeliveryContext,
    DeliveryError,
    DeliveryReceipt,
    EventAdapter,
    OutboundEvent,
    OutboundMessage,
    PartnerGoneError,
    PartnerView,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from commcentre.adapters.netguard import IPNetwork
from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.clock import Clock
from commcentre.crypto import CryptoError
from commcentre.db import STORE_ERRORS, Database, WriteSession
from commcentre.delivery import ratelimit, repository
from commcentre.delivery.breaker import BreakerState, CircuitBreakers
from commcentre.delivery.models import DeliveryStatus
from commcentre.delivery.repository import NOTIFY_CHANNEL, ClaimedDelivery, DeliveryOutcome
from commcentre.delivery.retry import RetryPolicy
from commcentre.errors import CommCentreError
from commcentre.messages.models import Message
from commcentre.messages.service import MessageVault, unseal_content
from commcentre.metrics import Metrics
from commcentre.metrics.collectors import SUBSCRIBER
from commcentre.partners.adapter_config import AdapterCatalog
from commcentre.partners.models import Partner
from commcentre.partners.service import disable_partner, partner_view
from commcentre.subscriptions import repository as subscriptions_repository
from commcentre.subscriptions.models import Subscription
from commcentre.subscriptions.schemas import SubscriptionEvent
from commcentre.subscriptions.service import (
    RECIPIENT_PREFIX,
    destination_key,
    disable_subscription,
    subscription_view,
)

log = structlog.get_logger(__name__)

ERROR_MAX = 500
# Subscribers receive Standard Webhooks events from the generic webhook adapter.
SUBSCRIBER_ADAPTER = "webhook"


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    concurrency: int = 32
    claim_batch: int = 64
    lease: timedelta = timedelta(seconds=60)
    poll_interval: float = 1.0
    shutdown_grace: float = 20.0
    results_batch: int = 256
    # How long the recorder waits for more outcomes before it writes a batch. Outcomes
    # are recorded after the partner has the delivery, so this window adds nothing to
    # delivery latency; it turns several small transactions into one.
    results_wait: float = 0.02
    # Private networks subscriber callbacks may resolve to (Settings.subscriber_networks).
    subscriber_networks: tuple[IPNetwork, ...] = ()
    # Private networks partner URLs may resolve to (Settings.partner_networks).
    partner_networks: tuple[IPNetwork, ...] = ()
    # A partner's allow_loopback counts only in dev; prod has no per-partner escape hatch.
    loopback_partners: bool = True


@dataclass(frozen=True, slots=True)
class _Job:
    claim: ClaimedDelivery
    # What is sent: a message, or (to a subscriber) an event about a request.
    message: OutboundMessage | None
    legal_basis: str
    partner: PartnerView
    adapter_name: str
    rate_limit: float | None
    rate_burst: int
    # Subscriber deliveries: the event sent and the client owning the subscription.
    event_type: str | None = None
    owner: uuid.UUID | None = None
    # The X-Request-ID that stored the message: it follows the message into these logs.
    request_id: str | None = None
    event: OutboundEvent | None = None


@dataclass(frozen=True, slots=True)
class _Claimed:
    """Leased deliveries and the rows their attempts read, keyed by id."""

    claims: list[ClaimedDelivery] = field(default_factory=list)
    messages: dict[uuid.UUID, Message] = field(default_factory=dict)
    partners: dict[str, Partner] = field(default_factory=dict)
    subscriptions: dict[uuid.UUID, Subscription] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Recorded:
    outcome: DeliveryOutcome
    legal_basis: str | None = None
    gone_reason: str | None = None
    owner: uuid.UUID | None = None
    event_type: str | None = None


@dataclass(frozen=True, slots=True)
class _Deferred:
    delivery_id: uuid.UUID
    next_attempt_at: datetime


@dataclass(slots=True)
class DispatcherStats:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0
    lost_leases: int = 0
    batches: int = 0
    last_error: str | None = field(default=None)


class Dispatcher:
    """Moves deliveries from the outbox to partners."""

    def __init__(
        self,
        db: Database,
        *,
        vault: MessageVault,
        adapters: AdapterCatalog,
        clock: Clock,
        policy: RetryPolicy | None = None,
        breakers: CircuitBreakers | None = None,
        settings: DispatcherSettings | None = None,
        owner: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._vault = vault
        self._adapters = adapters
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._breakers = breakers or CircuitBreakers()
        self._settings = settings or DispatcherSettings()
        self.owner = owner or f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = DispatcherStats()
        self._views: dict[tuple[str, datetime], PartnerView] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._backlog = False  # the last claim was full: more deliveries are due
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._results: asyncio.Queue[_Recorded | _Deferred | None] = asyncio.Queue()
        self._recorder = asyncio.create_task(self._record_results(), name="dispatcher-results")
        self._runner = asyncio.create_task(self._run(), name="dispatcher")
        if not self._db.is_sqlite:
            self._listener = asyncio.create_task(self._listen(), name="dispatcher-listen")
        log.info("dispatcher_started", owner=self.owner)

    async def stop(self) -> None:
        """Finish what is in flight (up to the grace period), record it, release the rest."""
        if self._runner is None:
            return
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        await self._runner
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        self._results.put_nowait(None)
        if self._recorder is not None:
            await self._recorder
        self._runner = self._recorder = self._listener = None
        log.info("dispatcher_stopped", owner=self.owner, **_stats(self.stats))

    def wake(self) -> None:
        """New deliveries were committed; safe to call from any thread."""
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def drain(self, *, within: float) -> bool:
        """Wait until no delivery to an enabled partner is open (tests, demo); False on timeout."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self._tasks and self._results.empty() and not await self._has_open_work():
                return True
            self._wake.set()
            await asyncio.sleep(0.05)
        return False

    # -- claiming --------------------------------------------------------------

    async def _run(self) -> None:
        # With a backlog, claim again once a quarter of the slots is free: one claim
        # transaction for several deliveries, not one per freed slot. Without one, claim
        # as soon as woken (latency), and only then: a claim that took every due delivery
        # is not followed by one that finds nothing (it would be a write transaction of
        # its own, holding SQLite's write lock, for each commit that woke us).
        refill = max(1, self._settings.concurrency // 4)
        while not self._stopping:
            free = self._settings.concurrency - len(self._tasks)
            if free <= 0 or (self._backlog and free < refill and self._tasks):
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            self._wake.clear()
            try:
                jobs = await self._claim(min(free, self._settings.claim_batch))
            except STORE_ERRORS as exc:
                self.stats.last_error = type(exc).__name__
                log.warning("dispatcher_claim_failed", error_type=type(exc).__name__)
                await self._sleep(self._settings.poll_interval)
                continue
            for job in jobs:
                task = asyncio.create_task(self._attempt(job))
                self._tasks.add(task)
                task.add_done_callback(self._finished)
            if not self._backlog:
                # A wake-up that came during the claim is kept: _wake was cleared before it.
                await self._sleep(self._settings.poll_interval)
        await self._finish_in_flight()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # An adapter raised outside the error tree: the lease expires and the
            # delivery is tried again, so nothing is lost; the bug gets logged.
            exc = task.exception()
            log.error("adapter_crashed", error_type=type(exc).__name__)

    async def _finish_in_flight(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self._settings.shutdown_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _claim(self, limit: int) -> list[_Job]:
        now = self._clock()
        open_circuits = self._breakers.open_partners()
        skip_partners = [k for k in open_circuits if not k.startswith(RECIPIENT_PREFIX)]
        skip_subscriptions = _subscription_ids(open_circuits)

        async def claim_and_load(session: WriteSession) -> _Claimed:
            # The lease and what the attempts need, in one transaction (one trip to
            # SQLite's worker thread; see Database.run_write).
            claims = await repository.claim_due(
                session,
                owner=self.owner,
                now=now,
                lease=self._settings.lease,
                limit=limit,
                skip_partners=skip_partners,
                skip_subscriptions=skip_subscriptions,
                skip_locked=not self._db.is_sqlite,
            )
            if not claims:
                return _Claimed()
            message_ids = {c.message_id for c in claims if c.message_id is not None}
            partner_ids = {c.partner_id for c in claims if c.partner_id is not None}
            subscription_ids = {c.subscription_id for c in claims if c.subscription_id is not None}
            return _Claimed(
                claims,
                {m.id: m for m in await repository.sealed_messages(session, message_ids)},
                {p.id: p for p in await repository.partners(session, partner_ids)},
                {s.id: s for s in await subscriptions_repository.by_ids(session, subscription_ids)},
            )

        claimed = await self._db.run_write(claim_and_load)
        claims = claimed.claims
        self._backlog = len(claims) >= limit
        if not claims:
            return []
        self.stats.claimed += len(claims)
        messages, partners, subscribed = claimed.messages, claimed.partners, claimed.subscriptions
        jobs: list[_Job] = []
        for claim in claims:
            if claim.attempts >= self._policy.max_attempts:
                # Only lost attempts (workers that died holding it) bring it here.
                self._record_dead(claim, claim.attempts, "attempts exhausted: workers were lost")
                continue
            subscription = subscribed.get(claim.subscription_id) if claim.subscription_id else None
            message = messages.get(claim.message_id) if claim.message_id else None
            if claim.message_id is None:
                job = self._event_job(claim, subscription)
            elif claim.subscription_id is not None:
                job = self._subscriber_job(claim, message, subscription)
            else:
                job = self._job(claim, message, partners.get(claim.partner_id or ""))
            if job is not None:
                jobs.append(job)
        return jobs

    def _subscriber_job(
        self, claim: ClaimedDelivery, message: Message | None, subscription: Subscription | None
    ) -> _Job | None:
        attempt = claim.attempts + 1
        if message is None or subscription is None:
            self._record_dead(claim, attempt, "message or subscription no longer exists")
            return None
        if self._deleted(claim, attempt, subscription):
            return None
        try:
            view = self._subscription_view(subscription)
            content = unseal_content(message, vault=self._vault)
        except (CryptoError, CommCentreError, ValidationError) as exc:
            self._record_dead(claim, attempt, _reason(exc))
            return None
        return _Job(
            claim=claim,
            message=OutboundMessage(id=message.id, created_at=message.created_at, content=content),
            legal_basis=message.legal_basis,
            partner=view,
            adapter_name=SUBSCRIBER_ADAPTER,
            rate_limit=None,
            rate_burst=1,
            event_type=SubscriptionEvent.MESSAGE_INBOUND.value,
            owner=subscription.client_id,
            request_id=message.request_id,
        )

    def _deleted(self, claim: ClaimedDelivery, attempt: int, subscription: Subscription) -> bool:
        """A deleted subscription's delivery dies (recorded here) instead of being sent."""
        if subscription.deleted_at is None:
            return False
        deleted = subscription.deleted_at.isoformat()
        self._record_dead(claim, attempt, f"subscription was deleted at {deleted}")
        return True

    def _event_job(self, claim: ClaimedDelivery, subscription: Subscription | None) -> _Job | None:
        """A request event to a subscriber: the metadata stored with the delivery, as is."""
        attempt = claim.attempts + 1
        if claim.event is None or claim.event_data is None or subscription is None:
            self._record_dead(claim, attempt, "event or subscription no longer exists")
            return None
        if self._deleted(claim, attempt, subscription):
            return None
        try:
            view = self._subscription_view(subscription)
        except (CryptoError, CommCentreError, ValidationError) as exc:
            self._record_dead(claim, attempt, _reason(exc))
            return None
        return _Job(
            claim=claim,
            message=None,
            legal_basis=str(claim.event_data.get("legal_basis") or "unknown"),
            partner=view,
            adapter_name=SUBSCRIBER_ADAPTER,
            rate_limit=None,
            rate_burst=1,
            event_type=claim.event,
            owner=subscription.client_id,
            event=OutboundEvent(type=claim.event, data=claim.event_data),
        )

    def _subscription_view(self, subscription: Subscription) -> PartnerView:
        key = (destination_key(subscription.id), subscription.updated_at)
        view = self._views.get(key)
        if view is None:
            view = subscription_view(
                subscription,
                envelope=self._vault.envelope,
                networks=self._settings.subscriber_networks,
            )
            self._views = {k: v for k, v in self._views.items() if k[0] != key[0]}
            self._views[key] = view
        return view

    def _job(
        self, claim: ClaimedDelivery, message: Message | None, partner: Partner | None
    ) -> _Job | None:
        attempt = claim.attempts + 1
        if message is None or partner is None:
            self._record_dead(claim, attempt, "message or partner no longer exists")
            return None
        try:
            view = self._view(partner)
            content = unseal_content(message, vault=self._vault)
        except (CryptoError, AdapterConfigError, CommCentreError, ValidationError) as exc:
            # Retrying cannot help: an operator must fix the partner config or the key.
            self._record_dead(claim, attempt, _reason(exc))
            return None
        return _Job(
            claim=claim,
            message=OutboundMessage(id=message.id, created_at=message.created_at, content=content),
            legal_basis=message.legal_basis,
            partner=view,
            adapter_name=partner.adapter,
            rate_limit=partner.rate_limit_per_second,
            rate_burst=partner.rate_burst,
            request_id=message.request_id,
        )

    def _view(self, partner: Partner) -> PartnerView:
        key = (partner.id, partner.updated_at)
        view = self._views.get(key)
        if view is None:
            view = partner_view(
                partner,
                envelope=self._vault.envelope,
                registry=self._adapters,
                networks=self._settings.partner_networks,
                loopback_permitted=self._settings.loopback_partners,
            )
            self._views = {k: v for k, v in self._views.items() if k[0] != partner.id}
            self._views[key] = view
        return view

    # -- attempting ------------------------------------------------------------

    async def _attempt(self, job: _Job) -> None:
        claim, partner_id = job.claim, job.partner.id
        settled = False
        try:
            if not self._breakers.allow(partner_id):
                self._defer(claim, seconds=self._breakers.retry_in(partner_id))
                settled = True
                return
            if job.rate_limit:
                wait = await self._reserve_slot(partner_id, job.rate_limit, job.rate_burst)
                if wait > self._settings.lease.total_seconds() / 4:
                    self._defer(claim, seconds=wait)
                    settled = True
                    return
                if wait > 0:
                    await asyncio.sleep(wait)
            self._results.put_nowait(await self._deliver(job))
            settled = True
        finally:
            if not settled:
                # Cancelled at shutdown mid-attempt: give it back; the partner may or
                # may not have it, so the next attempt may be a duplicate (same webhook-id).
                self._defer(claim, seconds=0)

    async def _reserve_slot(self, partner_id: str, rate: float, burst: int) -> float:
        now = self._clock()

        async def reserve(session: WriteSession) -> float:
            return await ratelimit.reserve(
                session, partner_id, now=now, rate=rate, burst=burst, lock=not self._db.is_sqlite
            )

        return await self._db.run_write(reserve)

    async def _deliver(self, job: _Job) -> _Recorded:
        claim, partner_id = job.claim, job.partner.id
        attempt = claim.attempts + 1
        started = self._clock()
        began = time.monotonic()
        adapter = self._adapters.get(job.adapter_name)
        context = DeliveryContext(
            delivery_id=claim.id, attempt=attempt, timestamp=started, event_type=job.event_type
        )
        status_code: int | None = None
        gone: str | None = None
        try:
            receipt = await _send(adapter, job, context)
        except DeliveryError as exc:
            status_code = exc.status_code
            error = exc.detail[:ERROR_MAX]
            if isinstance(exc, RetryableDeliveryError):
                self._breakers.record_failure(partner_id)
                decision = self._policy.decide(exc, attempt=attempt, age=started - claim.queued_at)
                if decision is not None:
                    self.stats.retried += 1
                    outcome = self._outcome(
                        job,
                        DeliveryStatus.RETRYING,
                        "retry",
                        started,
                        began,
                        status_code,
                        error,
                        next_at=started + timedelta(seconds=decision.delay),
                    )
                    return _Recorded(outcome)
                kind = "expired"
            else:
                self._breakers.record_success(partner_id)  # it answered: it is up
                kind = "gone" if isinstance(exc, PartnerGoneError) else "permanent"
                if isinstance(exc, PartnerGoneError):
                    who = "subscriber" if job.claim.subscription_id is not None else "partner"
                    gone = f"{who} answered 410 Gone at {started.isoformat()}"
            self.stats.dead += 1
            outcome = self._outcome(
                job, DeliveryStatus.DEAD, kind, started, began, status_code, error
            )
            return _Recorded(outcome, gone_reason=gone)
        self._breakers.record_success(partner_id)
        self.stats.delivered += 1
        outcome = self._outcome(
            job, DeliveryStatus.DELIVERED, "delivered", started, began, receipt.status_code, None
        )
        return _Recorded(
            outcome, legal_basis=job.legal_basis, owner=job.owner, event_type=job.event_type
        )

    def _outcome(
        self,
        job: _Job,
        status: DeliveryStatus,
        kind: str,
        started: datetime,
        began: float,
        status_code: int | None,
        error: str | None,
        *,
        next_at: datetime | None = None,
    ) -> DeliveryOutcome:
        duration = time.monotonic() - began
        claim = job.claim
        log.info(
            "delivery_attempted",
            request_id=job.request_id,
            message_id=str(claim.message_id) if claim.message_id is not None else None,
            sir_id=str(claim.request_id) if claim.request_id is not None else None,
            event_type=claim.event,
            delivery_id=str(job.claim.id),
            destination=job.claim.partner_id or SUBSCRIBER,
            attempt=job.claim.attempts + 1,
            outcome=kind,
            status_code=status_code,
            duration_ms=round(duration * 1000, 1),
        )
        if self._metrics is not None:
            destination = job.claim.partner_id or SUBSCRIBER
            self._metrics.delivery_attempts.labels(destination, kind).inc()
            self._metrics.attempt_seconds.labels(destination).observe(duration)
            if job.claim.partner_id is not None:
                is_open = self._breakers.state(job.claim.partner_id) is BreakerState.OPEN
                self._metrics.breaker_open.labels(destination).set(1 if is_open else 0)
        return DeliveryOutcome(
            delivery_id=job.claim.id,
            message_id=job.claim.message_id,
            partner_id=job.claim.partner_id,
            subscription_id=job.claim.subscription_id,
            request_id=job.claim.request_id,
            status=status,
            attempt=job.claim.attempts + 1,
            started_at=started,
            duration_ms=int(duration * 1000),
            outcome=kind,
            next_attempt_at=next_at or started,
            status_code=status_code,
            error=error,
        )

    def _record_dead(self, claim: ClaimedDelivery, attempt: int, reason: str) -> None:
        now = self._clock()
        self.stats.dead += 1
        self._results.put_nowait(
            _Recorded(
                DeliveryOutcome(
                    delivery_id=claim.id,
                    message_id=claim.message_id,
                    partner_id=claim.partner_id,
                    subscription_id=claim.subscription_id,
                    request_id=claim.request_id,
                    status=DeliveryStatus.DEAD,
                    attempt=attempt,
                    started_at=now,
                    duration_ms=0,
                    outcome="permanent",
                    next_attempt_at=now,
                    error=reason[:ERROR_MAX],
                )
            )
        )

    def _defer(self, claim: ClaimedDelivery, *, seconds: float) -> None:
        self.stats.deferred += 1
        self._results.put_nowait(
            _Deferred(claim.id, self._clock() + timedelta(seconds=max(0.0, seconds)))
        )

    # -- recording -------------------------------------------------------------

    async def _record_results(self) -> None:
        closing = False
        while not closing:
            item = await self._results.get()
            batch: list[_Recorded | _Deferred] = []
            if item is None:
                closing = True
            else:
                batch.append(item)
            if not closing:
                closing = await self._gather_results(batch)
            if batch:
                await self._write_with_retry(batch)

    async def _gather_results(self, batch: list[_Recorded | _Deferred]) -> bool:
        """Add outcomes to `batch` for up to `results_wait`; True once stop was asked."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.results_wait
        while len(batch) < self._settings.results_batch:
            if self._results.empty():
                remaining = deadline - loop.time()
                if remaining <= 0 or self._stopping:
                    return False
                try:
                    more = await asyncio.wait_for(self._results.get(), remaining)
                except TimeoutError:
                    return False
            else:
                more = self._results.get_nowait()
            if more is None:
                return True
            batch.append(more)
        return False

    async def _write_with_retry(self, batch: list[_Recorded | _Deferred]) -> None:
        delay = 0.2
        for _ in range(8):
            try:
                await self._write(batch)
                return
            except STORE_ERRORS as exc:
                self.stats.last_error = type(exc).__name__
                log.warning("dispatcher_record_failed", error_type=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        # Still failing: the leases expire and these deliveries are attempted again.
        log.error("dispatcher_outcomes_dropped", count=len(batch))

    async def _write(self, batch: list[_Recorded | _Deferred]) -> None:
        now = self._clock()
        recorded = [b for b in batch if isinstance(b, _Recorded)]
        deferred = [b for b in batch if isinstance(b, _Deferred)]

        async def record(session: WriteSession) -> int:
            """Outcomes, releases, statuses and disclosures; how many leases were still ours."""
            held = await repository.record_outcomes(
                session, self.owner, [r.outcome for r in recorded], now=now
            )
            mine = [r for r in recorded if r.outcome.delivery_id in held]
            for when in sorted({d.next_attempt_at for d in deferred}):
                ids = [d.delivery_id for d in deferred if d.next_attempt_at == when]
                await repository.release(session, self.owner, ids, next_attempt_at=when, now=now)
            disclosures = [
                _disclosure(r) for r in mine if r.outcome.status is DeliveryStatus.DELIVERED
            ]
            for r in mine:
                if r.gone_reason is None:
                    continue
                assert isinstance(session, AsyncSession)  # a batch with a 410 takes one (below)
                if r.outcome.subscription_id is not None:
                    await disable_subscription(
                        session, r.outcome.subscription_id, reason=r.gone_reason, now=now
                    )
                elif r.outcome.partner_id is not None:
                    await disable_partner(
                        session, r.outcome.partner_id, reason=r.gone_reason, now=now
                    )
            await repository.refresh_message_status(
                session,
                {
                    r.outcome.message_id
                    for r in mine
                    if r.outcome.status is not DeliveryStatus.RETRYING
                },
            )
            await append(session, disclosures, now=now)
            return len(mine)

        if any(r.gone_reason is not None for r in recorded):
            # Disabling a partner or subscription goes through the ORM's AsyncSession.
            async with self._db.write_sessions() as session, session.begin():
                ours = await record(session)
        else:
            ours = await self._db.run_write(record)
        self.stats.lost_leases += len(recorded) - ours
        self.stats.batches += 1

    # -- waking ----------------------------------------------------------------

    async def _has_open_work(self) -> bool:
        async with self._db.read_sessions() as session:
            return await repository.has_open_work(session)

    async def _listen(self) -> None:
        """PostgreSQL: wake on NOTIFY from any process's ingest; the poll stays as a fallback."""
        while not self._stopping:
            try:
                async with self._db.write_engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver = raw.driver_connection
                    callback: Callable[..., None] = lambda *_: self._wake.set()  # noqa: E731
                    await driver.add_listener(NOTIFY_CHANNEL, callback)  # type: ignore[union-attr]
                    try:
                        await self._stop_requested.wait()
                    finally:
                        await driver.remove_listener(NOTIFY_CHANNEL, callback)  # type: ignore[union-attr]
            except STORE_ERRORS as exc:
                log.warning("dispatcher_listen_failed", error_type=type(exc).__name__)
                await asyncio.sleep(5)


async def _send(adapter: Adapter, job: _Job, context: DeliveryContext) -> DeliveryReceipt:
    """Hand the job to its adapter: a message, or an event to an adapter that sends events."""
    if job.event is not None:
        if job.adapter_name != SUBSCRIBER_ADAPTER or not isinstance(adapter, EventAdapter):
            raise PermanentDeliveryError(
                f"adapter {job.adapter_name} cannot deliver {job.event.type} events"
            )
        return await adapter.deliver_event(job.event, job.partner, context)
    assert job.message is not None  # a job carries a message or an event
    return await adapter.deliver(job.message, job.partner, context)


def _disclosure(recorded: _Recorded) -> AuditRecord:
    """The disclosure entry of a delivery that reached its partner or subscriber."""
    outcome = recorded.outcome
    details: dict[str, object] = {
        "delivery_id": str(outcome.delivery_id),
        "attempt": outcome.attempt,
    }
    if outcome.request_id is not None:
        # A request event: metadata of the request, disclosed to an internal subscriber.
        details["event"] = recorded.event_type
        details["client_id"] = str(recorded.owner) if recorded.owner is not None else None
        subscription = outcome.subscription_id
        return AuditRecord(
            action=AuditAction.DISCLOSURE,
            event="request.disclosed",
            actor="system:dispatcher",
            subject_type="request",
            subject_id=str(outcome.request_id),
            recipient=destination_key(subscription) if subscription is not None else None,
            justification=f"{recorded.event_type} event to an internal subscriber",
            details=details,
            occurred_at=outcome.started_at,
        )
    if outcome.subscription_id is not None:
        recipient = destination_key(outcome.subscription_id)
        justification = f"delivery to an internal subscriber, legal basis {recorded.legal_basis}"
        details["client_id"] = str(recorded.owner) if recorded.owner is not None else None
    else:
        recipient = f"partner:{outcome.partner_id}"
        justification = f"transfer under legal basis {recorded.legal_basis}"
    return AuditRecord(
        action=AuditAction.DISCLOSURE,
        event="message.disclosed",
        actor="system:dispatcher",
        subject_type="message",
        subject_id=str(outcome.message_id),
        recipient=recipient,
        justification=justification,
        details=details,
        occurred_at=outcome.started_at,
    )


def _subscription_ids(circuits: Iterable[str]) -> list[uuid.UUID]:
    """The subscriptions among open circuits (keyed `subscription:<id>`)."""
    out = []
    for key in circuits:
        if key.startswith(RECIPIENT_PREFIX):
            with contextlib.suppress(ValueError):
                out.append(uuid.UUID(key.removeprefix(RECIPIENT_PREFIX)))
    return out


def _reason(exc: Exception) -> str:
    if isinstance(exc, CryptoError):
        return "the stored payload or partner config cannot be decrypted"
    if isinstance(exc, CommCentreError):
        return exc.detail or exc.title
    return f"partner configuration is invalid: {exc}"[:ERROR_MAX]


def _stats(stats: DispatcherStats) -> dict[str, int]:
    return {
        "claimed": stats.claimed,
        "delivered": stats.delivered,
        "retried": stats.retried,
        "dead": stats.dead,
        "deferred": stats.deferred,
    }
