"""A per-partner rate limit that holds across all workers (GCRA on the partner row).

The generic cell rate algorithm keeps one timestamp per partner, the
theoretical arrival time (TAT). A delivery may start when TAT - now is within
the burst allowance; each start pushes TAT by 1/rate. The row lives in the
database, so every worker of every process draws from the same budget.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from commcentre.db import WriteSession
from commcentre.partners.models import Partner


@dataclass(frozen=True, slots=True)
class Slot:
    """Start after `delay` seconds (0: now); `tat` is the partner's new TAT."""

    delay: float
    tat: datetime


def next_slot(tat: datetime | None, now: datetime, *, rate: float, burst: int) -> Slot:
    """Reserve one start for a partner allowing `rate` per second with bursts of `burst`."""
    interval = timedelta(seconds=1.0 / rate)
    start = max(tat or now, now)
    allowed_at = start - interval * max(0, burst - 1)
    delay = max(0.0, (allowed_at - now).total_seconds())
    return Slot(delay=delay, tat=start + interval)


async def reserve(
    session: WriteSession, partner_id: str, *, now: datetime, rate: float, burst: int, lock: bool
) -> float:
    """Take the partner's next slot; returns how long to wait before starting (flushes only)."""
    query = select(Partner.rate_tat).where(Partner.id == partner_id)
    if lock:
        query = query.with_for_update()
    tat = (await session.execute(query)).scalar_one_or_none()
    slot = next_slot(tat, now, rate=rate, burst=burst)
    await session.execute(update(Partner).where(Partner.id == partner_id).values(rate_tat=slot.tat))
    return slot.delay
