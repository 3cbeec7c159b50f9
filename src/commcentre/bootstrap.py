"""Building the long-lived parts of a process, shared by the API and the worker."""

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import structlog

from commcentre.adapters.base import AdapterContext, Resolver
from commcentre.adapters.registry import AdapterRegistry, load_adapters
from commcentre.adapters.transport import delivery_client
from commcentre.audit.export import CheckpointExporter
from commcentre.audit.service import audit_session_info
from commcentre.clock import Clock
from commcentre.config import Settings
from commcentre.crypto import AuditKeyProvider, BlindIndex, Envelope, FileKeyring, KeyProvider
from commcentre.db import Database
from commcentre.delivery.breaker import CircuitBreakers
from commcentre.delivery.dispatcher import Dispatcher, DispatcherSettings
from commcentre.delivery.retry import RetryPolicy
from commcentre.housekeeping import Housekeeper, PeriodicJob
from commcentre.messages.service import MessageVault
from commcentre.metrics import Metrics
from commcentre.requests.automation import escalate_overdue
from commcentre.retention.service import purge_expired

log = structlog.get_logger(__name__)


def open_keyring(settings: Settings) -> FileKeyring:
    """The keyring file; generated in dev when missing, refused in prod unless real.

    A keyring written before the audit chain was keyed has no audit keys: prod
    refuses it (`commcentre keys audit-rotate` adds them), dev adds them itself.
    """
    path = settings.keyring_path
    if not path.exists():
        if settings.environment == "prod":
            raise RuntimeError(
                f"no keyring at {path}: create one with `commcentre keys generate` "
                "(prod never generates keys on its own)"
            )
        log.warning("dev_keyring_generated", path=str(path))
        return FileKeyring.generate(path, dev=True)
    keyring = FileKeyring.load(path)
    if settings.environment == "prod" and keyring.is_dev:
        raise RuntimeError(
            f"the keyring at {path} is a development keyring; prod needs one made by "
            "`commcentre keys generate`"
        )
    if not keyring.has_audit_keys:
        if settings.environment == "prod":
            raise RuntimeError(
                f"the keyring at {path} has no audit keys; add them with "
                "`commcentre keys audit-rotate`"
            )
        log.warning("dev_audit_keys_added", path=str(path))
        keyring.audit_rotate()
    return keyring


def open_database(settings: Settings, keys: AuditKeyProvider) -> Database:
    """The process's Database, whose sessions carry the audit keys (to append, verify)."""
    return Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        session_info=audit_session_info(keys),
    )


def open_cli_database(settings: Settings) -> Database:
    """A command's Database: small pool, and the keyring's audit keys (commands append)."""
    return Database(
        settings.database_url, pool_size=1, session_info=audit_session_info(open_keyring(settings))
    )


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one HTTP client of a process, shared by every adapter.

    It runs on aiohttp's pool (`adapters/transport.py`) and connects only to the
    addresses the SSRF guard pinned: no name resolution of its own, no environment
    proxies (they would connect on our behalf), no redirects, no cookies, bounded
    timeouts and pool.
    """
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    return delivery_client(limits=limits, timeout=httpx.Timeout(settings.delivery_timeout_seconds))


def policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base=settings.delivery_retry_base_seconds,
        max_attempts=settings.delivery_max_attempts,
        max_age=timedelta(hours=settings.delivery_max_age_hours),
    )


def build_vault(settings: Settings, keys: KeyProvider) -> MessageVault:
    return MessageVault(
        envelope=Envelope(keys),
        blind_index=BlindIndex(keys.blind_index_key()),
        retention=timedelta(days=settings.default_retention_days),
        retention_by_basis={
            basis: timedelta(days=days) for basis, days in settings.retention_days.items()
        },
    )


def build_adapters(
    settings: Settings, http: httpx.AsyncClient, resolver: Resolver
) -> AdapterRegistry:
    return load_adapters(
        AdapterContext(http=http, resolver=resolver, timeout=settings.delivery_timeout_seconds)
    )


def build_dispatcher(
    settings: Settings,
    db: Database,
    vault: MessageVault,
    adapters: AdapterRegistry,
    *,
    clock: Clock,
    policy: RetryPolicy | None = None,
    metrics: Metrics | None = None,
) -> Dispatcher:
    return Dispatcher(
        db,
        vault=vault,
        adapters=adapters,
        clock=clock,
        metrics=metrics,
        policy=policy or policy_from(settings),
        breakers=CircuitBreakers(cooldown=settings.delivery_breaker_cooldown_seconds),
        settings=dispatcher_settings(settings),
    )


def dispatcher_settings(settings: Settings) -> DispatcherSettings:
    """What a dispatcher takes from Settings; `allow_loopback` counts in dev only."""
    return DispatcherSettings(
        concurrency=settings.dispatcher_concurrency,
        lease=timedelta(seconds=settings.dispatcher_lease_seconds),
        subscriber_networks=tuple(settings.subscriber_networks),
        partner_networks=tuple(settings.partner_networks),
        loopback_partners=settings.environment == "dev",
    )


RETENTION_BATCH = 200
RETENTION_BUDGET_SECONDS = 10.0


def build_housekeeper(
    settings: Settings,
    db: Database,
    *,
    clock: Clock,
    vault: MessageVault | None = None,
    wake: Callable[[], None] | None = None,
) -> Housekeeper:
    """The periodic jobs of a dispatcher process.

    `vault` lets escalation match subscriptions that name a case_ref against a
    request's reference; `wake` (the dispatcher's) is called when escalation queued
    `request.overdue` events, so they go out before the next poll.
    """

    async def retention(now: datetime) -> int:
        # Batch after batch while batches come back full, within a time budget, so that
        # erasure keeps up with any ingest rate without holding the store for long.
        erased, deadline = 0, time.monotonic() + RETENTION_BUDGET_SECONDS
        while True:
            batch = (await purge_expired(db, now=now, limit=RETENTION_BATCH)).erased
            erased += batch
            if batch < RETENTION_BATCH or time.monotonic() > deadline:
                return erased

    async def escalation(now: datetime) -> int:
        escalated = await escalate_overdue(db, now=now, vault=vault)
        if escalated and wake is not None:
            wake()
        return len(escalated)

    jobs = [
        PeriodicJob("retention", settings.retention_interval_seconds, retention),
        PeriodicJob("escalation", settings.escalation_interval_seconds, escalation),
    ]
    if settings.audit_checkpoint_path is not None:
        exporter = CheckpointExporter(
            db, settings.audit_checkpoint_path, origin=settings.audit_origin
        )
        jobs.append(
            PeriodicJob(
                "audit-checkpoint", settings.audit_checkpoint_interval_seconds, exporter.export
            )
        )
    return Housekeeper(jobs, clock=clock)
