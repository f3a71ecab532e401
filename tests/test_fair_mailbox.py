"""The fair mailbox: one lane per job served round-robin, each lane's share of the room, crash order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from actors.actor import Actor, ActorCell
from actors.clock import FakeClock
from actors.fair_gate import FairGate
from actors.fair_mailbox import FairMailbox
from actors.mailbox import Mailbox, MailboxFull
from leadlawk_daemon.settings import ActorDefaults
from tests.waiting import eventually

Message = tuple[str, int]  # (job, index)


def fair(capacity: int = 2000, lane_capacity: int | None = None) -> FairMailbox[Message]:
    return FairMailbox("enricher", capacity, lambda m: m[0], clock=FakeClock(), lane_capacity=lane_capacity)


def fill(mailbox: Mailbox[Message], job: str, messages: list[Message]) -> None:
    """What a job driver does: as many of its messages as its lane has room for."""
    while messages and mailbox.has_room(job):
        mailbox.put_nowait(messages.pop(0))


def served_until_done(mailbox: Mailbox[Message], job: str, count: int, refill: Callable[[], None]) -> int:
    """Messages the consumer handles (one at a time, each finished at once) until ``job`` has had
    ``count``: the consumer is the clock here, no sleeps."""
    handled = seen = 0
    while seen < count:
        envelope = mailbox.get_nowait()
        assert envelope is not None, "the mailbox ran dry before the small job was served"
        handled += 1
        seen += envelope.message[0] == job
        mailbox.done(envelope)
        refill()
    return handled


@pytest.mark.parametrize("kind", ["fair", "fifo"])
def test_a_small_job_behind_a_big_one_is_served_within_twice_its_idle_time(kind: str) -> None:
    mailbox: Mailbox[Message] = fair() if kind == "fair" else Mailbox("enricher", 2000, clock=FakeClock())
    big = [("big", i) for i in range(5000)]
    small = [("small", i) for i in range(20)]
    fill(mailbox, "big", big)
    fill(mailbox, "small", small)
    # The big job's driver keeps its lane topped up as the consumer frees room.
    def drivers() -> None:
        fill(mailbox, "big", big)
        fill(mailbox, "small", small)

    handled = served_until_done(mailbox, "small", 20, drivers)
    if kind == "fair":
        assert not small
        assert handled <= 2 * 20  # idle, it would take 20
    else:
        assert handled > 1000  # the plain FIFO: behind everything the big job queued first


def test_a_lane_alone_fills_half_the_room_and_shares_it_when_others_come() -> None:
    mailbox = fair(capacity=12)
    fill(mailbox, "a", [("a", i) for i in range(100)])
    assert mailbox.lanes == {"a": 6}
    assert mailbox.has_room("b")
    assert not mailbox.has_room("a")
    fill(mailbox, "b", [("b", i) for i in range(100)])
    assert mailbox.lanes == {"a": 6, "b": 4}  # b's share beside a: 12 // 3
    assert mailbox.has_room("c")
    assert mailbox.depth <= mailbox.capacity


async def test_a_sender_waiting_on_a_full_lane_never_blocks_another_lanes_sender() -> None:
    mailbox = fair(capacity=4, lane_capacity=2)
    mailbox.put_nowait(("big", 0))
    mailbox.put_nowait(("big", 1))
    big_sender = asyncio.create_task(mailbox.put(("big", 2)))  # waits: its lane is at its share
    await asyncio.sleep(0)
    assert not big_sender.done()
    await asyncio.wait_for(mailbox.put(("small", 0)), timeout=1)  # room for the small lane: no wait
    mailbox.put_nowait(("small", 1))
    small_sender = asyncio.create_task(mailbox.put(("small", 2)))  # the mailbox is full now
    await asyncio.sleep(0)
    # The first freed slot is the small lane's: its sender must get it, though the big one waited first.
    envelope = mailbox.get_nowait()
    assert envelope is not None
    assert envelope.message == ("big", 0)
    taken_small = mailbox.get_nowait()
    assert taken_small is not None
    assert taken_small.message == ("small", 0)
    mailbox.done(taken_small)
    await asyncio.wait_for(small_sender, timeout=1)
    assert not big_sender.done()
    mailbox.done(envelope)
    await asyncio.wait_for(big_sender, timeout=1)
    assert mailbox.lanes == {"big": 2, "small": 2}


def test_redelivered_messages_keep_their_lanes_order_and_are_delivered_next() -> None:
    mailbox = fair()
    for i in range(3):
        mailbox.put_nowait(("a", i))
        mailbox.put_nowait(("b", i))
    taken = [mailbox.get_nowait() for _ in range(4)]  # a0 b0 a1 b1, all in hand (concurrency 4)
    assert [e.message for e in taken if e is not None] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    # A crash puts every message in hand back, in whatever order the workers unwind.
    for envelope in (taken[2], taken[0], taken[3]):
        assert envelope is not None
        mailbox.redeliver(envelope)
    assert taken[1] is not None
    mailbox.done(taken[1])
    order = []
    while (envelope := mailbox.get_nowait()) is not None:
        order.append(envelope.message)
        mailbox.done(envelope)
    assert [m for m in order if m[0] == "a"] == [("a", 0), ("a", 1), ("a", 2)]
    assert [m for m in order if m[0] == "b"] == [("b", 1), ("b", 2)]
    assert order[0][0] == "b"  # the lane put back last is served first, as the plain mailbox does
    assert (mailbox.depth, mailbox.waiting, mailbox.lanes) == (0, 0, {})


def test_a_full_mailbox_refuses_at_once_without_waiting() -> None:
    mailbox = fair(capacity=2, lane_capacity=2)
    mailbox.put_nowait(("a", 0))
    mailbox.put_nowait(("b", 0))
    with pytest.raises(MailboxFull):
        mailbox.put_nowait(("c", 0))


class Flaky(Actor[Message]):
    """Crashes on the first delivery of ("a", 1); records every message it handles."""

    async def handle(self, message: Message) -> None:
        if message == ("a", 1) and ("a", 1, "crashed") not in crashes:
            crashes.add(("a", 1, "crashed"))
            raise RuntimeError("boom")
        order.append(message)


crashes: set[tuple[str, int, str]] = set()
order: list[Message] = []


async def run_once(cell: ActorCell[Message]) -> None:
    """One actor instance, until it crashes or its mailbox is empty."""
    actor = cell.spawn()
    run = asyncio.create_task(actor.run(lambda: None))
    await eventually(lambda: run.done() or cell.mailbox.depth == 0, what="the actor crashed or finished")
    if not run.done():
        actor.request_stop()
    await asyncio.gather(run, return_exceptions=True)


async def test_an_actor_on_a_fair_mailbox_redelivers_after_a_crash_in_lane_order() -> None:
    crashes.clear()
    order.clear()
    cell: ActorCell[Message] = ActorCell(
        "enricher", Flaky, ActorDefaults(mailbox_capacity=100, concurrency=1, max_attempts=3, handle_timeout=60),
        lane_of=lambda m: m[0],
    )
    assert isinstance(cell.mailbox, FairMailbox)
    for i in range(3):
        await cell.tell(("a", i))
        await cell.tell(("b", i))
    for _ in range(2):  # the first run crashes on ("a", 1); the restarted one finishes
        await run_once(cell)
    assert [m for m in order if m[0] == "a"] == [("a", 0), ("a", 1), ("a", 2)]
    assert [m for m in order if m[0] == "b"] == [("b", 0), ("b", 1), ("b", 2)]
    assert cell.mailbox.depth == 0


async def test_the_gate_serves_jobs_in_turn_not_in_arrival_order() -> None:
    room = [2]
    gate = FairGate(lambda: room[0])
    granted: list[str] = []
    release = {name: asyncio.Event() for name in ("b0", "b1", "b2", "b3", "b4", "s0", "s1")}

    async def worker(job: str, name: str) -> None:
        async with gate.turn(job):
            granted.append(name)
            await release[name].wait()

    tasks = [asyncio.create_task(worker("big", f"b{i}")) for i in range(5)]
    await eventually(lambda: gate.waiting == {"big": 3}, what="big's leads queued")
    tasks += [asyncio.create_task(worker("small", f"s{i}")) for i in range(2)]
    await eventually(lambda: gate.waiting == {"big": 3, "small": 2}, what="small's leads queued")
    assert granted == ["b0", "b1"]
    for name in ("b0", "b1", "b2", "s0"):
        release[name].set()
        await eventually(lambda: len(granted) >= 3, what="a place granted")
    await eventually(lambda: len(granted) == 6, what="grants")
    # The small job's first lead is let in after one of the big job's, not after all three.
    assert granted == ["b0", "b1", "b2", "s0", "b3", "s1"]
    for event in release.values():
        event.set()
    await asyncio.gather(*tasks)
    assert (gate.held, gate.waiting) == (0, {})


async def test_a_cancelled_waiter_leaves_its_line() -> None:
    gate = FairGate(lambda: 1)
    hold = asyncio.Event()
    inside: list[str] = []

    async def worker(job: str) -> None:
        async with gate.turn(job):
            inside.append(job)
            await hold.wait()

    first = asyncio.create_task(worker("a"))
    await eventually(lambda: gate.held == 1, what="a inside")
    gone = asyncio.create_task(worker("b"))
    then = asyncio.create_task(worker("c"))
    await eventually(lambda: gate.waiting == {"b": 1, "c": 1}, what="b and c waiting")
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert gate.waiting == {"c": 1}
    hold.set()
    await asyncio.gather(first, then)
    assert inside == ["a", "c"]
    assert (gate.held, gate.waiting) == (0, {})
