"""Workers racing on one PostgreSQL outbox never hold a delivery at once (RELIABILITY.md).

Three `commcentre worker` processes share a fresh PostgreSQL database. Half
the messages are queued before they start (all three claim from one backlog
with FOR UPDATE SKIP LOCKED), half while they run (each commit NOTIFYs all
three at once). The receiver takes 5-20 ms per request and tracks what is in
flight per webhook-id: a request arriving while another with its id is still
unanswered means two workers held one delivery.

Nothing crashes and no lease can expire (the default lease is a minute), so
each delivery must arrive exactly once, be recorded with exactly one attempt,
and every worker must have delivered some (their own count at a graceful stop).
"""

import random
from pathlib import Path

import pytest

from commcentre.partners.schemas import generate_signing_secret
from tests.faults.checker import Phases, Store, total_queue, wait_settled
from tests.faults.processes import (
    Children,
    commcentre_env,
    create_webhook_partner,
    ingest,
    start_api,
)
from tests.faults.receiver import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKERS = 3
MESSAGES = 600
BACKLOG = 300  # queued before the workers start; the rest while they run
# Few at once per worker, so that no one worker can take the whole backlog alone.
WORKER_CONCURRENCY = 8
RECEIVER_DELAY = (0.005, 0.02)
DRAIN_SECONDS = 30.0
STOP_GRACE_SECONDS = 20.0
PARTNER = "fault-receiver"


def test_workers_never_hold_one_delivery_at_once(
    fault_database: str, keyring: Path, children: Children, rng: random.Random
) -> None:
    secret = generate_signing_secret()
    env = commcentre_env(
        database_url=fault_database,
        keyring_path=keyring,
        dispatcher_concurrency=WORKER_CONCURRENCY,
    )
    store = Store(fault_database, keyring)
    phases = Phases()
    with Receiver(secret=secret, delay=RECEIVER_DELAY, seed=rng.randrange(2**32)) as receiver:
        api = start_api(children, env)
        phases.done("api start")
        create_webhook_partner(
            api.base_url, api.admin_key, partner_id=PARTNER, url=receiver.url, secret=secret
        )
        acknowledged = ingest(
            api.base_url, api.admin_key, partner_id=PARTNER, count=BACKLOG, concurrency=8
        )
        phases.done("backlog in")
        workers = [children.start(f"worker-{n + 1}", ["worker"], env) for n in range(WORKERS)]
        for worker in workers:
            worker.wait_for_log("dispatcher_started")
        phases.done("workers start")
        acknowledged |= ingest(
            api.base_url,
            api.admin_key,
            partner_id=PARTNER,
            count=MESSAGES - BACKLOG,
            concurrency=8,
        )
        assert len(acknowledged) == MESSAGES
        phases.done("rest in")
        settled, drain_seconds = wait_settled(
            store, receiver.ids, acknowledged, timeout=DRAIN_SECONDS
        )
        phases.done("settle")
        stopped = {w.name: w.terminate(grace=STOP_GRACE_SECONDS) for w in workers}
        assert api.child.terminate(), api.child.tail()
        phases.done("stop")
        check = total_queue(acknowledged, receiver.received())
        overlaps = receiver.overlaps()
    delivered = {w.name: w.delivered() for w in workers}
    state = store.state()
    phases.done("check")

    print(f"\n{WORKERS} workers on postgresql: {MESSAGES} messages ({BACKLOG} queued before)")
    print(f"  settled {drain_seconds:.1f} s after the last 202 (settled: {settled})")
    print(f"  phases: {phases.summary()}")
    print(f"  delivered per worker: {delivered}")
    print(f"  total queue: {check.summary()}")
    print(f"  same webhook-id in flight twice: {len(overlaps)}")
    print(
        f"  store: deliveries {dict(state.deliveries)}, attempts recorded {state.attempts}, "
        f"audit chain ok: {state.chain_ok}"
    )

    assert not check.lost, f"lost {len(check.lost)}: {sorted(check.lost)[:10]}"
    assert not check.unexpected, check.unexpected[:10]
    assert not overlaps, f"held by two workers at once: {overlaps[:10]}"
    assert not check.duplicated, f"delivered more than once: {dict(check.duplicated)}"
    assert settled
    assert all(stopped.values()), {w.name: w.tail() for w in workers}
    assert all(n for n in delivered.values()), f"a worker delivered nothing: {delivered}"
    assert sum(n or 0 for n in delivered.values()) == MESSAGES
    assert dict(state.deliveries) == {"delivered": MESSAGES}
    assert state.attempts == MESSAGES
    assert state.disclosures == dict.fromkeys(acknowledged, 1)
    assert state.chain_ok
