"""Supervisor timing on an injected clock: backoff, stable-run reset, stop timeouts, nesting."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from actors.clock import FakeClock
from supervisors.backoff import RestartBackoff
from supervisors.events import EventKind, SupervisorEvent
from supervisors.spec import Child, ChildSpec, Restart, Started, Strategy
from supervisors.supervisor import Supervisor, SupervisorGaveUp, SupervisorStartError
from tests.supervision_harness import Crash, Journal, controlled_specs


async def _start(sup: Supervisor) -> asyncio.Task[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(sup.run(ready.set))
    await asyncio.wait_for(ready.wait(), 5)
    return task


async def _crash(sup: Supervisor, journal: Journal, child: str) -> None:
    task = sup.task_of(child)
    assert task is not None
    journal.live[child].finish(crash=True)
    await asyncio.wait({task})


async def test_backoff_doubles_up_to_its_ceiling_and_resets_after_a_stable_run() -> None:
    clock = FakeClock()
    journal = Journal()
    delays: list[float] = []
    sup = Supervisor(
        "sut",
        controlled_specs([Restart.PERMANENT], journal),
        max_restarts=100,
        period=1000,
        backoff=RestartBackoff(minimum=1.0, maximum=5.0, jitter=0.0, reset_after=30.0),
        clock=clock,
        listener=lambda e: delays.append(e.delay) if e.kind is EventKind.RESTARTING else None,
    )
    task = await _start(sup)
    for expected in (1.0, 2.0, 4.0, 5.0, 5.0):
        await _crash(sup, journal, "c0")
        await sup.wait_settled()
        assert sup.running == []  # waiting out the backoff, not restarted early
        await clock.advance(expected - 0.01)
        await sup.wait_settled()
        assert sup.running == []
        await clock.advance(0.01)
        await sup.wait_settled()
        assert sup.running == ["c0"]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    await clock.advance(30.0)  # a stable run: the next crash starts over from the minimum
    await _crash(sup, journal, "c0")
    await sup.wait_settled()
    assert delays[-1] == 1.0
    sup.request_stop()
    await clock.advance(1.0)
    await asyncio.wait_for(task, 5)


def test_backoff_jitter_stays_within_its_factor() -> None:
    backoff = RestartBackoff(minimum=1.0, maximum=60.0, jitter=0.5)
    rng = random.Random(7)
    samples = [backoff.delay(3, rng) for _ in range(1000)]
    assert min(samples) >= 8.0
    assert max(samples) <= 12.0
    assert len({round(s, 3) for s in samples}) > 100  # it really varies


async def test_children_start_in_order_each_ready_before_the_next() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    class Slow:
        def __init__(self, name: str) -> None:
            self.name = name

        async def run(self, started: Started) -> None:
            order.append(f"{self.name} begins")
            if self.name == "a":
                await gate.wait()
            order.append(f"{self.name} ready")
            started()
            await asyncio.Event().wait()

    sup = Supervisor("sut", [ChildSpec("a", lambda: Slow("a")), ChildSpec("b", lambda: Slow("b"))])
    ready = asyncio.Event()
    task = asyncio.create_task(sup.run(ready.set))
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["a begins"]
    gate.set()
    await asyncio.wait_for(ready.wait(), 5)
    assert order == ["a begins", "a ready", "b begins", "b ready"]
    sup.request_stop()
    await asyncio.wait_for(task, 5)


async def test_a_child_ignoring_cancellation_cannot_stretch_the_stop_past_its_timeout() -> None:
    clock = FakeClock()

    released = False

    class Stubborn:
        async def run(self, started: Started) -> None:
            started()
            while not released:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    continue

    events: list[SupervisorEvent] = []
    sup = Supervisor(
        "sut", [ChildSpec("stubborn", Stubborn, shutdown_timeout=2.0)], clock=clock, listener=events.append
    )
    task = await _start(sup)
    sup.request_stop()
    await clock.wait_for_sleepers(1)
    await clock.advance(2.0)
    await asyncio.wait_for(task, 5)
    assert [e.kind for e in events][-2:] == [EventKind.ABANDONED, EventKind.STOPPED]
    assert sup.abandoned == 1
    # Still referenced by the supervisor, not leaked: let it go, and it is reaped.
    stubborn = next(t for t in asyncio.all_tasks() if t.get_name() == "sut/stubborn")
    released = True
    stubborn.cancel()
    await asyncio.wait({stubborn})
    assert sup.abandoned == 0


async def test_stop_deadline_bounds_the_whole_stop() -> None:
    clock = FakeClock()
    journal = Journal()

    class Slow:
        def __init__(self, child: str) -> None:
            self.child = child

        async def run(self, started: Started) -> None:
            started()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                journal.entries.append(("stop", self.child))
                raise

    def slow(name: str) -> Callable[[], Child]:
        return lambda: Slow(name)

    specs = [ChildSpec(f"c{i}", slow(f"c{i}"), shutdown_timeout=10) for i in range(3)]
    sup = Supervisor("sut", specs, clock=clock)
    task = await _start(sup)
    sup.request_stop(deadline=clock.monotonic() + 1.0)
    await asyncio.wait_for(task, 5)
    assert journal.entries == [("stop", "c2"), ("stop", "c1"), ("stop", "c0")]


async def test_a_nested_supervisor_that_gives_up_is_restarted_by_its_parent() -> None:
    clock = FakeClock()
    journal = Journal()
    parent_events: list[SupervisorEvent] = []

    def inner() -> Supervisor:
        return Supervisor(
            "inner", controlled_specs([Restart.PERMANENT], journal), max_restarts=1, clock=clock
        )

    parent = Supervisor(
        "root",
        [ChildSpec("inner", inner, shutdown_timeout=30)],
        max_restarts=5,
        clock=clock,
        listener=parent_events.append,
    )
    task = await _start(parent)
    first_inner = parent.task_of("inner")
    inner_sup = parent.instance_of("inner")
    assert isinstance(inner_sup, Supervisor)
    await _crash(inner_sup, journal, "c0")
    await inner_sup.wait_settled()
    await _crash(inner_sup, journal, "c0")  # the second crash within the period: the inner one gives up
    assert first_inner is not None
    await asyncio.wait({first_inner})
    await parent.wait_settled()
    exits = [e for e in parent_events if e.kind is EventKind.EXITED]
    assert isinstance(exits[-1].reason, SupervisorGaveUp)
    assert parent.running == ["inner"]
    assert parent.task_of("inner") is not first_inner
    parent.request_stop()
    await asyncio.wait_for(task, 5)


async def test_intensity_exceeded_at_the_root_stops_everything_and_fails() -> None:
    journal = Journal()
    sup = Supervisor("root", controlled_specs([Restart.PERMANENT] * 3, journal), max_restarts=0)
    task = await _start(sup)
    await _crash(sup, journal, "c1")
    with pytest.raises(SupervisorGaveUp, match="root gave up"):
        await asyncio.wait_for(task, 5)
    assert journal.entries[-2:] == [("stop", "c2"), ("stop", "c0")]
    assert sup.gave_up is not None


async def test_a_child_failing_to_restart_counts_as_a_crash_and_is_retried() -> None:
    journal = Journal()
    failures = iter([False, True, True, False])

    from tests.supervision_harness import ControlledChild

    sup = Supervisor(
        "sut",
        [ChildSpec("c0", lambda: ControlledChild("c0", journal, fail_start=lambda: next(failures)))],
        max_restarts=5,
    )
    task = await _start(sup)
    await _crash(sup, journal, "c0")
    await sup.wait_settled()
    assert sup.running == ["c0"]
    sup.request_stop()
    await asyncio.wait_for(task, 5)


async def test_initial_start_failure_fails_the_supervisor_after_stopping_started_children() -> None:
    journal = Journal()
    from tests.supervision_harness import ControlledChild

    specs = [
        *controlled_specs([Restart.PERMANENT], journal),
        ChildSpec("bad", lambda: ControlledChild("bad", journal, fail_start=lambda: True)),
    ]
    sup = Supervisor("sut", specs)
    with pytest.raises(SupervisorStartError, match="bad failed to start"):
        await sup.run(lambda: None)
    assert journal.entries == [("start", "c0"), ("stop", "c0")]


async def test_rest_for_one_leaves_earlier_children_alone() -> None:
    journal = Journal()
    sup = Supervisor(
        "sut", controlled_specs([Restart.PERMANENT] * 3, journal), strategy=Strategy.REST_FOR_ONE
    )
    task = await _start(sup)
    first = journal.live["c0"]
    await _crash(sup, journal, "c1")
    await sup.wait_settled()
    assert journal.live["c0"] is first
    assert journal.entries[3:] == [("stop", "c2"), ("start", "c1"), ("start", "c2")]
    sup.request_stop()
    await asyncio.wait_for(task, 5)
    assert isinstance(Crash("x"), Exception)
