"""Waiting in tests without fixed sleeps: poll a condition, with a deadline, and say what was awaited.

Every wait of the suite that has no event to await goes through :func:`poll` (its one deadline
loop): :func:`eventually` when a miss fails the test, :func:`poll` itself when the caller records
a miss (a chaos scenario counts it as one of its problems). A test never sleeps to wait, and no
test writes its own deadline loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def poll(probe: Callable[[], Awaitable[T | None]], within: float, every: float = ...) -> T | None: ...


@overload
async def poll(probe: Callable[[], T | None], within: float, every: float = ...) -> T | None: ...


async def poll(probe: Callable[[], object], within: float, every: float = 0.005) -> object:
    """``probe()``'s first truthy value (awaited, if it is awaitable), or None after ``within`` s.

    A probe that sees the wait can never succeed (the process it polls has exited) raises, and
    that ends it. ``every`` is the poll interval: a probe that costs a request or a file read
    polls less often. A value that may be falsy (0.0 seconds, an empty body) goes in a 1-tuple.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            return None
        await asyncio.sleep(every)


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    within: float = ...,
    what: str | Callable[[], str] = ...,
    every: float = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None],
    within: float = ...,
    what: str | Callable[[], str] = ...,
    every: float = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], object],
    within: float = 5.0,
    what: str | Callable[[], str] = "condition",
    every: float = 0.005,
) -> object:
    """Return ``probe()``'s first truthy value as soon as there is one; fail after ``within`` s.

    For state that has no event to wait on (another process's files, a counter in a library);
    where an event exists, await it instead. ``what`` names what was awaited in the failure; a
    callable is asked only then, so it can tell the last answer seen or a log's tail.
    """
    found = await poll(probe, within, every)
    if not found:
        raise AssertionError(f"{what() if callable(what) else what} did not hold within {within:g}s")
    return found
