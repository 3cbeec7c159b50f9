"""The scaled-out shape without Docker: two API processes and two workers on one PostgreSQL.

What docker-compose.yml describes (migrations once, `serve --no-worker` twice,
`worker` twice), run as local processes against a fresh PostgreSQL database.
Messages go in through both APIs at once; every one must reach the receiver
exactly once (nothing crashes, so at-least-once has no reason to repeat), be
recorded with one attempt and one disclosure, and both workers must have
delivered some. `make scale-demo` runs this test and prints its figures.
"""

import asyncio
import random
import secrets
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

APIS = 2
WORKERS = 2
MESSAGES_PER_API = 200
RECEIVER_DELAY = (0.002, 0.01)
DRAIN_SECONDS = 30.0
STOP_GRACE_SECONDS = 20.0
PARTNER = "scale-receiver"


def test_two_apis_and_two_workers_deliver_every_message_once(
    fault_database: str, keyring: Path, children: Children, rng: random.Random
) -> None:
    secret = generate_signing_secret()
    admin_key = "ck_" + secrets.token_urlsafe(32)
    env = commcentre_env(database_url=fault_database, keyring_path=keyring)
    store = Store(fault_database, keyring)
    phases = Phases()
    with Receiver(secret=secret, delay=RECEIVER_DELAY, seed=rng.randrange(2**32)) as receiver:
        workers = [children.start(f"worker-{n + 1}", ["worker"], env) for n in range(WORKERS)]
        apis = [
            start_api(children, env, name=f"api-{n + 1}", admin_key=admin_key) for n in range(APIS)
        ]
        for worker in workers:
            worker.wait_for_log("dispatcher_started")
        phases.done("start")
        create_webhook_partner(
            apis[0].base_url, admin_key, partner_id=PARTNER, url=receiver.url, secret=secret
        )

        async def through_both() -> list[dict[str, str]]:
            return list(
                await asyncio.gather(
                    *(
                        asyncio.to_thread(
                            ingest,
                            api.base_url,
                            admin_key,
                            partner_id=PARTNER,
                            count=MESSAGES_PER_API,
                            concurrency=8,
                        )
                        for api in apis
                    )
                )
            )

        per_api = asyncio.run(through_both())
        acknowledged = {k: v for accepted in per_api for k, v in accepted.items()}
        assert [len(a) for a in per_api] == [MESSAGES_PER_API] * APIS
        phases.done("ingest")
        settled, drain_seconds = wait_settled(
            store, receiver.ids, acknowledged, timeout=DRAIN_SECONDS
        )
        phases.done("settle")
        stopped = {w.name: w.terminate(grace=STOP_GRACE_SECONDS) for w in workers}
        for api in apis:
            assert api.child.terminate(), api.child.tail()
        check = total_queue(acknowledged, receiver.received())
    delivered = {w.name: w.delivered() for w in workers}
    state = store.state()
    total = MESSAGES_PER_API * APIS

    print(f"\n{APIS} APIs + {WORKERS} workers on postgresql: {total} messages")
    print(f"  accepted per API: {[len(a) for a in per_api]}")
    print(f"  settled {drain_seconds:.1f} s after the last 202 (settled: {settled})")
    print(f"  phases: {phases.summary()}")
    print(f"  delivered per worker: {delivered}")
    print(f"  total queue: {check.summary()}")
    print(f"  store: deliveries {dict(state.deliveries)}, attempts {state.attempts}")

    assert not check.lost, f"lost {len(check.lost)}: {sorted(check.lost)[:10]}"
    assert not check.unexpected, check.unexpected[:10]
    assert not check.duplicated, f"delivered more than once: {dict(check.duplicated)}"
    assert settled
    assert all(stopped.values()), {w.name: w.tail() for w in workers}
    assert all(n for n in delivered.values()), f"a worker delivered nothing: {delivered}"
    assert sum(n or 0 for n in delivered.values()) == total
    assert dict(state.deliveries) == {"delivered": total}
    assert state.attempts == total
    assert state.disclosures == dict.fromkeys(acknowledged, 1)
    assert state.chain_ok
