"""The routing directory: a cached snapshot of rules and partners, reloaded on change.

Every change of rules or partners bumps `routing_state.version` in its own
transaction. A process looks at that one row at most every `check_interval`
seconds and reloads everything when it moved, so ingest pays one tiny query a
second instead of queries per message. A change made in this process calls
`invalidate()` and is seen by the next message at once; one made elsewhere
within `check_interval` seconds.
"""

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.db import Database
from commcentre.messages.schemas import MessageIn
from commcentre.partners import repository as partner_repository
from commcentre.routing import repository
from commcentre.routing.rules import MessageFacts, PartnerEntry, RouteDecision, Rule, route
from commcentre.routing.service import compiled


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    """Rules (in evaluation order) and partners as of one routing version."""

    version: int
    rules: tuple[Rule, ...]
    partners: Mapping[str, PartnerEntry]

    def route(self, message: MessageIn) -> RouteDecision:
        """The destinations of a message; raises UnroutableMessage when it has none."""
        return route(MessageFacts.of(message), self.rules, self.partners)


async def load_snapshot(session: AsyncSession) -> RoutingSnapshot:
    """Read the version first: a change committed meanwhile is then seen again next check."""
    version = await repository.current_version(session)
    rules = tuple(compiled(row) for row in await repository.all_rules(session))
    partners = {
        row.id: PartnerEntry(
            id=row.id,
            country=row.country,
            channels=frozenset(row.channels or ()),
            enabled=row.enabled,
        )
        for row in await partner_repository.routing_entries(session)
    }
    return RoutingSnapshot(version=version, rules=rules, partners=partners)


class RoutingDirectory:
    """Hands out the current RoutingSnapshot; safe to share between coroutines."""

    def __init__(
        self,
        db: Database,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._check_interval = check_interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._snapshot: RoutingSnapshot | None = None
        self._checked_at = 0.0
        self._stale = True

    def invalidate(self) -> None:
        """Reload on next use (call it after committing a change in this process)."""
        self._stale = True

    async def snapshot(self) -> RoutingSnapshot:
        """The current snapshot; at most one version check per `check_interval`."""
        current = self._snapshot
        if current is not None and not self._stale and not self._check_due():
            return current
        async with self._lock:
            # Another coroutine may have refreshed while this one waited for the lock.
            if self._snapshot is not None and not self._stale and not self._check_due():
                return self._snapshot
            return await self._refresh()

    def _check_due(self) -> bool:
        return self._clock() - self._checked_at >= self._check_interval

    async def _refresh(self) -> RoutingSnapshot:
        checked_at = self._clock()
        stale = self._stale
        self._stale = False
        try:
            async with self._db.read_sessions() as session:
                current = self._snapshot
                if (
                    current is not None
                    and not stale
                    and await repository.current_version(session) == current.version
                ):
                    self._checked_at = checked_at
                    return current
                fresh = await load_snapshot(session)
        except BaseException:
            self._stale = self._stale or stale
            raise
        self._snapshot, self._checked_at = fresh, checked_at
        return fresh
