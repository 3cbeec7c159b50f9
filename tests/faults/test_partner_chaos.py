"""Partners that fail in every way lose nothing (RELIABILITY.md: "partner faults").

One `commcentre worker` delivers to two loopback partners (receiver.py):

- `chaos` answers each request at random: 200, 500, 429 with Retry-After: 1,
  hang (no answer; the sender's 1 s timeout fires) or reset (TCP RST after the
  request was read). The retry policy is short (4 attempts, 8 s max age,
  backoff base 0.25 s, breaker cooldown 1 s), so every delivery ends delivered
  or dead-lettered within the test: delivered + dead-lettered = accepted, and
  nothing is marked delivered that the partner did not answer 2xx.
- `gone` answers 200 a few times, then 410 Gone: the partner is disabled, the
  deliveries answered 410 are dead letters, the rest wait (held, not lost).
  The partner comes back: re-enabled (PATCH) and its dead letters redriven,
  every one of its deliveries ends delivered.

FAULT_SCALE=long sends 5x the messages.
"""

import random
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from commcentre.partners.schemas import generate_signing_secret
from tests.faults.checker import DeliveryRow, Phases, Store
from tests.faults.processes import (
    Children,
    commcentre_env,
    create_webhook_partner,
    ingest,
    start_api,
)
from tests.faults.receiver import Received, Receiver
from tests.faults.scale import NAME, scaled

pytestmark = pytest.mark.slow

CHAOS_MESSAGES = scaled(200, 1000)
GONE_MESSAGES = scaled(60, 300)
GONE_AFTER = 10  # `gone` answers 200 this many times, then 410
# What `chaos` answers, with weights (percent).
MIX = {"200": 45, "500": 15, "429": 10, "hang": 10, "reset": 20}
MAX_ATTEMPTS = 4
MAX_AGE_SECONDS = 8.0
RETRY_BASE_SECONDS = 0.25
BREAKER_COOLDOWN_SECONDS = 1.0
DELIVERY_TIMEOUT_SECONDS = 1.0
LEASE_SECONDS = 2.0  # at least twice the delivery timeout (Settings)
WORKER_CONCURRENCY = 32
SETTLE_SECONDS = scaled(45.0, 120.0)
CHAOS, GONE = "chaos-partner", "gone-partner"
_STOPPED = re.compile(r"dispatcher_stopped\b(.*)")
OPEN = ("pending", "retrying", "in_flight")


def chaos_answer(rng: random.Random) -> Callable[[Received], str]:
    answers, weights = list(MIX), list(MIX.values())
    return lambda _request: rng.choices(answers, weights)[0]


def gone_answer() -> Callable[[Received], str]:
    seen = 0

    def answer(_request: Received) -> str:
        nonlocal seen
        seen += 1
        return "200" if seen <= GONE_AFTER else "410"

    return answer


def wait_until(what: str, condition: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not {what} after {timeout:.0f} s")
        time.sleep(0.3)
    return time.monotonic() - started


def statuses(rows: dict[str, DeliveryRow]) -> Counter[str]:
    return Counter(row.status for row in rows.values())


def test_failing_partners_lose_no_delivery(
    fault_database: str, keyring: Path, children: Children, rng: random.Random
) -> None:
    secrets = {CHAOS: generate_signing_secret(), GONE: generate_signing_secret()}
    env = commcentre_env(
        database_url=fault_database,
        keyring_path=keyring,
        dispatcher_concurrency=WORKER_CONCURRENCY,
        dispatcher_lease_seconds=LEASE_SECONDS,
        delivery_timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
        delivery_max_attempts=MAX_ATTEMPTS,
        delivery_max_age_hours=MAX_AGE_SECONDS / 3600,
        delivery_retry_base_seconds=RETRY_BASE_SECONDS,
        delivery_breaker_cooldown_seconds=BREAKER_COOLDOWN_SECONDS,
    )
    store = Store(fault_database, keyring)
    phases = Phases()
    chaos_rng = random.Random(rng.randrange(2**32))
    with (
        Receiver(secret=secrets[CHAOS], answer=chaos_answer(chaos_rng)) as chaos,
        Receiver(secret=secrets[GONE], answer=gone_answer()) as gone,
    ):
        api = start_api(children, env)
        for partner, receiver in ((CHAOS, chaos), (GONE, gone)):
            create_webhook_partner(
                api.base_url,
                api.admin_key,
                partner_id=partner,
                url=receiver.url,
                secret=secrets[partner],
            )
        phases.done("start")
        # Every message is accepted before the worker starts: once `gone` answers 410 its
        # partner is disabled, and a message submitted after that would route nowhere (422).
        accepted = {
            partner: ingest(
                api.base_url, api.admin_key, partner_id=partner, count=count, concurrency=8
            )
            for partner, count in ((CHAOS, CHAOS_MESSAGES), (GONE, GONE_MESSAGES))
        }
        phases.done("messages in")
        worker = children.start("worker", ["worker"], env)
        worker.wait_for_log("dispatcher_started")

        def partner_state() -> dict[str, object]:
            with httpx.Client(base_url=api.base_url, trust_env=False, timeout=10) as client:
                response = client.get(
                    f"/v1/partners/{GONE}", headers={"Authorization": f"Bearer {api.admin_key}"}
                )
            assert response.status_code == 200, response.text
            document: dict[str, object] = response.json()
            return document

        def settled() -> bool:
            chaos_open = sum(statuses(store.deliveries(CHAOS))[s] for s in OPEN)
            gone_rows = statuses(store.deliveries(GONE))
            gone_quiet = gone_rows["in_flight"] == 0 and partner_state()["enabled"] is False
            return chaos_open == 0 and gone_quiet

        settle_seconds = wait_until("settled", settled, SETTLE_SECONDS)
        phases.done("chaos settles")
        chaos_rows = store.deliveries(CHAOS)
        gone_rows = store.deliveries(GONE)
        disabled = partner_state()
        gone_answers = gone.answers()

        # The partner is back: 200 again, re-enabled, its dead letters redriven.
        gone.set_answer(None)
        headers = {"Authorization": f"Bearer {api.admin_key}"}
        with httpx.Client(base_url=api.base_url, trust_env=False, timeout=10) as client:
            enabled = client.patch(f"/v1/partners/{GONE}", json={"enabled": True}, headers=headers)
            assert enabled.status_code == 200, enabled.text
            redrive = client.post(
                "/v1/dead-letters/redrive", json={"partner": GONE}, headers=headers
            )
            assert redrive.status_code == 200, redrive.text
        recover_seconds = wait_until(
            "all delivered to the partner back from 410",
            lambda: statuses(store.deliveries(GONE)) == {"delivered": GONE_MESSAGES},
            SETTLE_SECONDS,
        )
        phases.done("gone recovers")
        assert worker.terminate(grace=10), worker.tail()
        assert api.child.terminate(), api.child.tail()
        chaos_answers = chaos.answers()
        chaos_ok = chaos.accepted_ids()
    state = store.state()
    phases.done("stop and check")

    chaos_status = statuses(chaos_rows)
    delivered = {d for d, row in chaos_rows.items() if row.status == "delivered"}
    dead = {d: row for d, row in chaos_rows.items() if row.status == "dead"}
    lost = set(accepted[CHAOS]) - delivered - dead.keys()
    dead_why = Counter(
        "attempts exhausted" if row.attempts >= MAX_ATTEMPTS else "too old" for row in dead.values()
    )
    delivered_not_ok = delivered - chaos_ok  # marked delivered without a 2xx: never allowed
    ok_but_dead = chaos_ok & dead.keys()  # the 2xx was written, the sender had given up
    attempts = sum(row.attempts for row in chaos_rows.values())
    gone_status = statuses(gone_rows)
    stats = _STOPPED.search(worker.log_text())

    backend = "sqlite" if fault_database.startswith("sqlite") else "postgresql"
    mix = ", ".join(f"{k} {v}%" for k, v in MIX.items())
    print(f"\npartner chaos on {backend} ({NAME}): {CHAOS_MESSAGES} messages; answers {mix}")
    print(
        f"  policy: {MAX_ATTEMPTS} attempts, max age {MAX_AGE_SECONDS:g} s, backoff base "
        f"{RETRY_BASE_SECONDS:g} s, timeout {DELIVERY_TIMEOUT_SECONDS:g} s, breaker cooldown "
        f"{BREAKER_COOLDOWN_SECONDS:g} s; settled in {settle_seconds:.1f} s"
    )
    print(
        f"  partner got {sum(chaos_answers.values())} requests: {dict(chaos_answers)}; "
        f"attempts recorded {attempts}"
    )
    print(
        f"  delivered {len(delivered)} + dead-lettered {len(dead)} ({dict(dead_why)}) = "
        f"{len(delivered) + len(dead)} of {len(accepted[CHAOS])} accepted; lost {len(lost)}"
    )
    print(
        f"  delivered without a 2xx {len(delivered_not_ok)}; 2xx written after the sender "
        f"gave up {len(ok_but_dead)}"
    )
    print(f"410: {GONE_MESSAGES} messages to a partner answering 200 {GONE_AFTER} times, then 410")
    print(
        f"  partner disabled: {disabled['enabled'] is False} ({disabled['disabled_reason']}); "
        f"deliveries {dict(gone_status)} (pending: held for the disabled partner); "
        f"requests until then {dict(gone_answers)}"
    )
    print(
        f"  re-enabled, {redrive.json()['redriven']} dead letters redriven: all "
        f"{GONE_MESSAGES} delivered {recover_seconds:.1f} s later"
    )
    print(f"  worker: {stats.group(1).strip() if stats else '(no dispatcher_stopped line)'}")
    print(f"  phases: {phases.summary()}")
    print(f"  audit chain ok: {state.chain_ok}")

    assert not lost, f"lost {len(lost)}: {sorted(lost)[:10]}"
    assert set(chaos_status) <= {"delivered", "dead"}, chaos_status
    assert len(delivered) + len(dead) == CHAOS_MESSAGES
    assert not delivered_not_ok, sorted(delivered_not_ok)[:10]
    assert delivered, "nothing got through the chaos"
    assert dead, "no delivery was dead-lettered: the chaos was too mild to show it"
    assert disabled["enabled"] is False
    assert "410" in str(disabled["disabled_reason"])
    assert set(gone_status) <= {"delivered", "dead", "pending"}, gone_status
    assert sum(gone_status.values()) == GONE_MESSAGES
    assert gone_status["dead"] >= 1
    assert gone_answers["200"] >= GONE_AFTER
    assert state.chain_ok
