"""The writer actor on the fake clock, with the real SQLite store: flush on size, on time, and
nothing lost when the writer crashes between accepting rows and writing them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.actor import ActorCell
from actors.clock import FakeClock
from actors.write_buffer import WriteBuffer
from actors.writer import Writer, WriterDeps
from leadlawk_daemon.jobs.state import JobState
from leadlawk_daemon.jobspec import parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.messages import LeadScraped, WriteLead, WriterMessage
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.qualify import Filters
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import ActorDefaults
from leadlawk_daemon.store import Store, open_store
from supervisors.supervisor import Supervisor
from tests.waiting import eventually

FLUSH_INTERVAL = 60.0


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    def publish(self, type: str, /, **context: Any) -> None:
        self.items.append((type, context))
        self.changed.set()

    def written(self) -> int:
        return sum(c["count"] for t, c in self.items if t == "lead.written")


class Harness:
    def __init__(self, store: Store, clock: FakeClock, batch_size: int) -> None:
        self.store = store
        self.clock = clock
        self.events = Events()
        self.buffer = WriteBuffer(max_pending=100, batch_size=batch_size)
        breaker = CircuitBreaker("database", failure_threshold=3, reset_timeout=2, call_timeout=None, clock=clock)
        deps = WriterDeps(
            store, self.buffer, breaker, FLUSH_INTERVAL, 0.1, 1.0, Metrics(process=False), self.events
        )
        settings = ActorDefaults(mailbox_capacity=50, concurrency=1, max_attempts=3, handle_timeout=3600)
        self.cell: ActorCell[WriterMessage] = ActorCell("writer", lambda c: Writer(c, deps), settings, clock=clock)
        spec = parse_job_spec({"id": "job1", "query": "plumbers", "pagespeed": {"enabled": False}}, 65536)
        self.run = JobState("job1", spec, Filters())

    async def send(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            listing = Listing(f"Biz {n}", place_id=f"ChIJ{n:06d}")
            await self.cell.tell(WriteLead(self.run, listing, n))
            self.run.report(LeadScraped(listing, n))


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = FakeClock()
    async with open_store(f"sqlite:///{tmp_path / 'w.db'}", clock=clock, migrate=True) as store:
        await store.create_job("job1", {"query": "plumbers"})
        h = Harness(store, clock, batch_size=3)
        sup = Supervisor("w", [h.cell.child_spec()], max_restarts=10, period=1, clock=clock)
        ready = asyncio.Event()
        task = asyncio.create_task(sup.run(ready.set))
        await asyncio.wait_for(ready.wait(), 5)
        yield h
        sup.request_stop(clock.monotonic() + 5)
        while not task.done():
            await clock.advance(1)
            await asyncio.sleep(0)
        await task


async def test_a_full_batch_is_written_at_once_and_a_partial_one_after_the_interval(harness: Harness) -> None:
    await harness.send(1, 4)
    await eventually(lambda: harness.events.written() == 3, 10)
    assert len(await harness.store.job_place_ids("job1")) == 3
    assert len(harness.buffer) == 1  # the fourth waits for its batch to fill, or for time
    await harness.clock.advance(FLUSH_INTERVAL - 1)
    assert harness.events.written() == 3
    await harness.clock.advance(2)
    await eventually(lambda: harness.events.written() == 4, 10)
    assert await harness.store.job_place_ids("job1") == {f"ChIJ{n:06d}" for n in range(1, 5)}
    assert not harness.run.unwritten
    assert harness.run.counters()["written"] == 4


async def test_a_writer_crash_loses_none_of_the_rows_it_accepted(harness: Harness) -> None:
    await harness.send(1, 2)
    await eventually(lambda: len(harness.buffer) == 2 and harness.cell.mailbox.depth == 0, 10)
    harness.cell.inject_crash()
    await eventually(lambda: harness.cell.stats.restarts == 1 and harness.cell.current is not None, 10)
    await harness.send(3, 2)  # 4 pending: one batch of 3 goes at once, the last after the interval
    await eventually(lambda: harness.events.written() == 3, 10)
    await harness.clock.advance(FLUSH_INTERVAL + 1)
    await eventually(lambda: harness.events.written() == 4, 10)
    rows = await harness.store.lead_rows_for_export("job1")
    assert sorted(r["rank"] for r in rows) == [1, 2, 3, 4]
    assert not harness.run.unwritten
