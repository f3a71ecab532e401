"""The one helper for racing work against a stop: the loser is reaped, an outer cancel is never lost."""

from __future__ import annotations

import asyncio

import pytest

from actors.racing import STOPPED, first_of, unless_set


async def test_the_work_wins_and_its_result_comes_back() -> None:
    async def work() -> int:
        return 7

    assert await unless_set(asyncio.Event(), work()) == 7


async def test_the_event_wins_and_the_work_is_cancelled_and_reaped() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def work() -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    racer = asyncio.create_task(unless_set(stop, work()))
    await asyncio.sleep(0)
    stop.set()
    assert await racer is STOPPED
    assert cancelled.is_set()  # reaped before the call returned, not left running


async def test_an_error_of_the_work_propagates() -> None:
    async def work() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await unless_set(asyncio.Event(), work())


@pytest.mark.parametrize("racer", ["unless_set", "first_of"])
async def test_a_cancel_of_the_caller_propagates_even_while_the_loser_unwinds(racer: str) -> None:
    """The old idiom, ``with suppress(CancelledError): await loser``, swallowed exactly this cancel."""
    stop = asyncio.Event()
    unwinding = asyncio.Event()
    release = asyncio.Event()

    async def slow_to_unwind() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            unwinding.set()
            await release.wait()  # the loser takes its time to clean up
            raise

    async def race() -> None:
        if racer == "unless_set":
            await unless_set(stop, slow_to_unwind())
        else:
            await first_of(slow_to_unwind(), stop.wait())

    outer = asyncio.create_task(race())
    await asyncio.sleep(0)
    stop.set()
    await unwinding.wait()  # the race is over; the caller now waits for the loser to unwind
    outer.cancel()  # ...and is cancelled meanwhile
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert outer.cancelled()


async def test_first_of_cancels_every_loser() -> None:
    losers_cancelled = 0

    async def loser() -> None:
        nonlocal losers_cancelled
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            losers_cancelled += 1
            raise

    async def winner() -> None:
        return None

    await first_of(loser(), winner(), loser())
    assert losers_cancelled == 2
