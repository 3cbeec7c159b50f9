"""`commcentre worker`: a dispatcher process of its own (the scaled-out shape)."""

import asyncio
import signal

import structlog
from prometheus_client import start_http_server

from commcentre.adapters.netguard import system_resolver
from commcentre.bootstrap import (
    build_adapters,
    build_dispatcher,
    build_housekeeper,
    build_http_client,
    build_vault,
    open_database,
    open_keyring,
)
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.metrics import Metrics

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings) -> None:
    """Dispatch until SIGTERM or SIGINT, then finish in-flight work and release leases."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    keyring = open_keyring(settings)
    db = open_database(settings, keyring)
    http = build_http_client(settings)
    try:
        vault = build_vault(settings, keyring)
        adapters = build_adapters(settings, http, system_resolver)
        metrics = Metrics()
        if settings.worker_metrics_port is not None:
            start_http_server(
                settings.worker_metrics_port,
                addr=settings.host,
                registry=metrics.collecting_registry(),
            )
        dispatcher = build_dispatcher(settings, db, vault, adapters, clock=utcnow, metrics=metrics)
        housekeeper = build_housekeeper(
            settings, db, clock=utcnow, vault=vault, wake=dispatcher.wake
        )
        await dispatcher.start()
        await housekeeper.start()
        await stop.wait()
        log.info("worker_stopping")
        await housekeeper.stop()
        await dispatcher.stop()
    finally:
        await http.aclose()
        await db.dispose()
