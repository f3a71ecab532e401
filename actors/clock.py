"""Injected time: every timer in the daemon (backoff, breakers, limiters, supervisors) reads this.

Tests replace :class:`MonotonicClock` with :class:`FakeClock` and move time with ``advance``
instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FakeClock", "MonotonicClock", "Timer"]


class Timer(Protocol):
    def cancel(self) -> object:
        """The callback will not run (if it has not yet)."""


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences mean anything."""

    def wall(self) -> float:
        """Seconds since the epoch (UTC), for timestamps and quota windows."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock; cancellable."""

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once ``seconds`` passed on this clock, from the event loop, unless the
        timer is cancelled first. A timeout on a hot path costs a timer here, not a task."""


class MonotonicClock:
    # The C function itself, not a method around it: every message handled reads it twice.
    monotonic = staticmethod(time.monotonic)

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, seconds), callback)


class FakeClock:
    """A clock that moves only when told to.

    ``sleep`` parks the caller until ``advance`` moves time past its deadline, so a test of a
    60 s backoff takes microseconds and is exactly repeatable.
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._sleeper_added = asyncio.Event()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        self._sleeper_added.set()
        await fut

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """A sleeper like :meth:`sleep`'s (``advance`` fires it in deadline order), whose wake-up
        runs ``callback``; cancelling the returned future drops it."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda done: None if done.cancelled() else callback())
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._seq), fut))
        self._sleeper_added.set()
        return fut

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (cancelled ones excluded)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    def next_deadline(self) -> float | None:
        live = [when for when, _, fut in self._sleepers if not fut.done()]
        return min(live) if live else None

    async def wait_for_sleepers(self, count: int = 1, within: float = 5.0) -> None:
        """Return once at least ``count`` sleeps are pending: the code under test reached its wait."""
        async with asyncio.timeout(within):
            while self.sleepers < count:
                self._sleeper_added.clear()
                await self._sleeper_added.wait()

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline has passed, in deadline order."""
        target = self._now + seconds
        while True:
            while self._sleepers and self._sleepers[0][0] <= target:
                when, _, fut = heapq.heappop(self._sleepers)
                self._now = max(self._now, when)
                if not fut.done():
                    fut.set_result(None)
                    # Let the woken code run, and re-arm its next sleep, before later deadlines fire,
                    # as real time would.
                    await self._settle()
            await self._settle()
            if not (self._sleepers and self._sleepers[0][0] <= target):
                break
        self._now = target
        await asyncio.sleep(0)

    @staticmethod
    async def _settle() -> None:
        # A woken sleep wakes its task, which may wake another (asyncio.wait, a TaskGroup) before
        # the code that owns the timer runs again: a few rounds of the loop cover those hops.
        for _ in range(12):
            await asyncio.sleep(0)
