"""Waiting in tests without fixed sleeps: poll a condition, with a deadline, and say what was awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(predicate: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
    """Return as soon as ``predicate()`` holds; fail after ``within`` seconds.

    For state that has no event to wait on (another process's files, a counter in a library);
    where an event exists, await it instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {within:g}s")
        await asyncio.sleep(0.005)
