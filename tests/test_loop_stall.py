"""The loop-stall warning: a callback that holds the event loop past the threshold is logged once,
naming its task and showing the blocking function in its stack; a loop that answers logs nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from actors.clock import FakeClock
from leadlawk_daemon.loop_stall import LoopStallWatch
from tests.waiting import eventually


def _loop_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "leadlawk.loop"]


def read_the_page_on_the_loop() -> None:
    time.sleep(0.4)  # the stall under test: a blocking call, made on the loop


def parse_the_page_on_the_loop() -> None:
    started = time.thread_time()
    while time.thread_time() - started < 0.4:  # the stall under test: 0.4 s of the loop's own CPU
        pass


async def handle_the_lead(hold: Callable[[], None]) -> None:
    hold()


@pytest.mark.parametrize("hold", [read_the_page_on_the_loop, parse_the_page_on_the_loop])
async def test_a_blocking_callback_is_logged_with_its_task_and_stack(
    caplog: pytest.LogCaptureFixture, hold: Callable[[], None]
) -> None:
    caplog.set_level(logging.INFO, logger="leadlawk.loop")
    async with LoopStallWatch(0.25):
        await asyncio.create_task(handle_the_lead(hold), name="site/worker-7")
        await eventually(lambda: any(r.levelno == logging.INFO for r in _loop_records(caplog)),
                         what="the loop said it answered again")
    warnings = [r for r in _loop_records(caplog) if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per stall"
    stall = warnings[0]
    assert stall.task == "site/worker-7"  # type: ignore[attr-defined]
    assert stall.coroutine == "handle_the_lead"  # type: ignore[attr-defined]
    stack: str = stall.stack  # type: ignore[attr-defined]
    # Innermost last: the blocking call, in the function that made it, called by the task's coroutine.
    lines = stack.splitlines()
    assert "# the stall under test" in lines[-1]
    assert f"in {hold.__name__}" in lines[-2]
    assert "in handle_the_lead" in lines[-4]
    assert stall.stalled_s > 0.25  # type: ignore[attr-defined]
    answered = [r for r in _loop_records(caplog) if r.levelno == logging.INFO]
    assert answered[0].stalled_s >= 0.4  # type: ignore[attr-defined]


async def test_a_loop_that_answers_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="leadlawk.loop")
    watch = LoopStallWatch(0.25)
    async with watch:
        # Half a second of ordinary work: short callbacks, timers, tasks coming and going.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            await asyncio.gather(*(asyncio.sleep(0.001) for _ in range(20)))
        beats = watch.beats
    assert beats >= 5, "the watch ran"
    assert _loop_records(caplog) == []


async def test_the_threshold_on_an_injected_clock(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="leadlawk.loop")
    clock = FakeClock()
    watch = LoopStallWatch(0.25, clock=clock, starvation_check=False)  # its CPU is not on the fake clock
    watch.attach()  # this thread runs the loop, and this test's task is the callback that holds it
    await clock.advance(0.25)
    assert not watch.check(), "at the threshold: not yet"
    await clock.advance(0.01)
    assert watch.check()
    stall = _loop_records(caplog)[-1]
    assert stall.levelno == logging.WARNING
    assert stall.task == asyncio.current_task().get_name()  # type: ignore[attr-defined, union-attr]
    assert "test_the_threshold_on_an_injected_clock" in stall.stack  # type: ignore[attr-defined]
    await clock.advance(1.0)
    assert not watch.check(), "one warning per stall, however long"
    watch.beat()
    assert _loop_records(caplog)[-1].getMessage() == "event loop answered again"
    assert _loop_records(caplog)[-1].stalled_s == pytest.approx(1.26)  # type: ignore[attr-defined]
    await clock.advance(0.2)
    assert not watch.check()
    await clock.advance(0.1)
    assert watch.check(), "the next stall is a new one"
    assert len([r for r in _loop_records(caplog) if r.levelno == logging.WARNING]) == 2
