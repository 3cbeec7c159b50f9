"""A worker SIGKILLed again and again loses nothing (RELIABILITY.md: "worker killed").

N messages go in through the API (`serve --no-worker`); then a `commcentre
worker` is started and SIGKILLed 300-700 ms into its dispatching, K times, and
a last one drains. Each kill strands the deliveries it held: they stay leased
until the lease expires, and the next worker claims them again. The leases are
shortened (COMMCENTRE_DISPATCHER_LEASE_SECONDS) so that the drain does not
wait a minute.

Jepsen's total-queue check on what the receiver got: lost 0, unexpected 0;
duplicates (a delivery the receiver had when its worker died, sent again under
the same webhook-id) are reported, not refused. The store must end settled:
every delivery delivered, one disclosure audit entry each, the chain intact.
"""

import random
import time
from dataclasses import dataclass
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

pytestmark = pytest.mark.slow

MESSAGES = 300
KILLS = 5
KILL_AFTER = (0.3, 0.7)  # seconds of dispatching before each SIGKILL
LEASE_SECONDS = 2.0
# The settings refuse a lease shorter than twice the delivery timeout.
DELIVERY_TIMEOUT_SECONDS = 1.0
# Few deliveries at once and a receiver that takes 10-50 ms: a worker cannot drain
# the outbox between two kills, so every kill finds deliveries in flight. The last
# worker, never killed, drains with more at once.
KILLED_CONCURRENCY = 4
LAST_CONCURRENCY = 16
RECEIVER_DELAY = (0.01, 0.05)
DRAIN_SECONDS = 25.0
PARTNER = "fault-receiver"


def concurrency(deliveries: int) -> dict[str, str]:
    return {"COMMCENTRE_DISPATCHER_CONCURRENCY": str(deliveries)}


@dataclass(frozen=True)
class Kill:
    dispatching: float  # seconds between dispatcher_started and the SIGKILL
    received: int  # requests the receiver had got by then (all workers so far)
    orphaned: int  # deliveries still leased to the dead worker: claimed, sent or unrecorded


def test_sigkilled_worker_loses_no_delivery(
    fault_database: str, keyring: Path, children: Children, rng: random.Random
) -> None:
    secret = generate_signing_secret()
    env = commcentre_env(
        database_url=fault_database,
        keyring_path=keyring,
        dispatcher_lease_seconds=LEASE_SECONDS,
        delivery_timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
    )
    store = Store(fault_database, keyring)
    kills: list[Kill] = []
    phases = Phases()
    with Receiver(secret=secret, delay=RECEIVER_DELAY, seed=rng.randrange(2**32)) as receiver:
        api = start_api(children, env)
        phases.done("api start")
        create_webhook_partner(
            api.base_url, api.admin_key, partner_id=PARTNER, url=receiver.url, secret=secret
        )
        acknowledged = ingest(
            api.base_url, api.admin_key, partner_id=PARTNER, count=MESSAGES, concurrency=8
        )
        assert len(acknowledged) == MESSAGES
        assert api.child.terminate(), api.child.tail()
        phases.done("messages in")

        for k in range(KILLS):
            worker = children.start(
                f"worker-{k + 1}", ["worker"], env | concurrency(KILLED_CONCURRENCY)
            )
            worker.wait_for_log("dispatcher_started")
            phases.done("worker starts")
            started = time.monotonic()
            time.sleep(rng.uniform(*KILL_AFTER))
            worker.kill()
            owner = worker.lease_owner()
            assert owner is not None, worker.tail()
            kills.append(
                Kill(time.monotonic() - started, len(receiver.received()), store.leased_by(owner))
            )
            phases.done("dispatching until killed")

        last = children.start("worker-last", ["worker"], env | concurrency(LAST_CONCURRENCY))
        last.wait_for_log("dispatcher_started")
        phases.done("worker starts")
        settled, drain_seconds = wait_settled(
            store, receiver.ids, acknowledged, timeout=DRAIN_SECONDS
        )
        phases.done("last drain")
        assert last.terminate(grace=10), last.tail()
        check = total_queue(acknowledged, receiver.received())
        overlaps = receiver.overlaps()
    state = store.state()
    phases.done("stop and check")

    backend = "sqlite" if fault_database.startswith("sqlite") else "postgresql"
    print(f"\nworker SIGKILL x{KILLS} on {backend}: {MESSAGES} messages, lease {LEASE_SECONDS} s")
    for n, kill in enumerate(kills, start=1):
        print(
            f"  kill {n}: {kill.dispatching:.2f} s into dispatching, {kill.received} requests "
            f"received so far, {kill.orphaned} deliveries left leased to the dead worker"
        )
    print(f"  last worker drained in {drain_seconds:.1f} s (settled: {settled})")
    print(f"  phases: {phases.summary()}")
    print(f"  total queue: {check.summary()}")
    print(
        f"  store: deliveries {dict(state.deliveries)}, messages {dict(state.messages)}, "
        f"attempts recorded {state.attempts}, audit chain ok: {state.chain_ok}"
    )

    assert not check.lost, f"lost {len(check.lost)}: {sorted(check.lost)[:10]}"
    assert not check.unexpected, check.unexpected[:10]
    assert not overlaps, f"sent again while still in flight: {overlaps[:10]}"
    assert settled
    assert sum(kill.orphaned for kill in kills) > 0, "no kill found a delivery in flight"
    assert dict(state.deliveries) == {"delivered": MESSAGES}
    assert dict(state.messages) == {"delivered": MESSAGES}
    # Sent twice, but disclosed (audited) once: the outcome of the dead worker's send was
    # never recorded, so the audit counts one disclosure per delivery.
    assert state.disclosures == dict.fromkeys(acknowledged, 1)
    assert state.chain_ok
