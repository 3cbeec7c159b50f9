"""An API SIGKILLed under ingest load loses no acknowledged message (RELIABILITY.md).

Eight clients POST /v1/messages without pause to a `serve --no-worker`
process on one port; it is SIGKILLed 0.5-1.5 s after it came up, restarted on
the same port, again and again (3 times; 10 with FAULT_SCALE=long). A
`commcentre worker`, never killed, delivers to the receiver meanwhile.

Every request is sorted by what its client could know (load.py): 202
(acknowledged), refused (the API was down: never sent), or unknown outcome
(sent, and the connection died without an answer). After the last restart the
unknown ones are sent again with their Idempotency-Key, as a client would:
those the dead API had committed are answered from the stored response
(Idempotent-Replayed), the others are stored now.

Then: acked-lost (a 202 never delivered) must be 0, nothing unexpected may
arrive, no message may be stored twice (case_ref is unique per request), and
every stored message must belong to a 202.
"""

import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from commcentre.partners.schemas import generate_signing_secret
from tests.faults.checker import Phases, Store, total_queue, wait_settled
from tests.faults.load import IngestLoad
from tests.faults.processes import (
    Children,
    commcentre_env,
    create_webhook_partner,
    free_port,
    start_api,
)
from tests.faults.receiver import Receiver
from tests.faults.scale import NAME, scaled

pytestmark = pytest.mark.slow

KILLS = scaled(3, 10)
KILL_AFTER = (0.5, 1.5)  # seconds of load on a healthy API before each SIGKILL
LOAD_AFTER_LAST = 1.0  # seconds of load on the last API before the load stops
CLIENTS = 8
WORKER_CONCURRENCY = 32
DRAIN_SECONDS = scaled(30.0, 90.0)
PARTNER = "fault-receiver"


@dataclass(frozen=True)
class Kill:
    load: float  # seconds the API had been up under load
    accepted: int  # 202s so far (all APIs)
    unknown: int  # requests cut off so far


def test_sigkilled_api_loses_no_acknowledged_message(
    fault_database: str, keyring: Path, children: Children, rng: random.Random
) -> None:
    secret = generate_signing_secret()
    env = commcentre_env(
        database_url=fault_database,
        keyring_path=keyring,
        dispatcher_concurrency=WORKER_CONCURRENCY,
    )
    store = Store(fault_database, keyring)
    port = free_port()
    kills: list[Kill] = []
    restarts: list[float] = []
    phases = Phases()
    with Receiver(secret=secret, seed=rng.randrange(2**32)) as receiver:
        worker = children.start("worker", ["worker"], env)
        api = start_api(children, env, name="api-1", port=port)
        create_webhook_partner(
            api.base_url, api.admin_key, partner_id=PARTNER, url=receiver.url, secret=secret
        )
        worker.wait_for_log("dispatcher_started")
        phases.done("start")

        load = IngestLoad(api.base_url, api.admin_key, PARTNER, concurrency=CLIENTS)
        load.start()
        for k in range(KILLS):
            up = time.monotonic()
            time.sleep(rng.uniform(*KILL_AFTER))
            api.child.kill()
            counts = load.counts()
            kills.append(Kill(time.monotonic() - up, counts["accepted"], counts["unknown"]))
            began = time.monotonic()
            api = start_api(children, env, name=f"api-{k + 2}", admin_key=api.admin_key, port=port)
            restarts.append(time.monotonic() - began)
        time.sleep(LOAD_AFTER_LAST)
        load.stop()
        phases.done("load with kills")
        before_retry = load.counts()
        retried = load.retry_unknown()
        phases.done("retry unknown")

        acknowledged = load.acknowledged()
        settled, drain_seconds = wait_settled(
            store, receiver.ids, acknowledged, timeout=DRAIN_SECONDS
        )
        phases.done("drain")
        assert worker.terminate(grace=10), worker.tail()
        assert api.child.terminate(), api.child.tail()
        check = total_queue(acknowledged, receiver.received())
        received = receiver.received()
    state = store.state()
    phases.done("stop and check")

    outcomes = load.outcomes
    replayed = sum(1 for o in retried.values() if o.replayed)
    retry_kinds = Counter(o.kind for o in retried.values())
    messages = set(acknowledged.values())
    # One delivery per message here: a case_ref on two webhook-ids is a message stored twice.
    case_of = {
        r.webhook_id: orjson.loads(r.body)["data"].get("case_ref")
        for r in received
        if r.webhook_id in acknowledged
    }
    per_case = Counter(case_of.values())
    stored_twice = {case: n for case, n in per_case.items() if n > 1}
    answered = [o for o in outcomes.values() if o.kind == "answered"]

    backend = "sqlite" if fault_database.startswith("sqlite") else "postgresql"
    print(
        f"\nAPI SIGKILL x{KILLS} under ingest on {backend} ({NAME}): {CLIENTS} clients, "
        f"{len(outcomes)} requests"
    )
    for n, kill in enumerate(kills, start=1):
        print(
            f"  kill {n}: {kill.load:.2f} s into load, {kill.accepted} 202s so far, "
            f"{kill.unknown} requests cut off so far; back up in {restarts[n - 1]:.1f} s"
        )
    print(
        f"  answers: 202 {before_retry['accepted']}, refused while down "
        f"{before_retry['refused']}, unknown outcome {before_retry['unknown']}, "
        f"other {before_retry['answered']}"
    )
    print(
        f"  unknown outcome retried with their Idempotency-Key: {dict(retry_kinds)}; "
        f"{replayed} replayed (committed before the kill), "
        f"{len(retried) - replayed} stored by the retry"
    )
    print(f"  settled {drain_seconds:.1f} s after the retries (settled: {settled})")
    print(f"  phases: {phases.summary()}")
    print(f"  total queue: {check.summary()}")
    print(
        f"  acked-lost {len(check.lost)}, unknown-outcome {before_retry['unknown']}, "
        f"messages stored twice {len(stored_twice)}"
    )
    print(
        f"  store: deliveries {dict(state.deliveries)}, messages {dict(state.messages)}, "
        f"audit chain ok: {state.chain_ok}"
    )

    assert all(k.accepted for k in kills), "a kill came before any 202"
    assert not answered, [(o.status, o.error) for o in answered[:5]]
    assert all(o.kind == "accepted" for o in retried.values()), retried
    assert not check.lost, f"acked-lost {len(check.lost)}: {sorted(check.lost)[:10]}"
    assert not check.unexpected, check.unexpected[:10]
    assert not stored_twice, f"stored twice: {stored_twice}"
    assert settled
    # Every stored message belongs to a 202: nothing stored behind the clients' backs.
    assert sum(state.messages.values()) == len(messages)
    assert dict(state.deliveries) == {"delivered": len(acknowledged)}
    assert state.chain_ok
