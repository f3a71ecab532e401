"""The lifecycle every intake component shares: ``run(started)`` for a supervisor, or ``async with``.

A supervisor calls ``await component.run(started)`` as a child task: ``started()`` is called once
the component is serving (or, if Redis is down, once it has made its first attempt and is
reconnecting: Redis being down is a state readiness reports, not a failure to start), and
``run`` returns only when cancelled. Tests and one-shot commands use ``async with component:``,
which owns that task, returns once it has started and cancels and reaps it on exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

__all__ = ["Service"]


class Service:
    name = "service"

    async def run(self, started: Callable[[], None]) -> None:
        raise NotImplementedError

    async def _before_stop(self) -> None:
        """A graceful step before the task is cancelled (flushing, say); bounded by the subclass."""

    async def __aenter__(self) -> Self:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self.run(ready.set), name=self.name)
        waiter = asyncio.create_task(ready.wait(), name=f"{self.name}.started")
        try:
            await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
        if self._task.done():
            # run() ended before it started: surface why, instead of returning a dead component.
            self._task.result()
            raise RuntimeError(f"{self.name} stopped before it started")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._before_stop()
        finally:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
