"""Racing work against a signal: the one way a piece of work is stopped from outside.

Two shapes, one rule (and :func:`reap`, the rule itself, for waits whose other side is not
ours). :func:`unless_set` runs an awaitable until it finishes or an event is set; :func:`first_of`
waits for the first of several awaitables. Whatever loses is cancelled *and
reaped* before the call returns, so no task outlives its owner. A cancellation of the caller
itself always propagates: it is never mistaken for the loser's cancellation and swallowed (the
bug of ``with suppress(CancelledError): await loser`` that this module replaces).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Final, TypeVar, final

__all__ = ["STOPPED", "Stopped", "first_of", "reap", "unless_set"]

T = TypeVar("T")


@final
class Stopped:
    """What :func:`unless_set` returns when the event won."""

    def __repr__(self) -> str:
        return "STOPPED"


STOPPED: Final = Stopped()


async def reap(*tasks: asyncio.Future[Any]) -> None:
    """Cancel ``tasks`` and wait for them to end; re-raise only a cancellation aimed at the caller."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            # The caller was cancelled while it reaped: that cancellation is not ours to drop.
            raise asyncio.CancelledError


async def unless_set(event: asyncio.Event, work: Awaitable[T]) -> T | Stopped:
    """The result of ``work``, or :data:`STOPPED` if ``event`` is set first (``work`` cancelled).

    An exception from ``work`` propagates as it is. Work that finished in the same instant as the
    event still gives its result: nothing done is thrown away.
    """
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    if event.is_set() and not task.done():
        await reap(task)
        return STOPPED
    stop = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await reap(task, stop)
        raise
    if not task.done():
        await reap(task, stop)
        if task.cancelled() or task.exception() is not None:
            return STOPPED
        return task.result()
    await reap(stop)
    return task.result()


async def first_of(*aws: Awaitable[Any]) -> None:
    """Wait until one of ``aws`` finishes, then cancel and reap the others. Errors of the losers are
    dropped; an error of the winner propagates."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await reap(*tasks)
        raise
    await reap(*(t for t in tasks if t not in done))
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
