"""A gate of a few places, its waiters served round-robin by key (a job): fairness past the mailbox.

The enricher takes messages from its fair mailbox one job at a time, but it has many workers
(its in-flight ceiling) and only a few of them call PageSpeed at once (the adaptive in-flight
limit). Workers beyond the limit, each holding a lead, would queue for a call slot first come,
first served: a 10,000-lead job's hundreds of leads in hand would be called before the 20-lead job
that arrived after them, whatever order the mailbox gave. So a worker waits here, in its job's
line, before it may ask for a slot; the gate lets ``capacity()`` workers through at once and
serves the lines in turn. Capacity is read at every grant, so it follows an adaptive limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager

from actors.lanes import Lanes

__all__ = ["FairGate"]


class FairGate:
    def __init__(self, capacity: Callable[[], int]) -> None:
        self._capacity = capacity
        self._held = 0
        self._lines: Lanes[asyncio.Future[None]] = Lanes()  # the waiters, by key

    @property
    def held(self) -> int:
        return self._held

    @property
    def waiting(self) -> dict[Hashable, int]:
        return self._lines.counts()

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        """Hold one place of the gate, after the waiters of other keys had their turns."""
        await self._acquire(key)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, key: Hashable) -> None:
        if not self._lines and self._held < self._room():
            self._held += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lines.push(key, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # granted as we were cancelled: the place goes to the next in turn
            else:
                self._lines.remove(key, waiter)
            raise

    def _release(self) -> None:
        self._held -= 1
        self._grant()

    def _room(self) -> int:
        return max(1, self._capacity())

    def _grant(self) -> None:
        while self._lines and self._held < self._room():
            waiter = self._lines.pop()
            if not waiter.done():
                self._held += 1
                waiter.set_result(None)
