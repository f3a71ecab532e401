"""One run at a time of a costly idempotent operation, shared by the callers that ask while it runs.

A caller needs a run that *started after* it asked (what it wrote before asking is then seen): a
caller that asks while a run is going waits for it, then for the next one, which serves every
caller that asked meanwhile. A burst of callers (a batch's children ending together) costs two
runs, not one each. No task of its own: the run is made by one of the callers, in its own task;
if that caller is cancelled or its run fails, a waiting caller starts the next run itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, cast

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._asked = 0  # callers so far, numbered
        self._served = 0  # every caller up to this number has had a run that started after it asked
        self._result: T | None = None
        self._running: asyncio.Future[None] | None = None
        self.runs = 0  # runs made (for tests and logs)

    async def __call__(self, run: Callable[[], Awaitable[T]]) -> T:
        self._asked += 1
        mine = self._asked
        while True:
            if self._served >= mine:
                return cast(T, self._result)  # the result of the run that served us
            if self._running is None:
                return await self._run(run)
            # Not ``await self._running``: a waiter cancelled would cancel the run's future for all.
            await asyncio.wait({self._running})

    async def _run(self, run: Callable[[], Awaitable[T]]) -> T:
        covers = self._asked  # every caller so far asked before this run started
        done = self._running = asyncio.get_running_loop().create_future()
        self.runs += 1
        try:
            result = await run()
        except BaseException:
            self._running = None
            done.set_result(None)  # the waiters wake unserved: one of them runs next
            raise
        self._served, self._result = covers, result
        self._running = None
        done.set_result(None)
        return result
