"""PostgreSQL crashing during delivery loses nothing (RELIABILITY.md: "database crash").

The test makes a PostgreSQL cluster of its own (pgcluster.py: initdb in a
temporary directory, a free port on 127.0.0.1; never the machine's main
cluster), so it runs whether or not COMMCENTRE_TEST_DATABASE_URL is set, and
skips, saying why, when the server binaries are missing.

N messages go in through `serve --no-worker`; a `commcentre worker` delivers
them (as they come) to a receiver that takes 10-30 ms each. While it does, the cluster is
stopped with `pg_ctl stop -m immediate` (every server process quits at once:
no checkpoint, uncommitted transactions gone, WAL replayed at the next start),
kept down a second, and started again: once (3 times with FAULT_SCALE=long).
The same API process then takes a second batch, and the same worker drains.

Jepsen's total-queue check: lost 0, unexpected 0, duplicates reported
(a delivery whose outcome was being recorded when the server died is sent
again). The store ends with every delivery delivered and the audit chain intact.
"""

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from commcentre.migrate import upgrade
from commcentre.partners.schemas import generate_signing_secret
from tests.faults import pgcluster
from tests.faults.checker import Phases, Store, total_queue, wait_settled
from tests.faults.processes import (
    Children,
    commcentre_env,
    create_webhook_partner,
    ingest,
    start_api,
)
from tests.faults.receiver import Receiver
from tests.faults.scale import NAME, scaled

pytestmark = pytest.mark.slow

MESSAGES = scaled(300, 1000)
AFTER_RESTART = scaled(100, 300)  # sent through the same API once the database is back
CRASHES = scaled(1, 3)
DOWN_SECONDS = 1.0
RECEIVER_DELAY = (0.01, 0.03)
WORKER_CONCURRENCY = 8
LEASE_SECONDS = 2.0
DELIVERY_TIMEOUT_SECONDS = 1.0
DRAIN_SECONDS = scaled(40.0, 120.0)
PARTNER = "fault-receiver"
DATABASE = "commcentre"


@pytest.fixture
def private_pg() -> Iterator[pgcluster.PrivateCluster]:
    why = pgcluster.unavailable()
    if why is not None:
        pytest.skip(why)
    cluster = pgcluster.PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def create_database(cluster: pgcluster.PrivateCluster) -> str:
    async def run() -> None:
        engine = create_async_engine(cluster.server_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        finally:
            await engine.dispose()

    asyncio.run(run())
    url = cluster.url(DATABASE)
    upgrade(url)
    return url


@dataclass(frozen=True)
class Crash:
    received: int  # requests the receiver had got when the server was stopped
    stop: float  # seconds pg_ctl stop -m immediate took
    start: float  # seconds pg_ctl start took (crash recovery included)


def test_postgres_crash_during_delivery_loses_nothing(
    private_pg: pgcluster.PrivateCluster,
    keyring: Path,
    children: Children,
    rng: random.Random,
) -> None:
    url = create_database(private_pg)
    secret = generate_signing_secret()
    env = commcentre_env(
        database_url=url,
        keyring_path=keyring,
        dispatcher_concurrency=WORKER_CONCURRENCY,
        dispatcher_lease_seconds=LEASE_SECONDS,
        delivery_timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
    )
    store = Store(url, keyring)
    crashes: list[Crash] = []
    phases = Phases()
    with Receiver(secret=secret, delay=RECEIVER_DELAY, seed=rng.randrange(2**32)) as receiver:
        worker = children.start("worker", ["worker"], env)
        api = start_api(children, env)
        create_webhook_partner(
            api.base_url, api.admin_key, partner_id=PARTNER, url=receiver.url, secret=secret
        )
        worker.wait_for_log("dispatcher_started")
        phases.done("start")
        acknowledged = ingest(
            api.base_url, api.admin_key, partner_id=PARTNER, count=MESSAGES, concurrency=8
        )
        assert len(acknowledged) == MESSAGES
        phases.done("messages in")

        for k in range(CRASHES):
            # Crash k when about (k+1)/(CRASHES+2) of the messages were received.
            mark = MESSAGES * (k + 1) // (CRASHES + 2)
            deadline = time.monotonic() + DRAIN_SECONDS
            while len(receiver.received()) < mark and time.monotonic() < deadline:
                time.sleep(0.01)
            received = len(receiver.received())
            assert received < MESSAGES, "delivery ended before the crash"
            stop = private_pg.crash()
            time.sleep(DOWN_SECONDS)
            start = private_pg.start()
            crashes.append(Crash(received, stop, start))
        phases.done("delivery with crashes")

        acknowledged |= ingest(
            api.base_url, api.admin_key, partner_id=PARTNER, count=AFTER_RESTART, concurrency=8
        )
        phases.done("more messages in")
        settled, drain_seconds = wait_settled(
            store, receiver.ids, acknowledged, timeout=DRAIN_SECONDS
        )
        phases.done("drain")
        assert worker.terminate(grace=10), worker.tail()
        assert api.child.terminate(), api.child.tail()
        check = total_queue(acknowledged, receiver.received())
    state = store.state()
    recoveries = private_pg.recovered_from_crash()
    warnings = {
        name: sum(child.log_text().count(name) for child in children.started)
        for name in ("dispatcher_claim_failed", "dispatcher_record_failed")
    }
    phases.done("stop and check")

    total = MESSAGES + AFTER_RESTART
    print(
        f"\npostgresql crash x{CRASHES} ({NAME}) during delivery: private cluster on port "
        f"{private_pg.port}, {MESSAGES} messages, then {AFTER_RESTART} after the restart"
    )
    for n, crash in enumerate(crashes, start=1):
        print(
            f"  crash {n}: pg_ctl stop -m immediate after {crash.received} requests received "
            f"(took {crash.stop:.2f} s), down {DOWN_SECONDS:g} s, start with recovery "
            f"{crash.start:.2f} s"
        )
    print(f"  server log: crash recovery {recoveries} times")
    print(f"  worker and API warnings while it was down: {warnings}")
    print(f"  drained {drain_seconds:.1f} s after the last 202 (settled: {settled})")
    print(f"  phases: {phases.summary()}")
    print(f"  total queue: {check.summary()}")
    print(
        f"  store: deliveries {dict(state.deliveries)}, messages {dict(state.messages)}, "
        f"attempts recorded {state.attempts}, audit chain ok: {state.chain_ok}"
    )

    assert len(crashes) == CRASHES
    assert recoveries >= CRASHES, private_pg.log_tail()
    assert not check.lost, f"lost {len(check.lost)}: {sorted(check.lost)[:10]}"
    assert not check.unexpected, check.unexpected[:10]
    assert settled
    assert dict(state.deliveries) == {"delivered": total}
    assert dict(state.messages) == {"delivered": total}
    assert state.disclosures.keys() == acknowledged.keys()
    assert state.chain_ok
