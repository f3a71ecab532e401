"""The actor base under a real supervisor: redelivery, dead letters, backpressure, hangs, chaos."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from actors.actor import Actor, ActorCell, ChaosCrash
from actors.clock import FakeClock
from actors.dead_letters import MemoryDeadLetters
from actors.mailbox import Mailbox, MailboxFull
from leadlawk_daemon.settings import ActorDefaults
from supervisors.supervisor import Supervisor
from tests.waiting import eventually


def settings(**overrides: object) -> ActorDefaults:
    base: dict[str, object] = {
        "mailbox_capacity": 100, "concurrency": 1, "max_attempts": 3, "handle_timeout": 30,
    }
    return ActorDefaults.model_validate(base | overrides)


class Recorder(Actor[int]):
    """Handles ints; crashes on the ones its test says are poison, every time or the first N times."""

    def __init__(self, cell: ActorCell[int], log: list[int], poison: Counter[int]) -> None:
        super().__init__(cell)
        self.log = log
        self.poison = poison

    async def handle(self, message: int) -> None:
        if self.poison[message] > 0:
            self.poison[message] -= 1
            raise ValueError(f"poison {message}")
        self.log.append(message)


Running = Callable[..., Awaitable[tuple[ActorCell[int], Supervisor]]]


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    tasks: list[tuple[Supervisor, asyncio.Task[None]]] = []

    async def start(cell: ActorCell[int], **kw: object) -> tuple[ActorCell[int], Supervisor]:
        sup = Supervisor("sut", [cell.child_spec()], max_restarts=100, period=1, **kw)  # type: ignore[arg-type]
        ready = asyncio.Event()
        tasks.append((sup, asyncio.create_task(sup.run(ready.set))))
        await asyncio.wait_for(ready.wait(), 5)
        return cell, sup

    yield start
    for sup, task in tasks:
        sup.request_stop()
        await asyncio.wait_for(task, 10)


async def test_a_crashing_message_is_redelivered_then_handled(running: Running) -> None:
    log: list[int] = []
    poison = Counter({3: 2})
    cell: ActorCell[int] = ActorCell("rec", lambda c: Recorder(c, log, poison), settings())
    await running(cell)
    for i in range(6):
        await cell.tell(i)
    await eventually(lambda: len(log) == 6)
    assert sorted(log) == list(range(6))  # none lost, none twice
    assert log.index(3) == 3  # redelivered first, ahead of later messages
    assert cell.stats.restarts == 2
    assert cell.stats.failed == 2
    assert cell.mailbox.depth == 0


async def test_a_poison_message_is_dead_lettered_after_its_attempts(running: Running) -> None:
    log: list[int] = []
    sink = MemoryDeadLetters()
    cell: ActorCell[int] = ActorCell(
        "rec", lambda c: Recorder(c, log, Counter({7: 99})), settings(max_attempts=3), dead_letters=sink
    )
    await running(cell)
    for i in (6, 7, 8):
        await cell.tell(i)
    await eventually(lambda: len(log) == 2 and len(sink.letters) == 1)
    letter = sink.letters[0]
    assert (letter.payload, letter.attempts, letter.source) == (7, 3, "rec")
    assert "ValueError: poison 7" in letter.reason
    assert log == [6, 8]
    assert cell.stats.dead_lettered == 1
    assert cell.mailbox.depth == 0


async def test_messages_in_hand_of_a_crashing_concurrent_actor_are_neither_lost_nor_duplicated(
    running: Running,
) -> None:
    handled: Counter[int] = Counter()
    gate = asyncio.Event()

    class Slow(Actor[int]):
        async def handle(self, message: int) -> None:
            if message == 0 and not gate.is_set():
                gate.set()
                raise RuntimeError("boom")
            await asyncio.sleep(0)
            handled[message] += 1

    cell: ActorCell[int] = ActorCell("slow", Slow, settings(concurrency=8, max_attempts=5))
    await running(cell)
    for i in range(200):
        await cell.tell(i)
    await eventually(lambda: sum(handled.values()) >= 200)
    assert handled == Counter(range(200))


async def test_backpressure_slows_a_fast_producer_to_the_consumers_pace() -> None:
    mailbox: Mailbox[int] = Mailbox("m", capacity=4, put_timeout=5)
    seen_depths: list[int] = []
    consumed: list[int] = []

    async def producer() -> None:
        for i in range(100):
            await mailbox.put(i)
            seen_depths.append(mailbox.depth)

    async def consumer() -> None:
        while len(consumed) < 100:
            envelope = await mailbox.get()
            await asyncio.sleep(0)
            consumed.append(envelope.message)
            mailbox.done(envelope)

    await asyncio.wait_for(asyncio.gather(producer(), consumer()), 10)
    assert consumed == list(range(100))
    assert max(seen_depths) <= 4
    assert seen_depths.count(4) > 50  # the producer spent its time waiting on a full mailbox


async def test_a_full_mailbox_raises_a_clear_error_after_its_timeout() -> None:
    clock = FakeClock()
    mailbox: Mailbox[int] = Mailbox("writer", capacity=1, put_timeout=30, clock=clock)
    await mailbox.put(1)
    put = asyncio.create_task(mailbox.put(2))
    await clock.wait_for_sleepers(1)
    await clock.advance(29.9)
    assert not put.done()
    await clock.advance(0.2)
    with pytest.raises(MailboxFull, match=r"mailbox of actor writer stayed full \(capacity 1\) for 30s"):
        await put
    assert mailbox.depth == 1


async def test_a_hung_handler_fails_its_own_message_only_and_its_sibling_finishes(running: Running) -> None:
    clock = FakeClock()
    log: list[int] = []
    hang_once = asyncio.Event()
    sibling_started = asyncio.Event()
    sibling_may_finish = asyncio.Event()

    class Hanger(Actor[int]):
        async def handle(self, message: int) -> None:
            if message == 1 and not hang_once.is_set():
                hang_once.set()
                await asyncio.Event().wait()
            if message == 2:
                sibling_started.set()
                await sibling_may_finish.wait()
            log.append(message)

    cell: ActorCell[int] = ActorCell("hanger", Hanger, settings(handle_timeout=10, concurrency=2), clock=clock)
    await running(cell, clock=clock)
    await cell.tell(1)
    await hang_once.wait()
    await clock.advance(5)
    await cell.tell(2)
    await sibling_started.wait()
    assert cell.stats.failed == 0
    await clock.advance(6)  # message 1 has run 11 s (cut); message 2 only 6 s
    await eventually(lambda: log == [1])  # cut, counted, and redelivered to the same actor
    assert cell.stats.failed == 1
    assert cell.stats.restarts == 0  # nothing else was cancelled with it
    sibling_may_finish.set()
    await eventually(lambda: log == [1, 2])
    assert cell.stats.failed == 1


async def test_a_hung_handler_that_ignores_cancellation_restarts_the_actor(running: Running) -> None:
    clock = FakeClock()
    log: list[int] = []
    stubborn_once = asyncio.Event()

    class Stubborn(Actor[int]):
        async def handle(self, message: int) -> None:
            if message == 1 and not stubborn_once.is_set():
                stubborn_once.set()
                # A handler that swallows its cancellation cannot be trusted with the next message.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()
                await asyncio.Event().wait()  # the restart's own cancellation ends it
            log.append(message)

    cell: ActorCell[int] = ActorCell("stubborn", Stubborn, settings(handle_timeout=10), clock=clock)
    await running(cell, clock=clock)
    await cell.tell(1)
    await stubborn_once.wait()
    await clock.advance(11)
    await eventually(lambda: cell.stats.restarts == 1)
    await eventually(lambda: log == [1])


async def test_chaos_crash_when_idle_restarts_at_once(running: Running) -> None:
    log: list[int] = []
    cell: ActorCell[int] = ActorCell("rec", lambda c: Recorder(c, log, Counter()), settings())
    _, sup = await running(cell)
    first = cell.current
    cell.inject_crash()
    await eventually(lambda: cell.current is not first and sup.running == ["rec"])
    await cell.tell(5)
    await eventually(lambda: log == [5])
    assert cell.stats.restarts == 1


async def test_chaos_crash_while_busy_fails_the_next_message_which_is_then_redelivered(
    running: Running,
) -> None:
    log: list[int] = []
    cell: ActorCell[int] = ActorCell("rec", lambda c: Recorder(c, log, Counter()), settings())
    await running(cell)
    cell.chaos_crash = True  # as inject_crash does, without waking the idle check first
    await cell.tell(9)
    await eventually(lambda: log == [9])
    assert cell.stats.failed == 1
    assert isinstance(ChaosCrash("x"), Exception)


async def test_stopping_a_draining_actor_finishes_its_mailbox(running: Running) -> None:
    log: list[int] = []
    release = asyncio.Event()

    class Writer(Actor[int]):
        drain_on_stop = True

        async def handle(self, message: int) -> None:
            await release.wait()
            log.append(message)

    cell: ActorCell[int] = ActorCell("writer", Writer, settings())
    sup = Supervisor("sut", [cell.child_spec(shutdown_timeout=10)])
    ready = asyncio.Event()
    task = asyncio.create_task(sup.run(ready.set))
    await ready.wait()
    for i in range(5):
        await cell.tell(i)
    sup.request_stop()
    release.set()
    await asyncio.wait_for(task, 10)
    assert log == [0, 1, 2, 3, 4]
