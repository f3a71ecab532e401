"""A bounded mailbox: the bulkhead in front of an actor.

The mailbox belongs to the supervisor's side of an actor, not to the actor instance, so what
it holds survives the actor's restarts. Messages the actor had taken but not finished when it
crashed go back to the front and are delivered again. A full mailbox makes senders wait
(backpressure) up to a timeout that raises :class:`MailboxFull`; nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from actors.clock import Clock, MonotonicClock

__all__ = ["Envelope", "Mailbox", "MailboxFull"]

M = TypeVar("M")


class MailboxFull(Exception):
    """A sender waited longer than its timeout for room in a full mailbox."""


@dataclass(slots=True, eq=False)
class Envelope(Generic[M]):
    message: M
    failures: int = 0  # handlings that crashed
    last_error: str | None = None
    taken_at: float = field(default=0.0)
    # The lane the message is queued in (a fair mailbox's job; None in a plain one), worked out
    # once when it is accepted, and when it was accepted, for its place when it is put back.
    lane: Hashable = None
    seq: int = 0


class Mailbox(Generic[M]):
    """Every message pays for each call made here: the counters are plain fields and the queue
    discipline is a few small hooks, so a send or a take is a handful of attribute reads."""

    def __init__(
        self, owner: str, capacity: int, put_timeout: float = 300.0, clock: Clock | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox of {owner}: capacity must be at least 1, got {capacity}")
        self.owner = owner
        self.capacity = capacity
        self.put_timeout = put_timeout
        self._clock: Clock = clock or MonotonicClock()
        self._queue: collections.deque[Envelope[M]] = collections.deque()
        # Takes the next message to deliver: the queue's own method, bound once, as every
        # delivery calls it (a fair mailbox binds its lanes').
        self._take: Callable[[], Envelope[M]] = self._queue.popleft
        self._waiting = 0
        self._in_flight = 0
        self._getters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._putters: collections.deque[asyncio.Future[None]] = collections.deque()

    # Depth counts what was accepted and is not finished: waiting plus in hand. That keeps
    # "depth <= capacity" true even when a crash puts the messages in hand back in the queue.
    @property
    def depth(self) -> int:
        return self._waiting + self._in_flight

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def full(self) -> bool:
        return self._waiting + self._in_flight >= self.capacity

    def has_room(self, key: Hashable = None) -> bool:
        """Room for one more message sent under ``key`` (a plain mailbox has one lane: any key)."""
        return not self.full()

    def offer(self, message: M) -> bool:
        """Enqueue if there is room now; False (and nothing enqueued) if not. Never waits.

        The queue discipline, which a subclass changes (actors/fair_mailbox.py) with
        ``_take``, :meth:`_requeue`, :meth:`done` and :meth:`_freed`: one FIFO here.
        """
        if self._waiting + self._in_flight >= self.capacity:
            return False
        self._queue.append(Envelope(message))
        self._waiting += 1
        if self._getters:
            self._wake(self._getters)
        return True

    def put_nowait(self, message: M) -> None:
        if not self.offer(message):
            raise MailboxFull(f"mailbox of actor {self.owner} is full (capacity {self.capacity})")

    async def put(self, message: M, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Enqueue, waiting while the mailbox is full; :class:`MailboxFull` after ``timeout`` s."""
        if self.offer(message):
            return
        timeout = self.put_timeout if timeout is None else timeout
        deadline = self._clock.monotonic() + timeout
        while not self.offer(message):
            await self._wait_for_room(deadline, timeout)

    def _requeue(self, envelope: Envelope[M]) -> None:
        self._queue.appendleft(envelope)

    def _freed(self) -> None:
        self._wake(self._putters)

    async def _wait_for_room(self, deadline: float, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until a slot is freed (or ``deadline`` passes): the sender then offers again."""
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            raise MailboxFull(
                f"mailbox of actor {self.owner} stayed full (capacity {self.capacity}) for {timeout:g}s"
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._putters.append(waiter)
        # A timer, not a task: under steady backpressure every send waits here.
        timer = self._clock.call_later(remaining, _releaser(waiter))
        try:
            await waiter
        except BaseException:
            # Cancelled while waiting: pass our wake-up on, or a sender behind us could starve.
            if waiter.done() and not waiter.cancelled() and not self.full():
                self._freed()
            raise
        finally:
            timer.cancel()
            if waiter in self._putters:
                self._putters.remove(waiter)

    def get_nowait(self) -> Envelope[M] | None:
        if not self._waiting:
            return None
        self._waiting -= 1
        self._in_flight += 1
        return self._take()

    async def get(self) -> Envelope[M]:
        while not self._waiting:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._getters:
                    self._getters.remove(waiter)
                elif self._waiting:
                    self._wake(self._getters)
                raise
        self._waiting -= 1
        self._in_flight += 1
        return self._take()

    def done(self, envelope: Envelope[M]) -> None:
        """The message in ``envelope`` is finished: its slot is free."""
        self._in_flight -= 1
        if self._putters:
            self._freed()

    def redeliver(self, envelope: Envelope[M]) -> None:
        """Put a message taken but not finished back at the front, to be delivered next."""
        self._in_flight -= 1
        self._requeue(envelope)
        self._waiting += 1
        self._wake(self._getters)

    @staticmethod
    def _wake(waiters: collections.deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _releaser(waiter: asyncio.Future[None]) -> Callable[[], None]:
    def release() -> None:
        if not waiter.done():
            waiter.set_result(None)

    return release
