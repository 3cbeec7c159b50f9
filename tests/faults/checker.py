"""What a fault test concludes: Jepsen's total-queue check, and the store's final state.

Total queue (Jepsen's `total-queue` checker): every acknowledged delivery must
come out (lost = acknowledged but never received), nothing may come out that
was never put in (unexpected), and what came out more than once is reported
(duplicated: at-least-once allows it; the webhook-id lets a receiver drop it).
A request is also unexpected when its body does not match its webhook-id and
message, or its signature does not verify.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import and_, func, select

from commcentre.audit.models import AuditEntry
from commcentre.audit.service import audit_session_info, verify_chain
from commcentre.crypto import FileKeyring
from commcentre.db import Database
from commcentre.delivery.models import Delivery, DeliveryAttempt
from commcentre.messages.models import Message
from tests.faults.receiver import Received

OPEN_STATUSES = ("pending", "retrying", "in_flight")
DISCLOSED = "message.disclosed"


@dataclass(frozen=True)
class QueueCheck:
    """The total-queue figures of one run."""

    acknowledged: int
    requests: int
    ok: int  # acknowledged deliveries received at least once
    lost: frozenset[str]
    unexpected: tuple[str, ...]
    duplicated: Mapping[str, int]  # webhook-id -> times received, for those above 1

    @property
    def duplicates(self) -> int:
        """Requests beyond the first for a delivery."""
        return sum(n - 1 for n in self.duplicated.values())

    @property
    def valid(self) -> bool:
        return not self.lost and not self.unexpected

    def summary(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, requests {self.requests}, ok {self.ok}, "
            f"lost {len(self.lost)}, unexpected {len(self.unexpected)}, "
            f"duplicated {len(self.duplicated)} deliveries ({self.duplicates} extra requests)"
        )


def total_queue(acknowledged: Mapping[str, str], received: Sequence[Received]) -> QueueCheck:
    """Check the receiver's requests against {delivery id: message id} of the 202 answers."""
    unexpected: list[str] = []
    counts: Counter[str] = Counter()
    for request in received:
        problem = _problem(request, acknowledged)
        if problem is not None:
            unexpected.append(f"{request.webhook_id or '<no webhook-id>'}: {problem}")
            continue
        counts[request.webhook_id] += 1
    return QueueCheck(
        acknowledged=len(acknowledged),
        requests=len(received),
        ok=len(counts),
        lost=frozenset(acknowledged) - counts.keys(),
        unexpected=tuple(unexpected),
        duplicated={k: n for k, n in counts.items() if n > 1},
    )


def _problem(request: Received, acknowledged: Mapping[str, str]) -> str | None:
    message_id = acknowledged.get(request.webhook_id)
    if message_id is None:
        return "never acknowledged"
    if not request.signature_ok:
        return "signature does not verify"
    try:
        event: Any = orjson.loads(request.body)
        body_id, body_message = event["id"], event["data"]["message_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "body is not a webhook event"
    if body_id != request.webhook_id:
        return f"body id {body_id} differs from the webhook-id"
    if body_message != message_id:
        return f"carries message {body_message}, not {message_id}"
    return None


# -- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreState:
    deliveries: Mapping[str, int]  # status -> count
    messages: Mapping[str, int]  # status -> count
    attempts: int  # recorded attempt rows
    disclosures: Mapping[str, int]  # delivery id -> disclosure audit entries
    chain_ok: bool


@dataclass(frozen=True)
class DeliveryRow:
    status: str
    attempts: int
    last_error: str | None


class Store:
    """Read-only looks at a test's database; each call opens and closes its own engine."""

    def __init__(self, url: str, keyring: Path) -> None:
        """`keyring`: the test's keyring file, whose audit keys verify the chain."""
        self.url = url
        self.keyring = keyring

    def open_deliveries(self) -> int:
        return asyncio.run(self._count(Delivery.status.in_(OPEN_STATUSES)))

    def leased_by(self, owner: str) -> int:
        """Deliveries still leased (in flight) to this dispatcher."""
        return asyncio.run(
            self._count(and_(Delivery.status == "in_flight", Delivery.lease_owner == owner))
        )

    async def _count(self, condition: Any) -> int:
        db = Database(self.url, pool_size=1)
        try:
            async with db.read_sessions() as session:
                stmt = select(func.count()).select_from(Delivery).where(condition)
                return int((await session.execute(stmt)).scalar_one())
        finally:
            await db.dispose()

    def deliveries(self, partner_id: str | None = None) -> dict[str, DeliveryRow]:
        """Every delivery (of one partner), by id: its status, attempts and last error."""
        return asyncio.run(self._deliveries(partner_id))

    async def _deliveries(self, partner_id: str | None) -> dict[str, DeliveryRow]:
        db = Database(self.url, pool_size=1)
        try:
            async with db.read_sessions() as session:
                stmt = select(Delivery.id, Delivery.status, Delivery.attempts, Delivery.last_error)
                if partner_id is not None:
                    stmt = stmt.where(Delivery.partner_id == partner_id)
                return {
                    str(row.id): DeliveryRow(row.status, row.attempts, row.last_error)
                    for row in await session.execute(stmt)
                }
        finally:
            await db.dispose()

    def state(self) -> StoreState:
        return asyncio.run(self._state())

    async def _state(self) -> StoreState:
        keys = FileKeyring.load(self.keyring)
        db = Database(self.url, pool_size=1, session_info=audit_session_info(keys))
        try:
            async with db.read_sessions() as session:
                deliveries = {
                    status: int(n)
                    for status, n in await session.execute(
                        select(Delivery.status, func.count()).group_by(Delivery.status)
                    )
                }
                messages = {
                    status: int(n)
                    for status, n in await session.execute(
                        select(Message.status, func.count()).group_by(Message.status)
                    )
                }
                attempts = (
                    await session.execute(select(func.count()).select_from(DeliveryAttempt))
                ).scalar_one()
                details = (
                    await session.execute(
                        select(AuditEntry.details).where(AuditEntry.event == DISCLOSED)
                    )
                ).scalars()
                disclosures = Counter(str(d.get("delivery_id")) for d in details)
            async with db.read_sessions() as session:
                chain = await verify_chain(session)
        finally:
            await db.dispose()
        return StoreState(
            deliveries=deliveries,
            messages=messages,
            attempts=int(attempts),
            disclosures=dict(disclosures),
            chain_ok=chain.ok,
        )


def wait_settled(
    store: Store,
    receiver_ids: Callable[[], set[str]],
    acknowledged: Mapping[str, str],
    *,
    timeout: float,
) -> tuple[bool, float]:
    """Wait until every acknowledged delivery was received and none is open in the store.

    Returns (settled, seconds waited); on a timeout the checks that follow name what is missing.
    """
    started = time.monotonic()
    while True:
        if acknowledged.keys() <= receiver_ids() and store.open_deliveries() == 0:
            return True, time.monotonic() - started
        if time.monotonic() - started > timeout:
            return False, time.monotonic() - started
        time.sleep(0.2)


class Phases:
    """Wall time of a test's phases, for its report."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.seconds: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now

    def summary(self) -> str:
        return ", ".join(f"{name} {s:.1f} s" for name, s in self.seconds.items())
