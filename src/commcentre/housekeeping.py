"""Periodic jobs that run in every dispatcher process, next to the dispatcher loop.

Not a separate cron: wherever deliveries are dispatched (`commcentre serve` in the
embedded shape, each `commcentre worker` when scaled out), the same process also
erases expired messages and escalates overdue requests. Every job is safe to run
in several processes at once (their SQL claims work with conditional updates or
SKIP LOCKED), and a failing run is logged and tried again at the next interval.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from commcentre.clock import Clock
from commcentre.db import STORE_ERRORS

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """`run(now)` does one batch of work and answers how much it did."""

    name: str
    interval: float
    run: Callable[[datetime], Awaitable[int]]


class Housekeeper:
    def __init__(self, jobs: Sequence[PeriodicJob], *, clock: Clock) -> None:
        self._jobs = tuple(jobs)
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self.runs: dict[str, int] = {job.name: 0 for job in self._jobs}
        self.done: dict[str, int] = {job.name: 0 for job in self._jobs}

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._loop(job), name=f"housekeeping-{job.name}")
            for job in self._jobs
        ]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def run_once(self) -> dict[str, int]:
        """Every job once, now (tests, `commcentre` commands): what each did."""
        return {job.name: await self._run(job) for job in self._jobs}

    async def _loop(self, job: PeriodicJob) -> None:
        while not self._stop.is_set():
            await self._run(job)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), job.interval)

    async def _run(self, job: PeriodicJob) -> int:
        self.runs[job.name] += 1
        try:
            count = await job.run(self._clock())
        except STORE_ERRORS as exc:
            log.warning("housekeeping_failed", job=job.name, error_type=type(exc).__name__)
            return 0
        except Exception as exc:  # a bug must not end the job for the life of the process
            log.error("housekeeping_crashed", job=job.name, error_type=type(exc).__name__)
            return 0
        self.done[job.name] += count
        return count
