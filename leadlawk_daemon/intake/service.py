"""The lifecycle every intake component shares: ``run(started)`` for a supervisor, or ``async with``.

A supervisor runs ``await component.run(started)`` as a child task: ``started()`` is called once
the component is serving (or, if Redis is down, once it has made its first attempt and is
reconnecting: Redis being down is a state readiness reports, not a failure to start). To stop
it, call ``component.stop()`` and give ``run`` ``stop_timeout`` seconds to return (it finishes
the entry in hand), then cancel. Tests and one-shot commands use ``async with component:``,
which does exactly that.

Why a stop flag and not only cancellation: redis-py (8.x) can swallow a ``CancelledError`` that
lands inside a blocking read and carry on reading, so a loop that relied on cancellation alone
could outlive its owner. Every loop therefore checks :meth:`Service._running`, which also turns a
swallowed cancellation back into one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

__all__ = ["Service"]


class Service:
    name = "service"
    stop_timeout = 3.0

    def __init__(self) -> None:
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run(self, started: Callable[[], None]) -> None:
        raise NotImplementedError

    def request_stop(self, deadline: float | None = None) -> None:
        """The supervisor's graceful stop (see ``supervisors.spec.Stoppable``): the same as :meth:`stop`."""
        self.stop()

    def stop(self) -> None:
        """Ask ``run`` to return after the step in hand; idempotent."""
        self._stop_requested.set()
        self._wake()

    def _wake(self) -> None:
        """Interrupt an idle wait so a stop is seen at once (subclasses that idle on an event)."""

    def _running(self) -> bool:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A library swallowed our cancellation: honour it here.
            raise asyncio.CancelledError
        return not self._stop_requested.is_set()

    async def _before_stop(self) -> None:
        """A graceful step before stopping (flushing, say); bounded by the subclass."""

    async def __aenter__(self) -> Self:
        ready = asyncio.Event()
        task = self._task = asyncio.create_task(self.run(ready.set), name=self.name)
        waiter = asyncio.create_task(ready.wait(), name=f"{self.name}.started")
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
        if task.done():
            # run() ended before it started: surface why, instead of returning a dead component.
            task.result()
            raise RuntimeError(f"{self.name} stopped before it started")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        assert task is not None, "not entered"
        try:
            await self._before_stop()
        finally:
            self.stop()
            await asyncio.wait({task}, timeout=self.stop_timeout)
            if not task.done():
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
