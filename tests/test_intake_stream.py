"""Durable intake from the Redis stream, against a real Redis: persist before ack, once per id,
dead letters for what cannot run, reclaim from dead consumers, and backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from actors.clock import FakeClock
from leadlawk_daemon.intake.admission import Admission
from leadlawk_daemon.intake.events import EventPublisher, events_channel
from leadlawk_daemon.intake.stream import StreamIntake, stream_key
from leadlawk_daemon.intake.submit import submit_to_stream
from leadlawk_daemon.jobspec import JobSpec, JobSpecError
from tests.test_intake_events import next_events
from tests.test_intake_memory_store import MemoryStore
from tests.waiting import eventually

GROUP = "leadlawk"


class Handed:
    """The on_job callback: records what was handed on; can be held shut to apply backpressure."""

    def __init__(self) -> None:
        self.specs: list[JobSpec] = []
        self.open = asyncio.Event()
        self.open.set()
        self._changed = asyncio.Condition()
        self.called = asyncio.Event()

    async def __call__(self, spec: JobSpec) -> None:
        self.called.set()
        await self.open.wait()
        async with self._changed:
            self.specs.append(spec)
            self._changed.notify_all()

    async def wait_for_ids(self, *ids: str) -> None:
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(lambda: {s.id for s in self.specs} >= set(ids))


@pytest.fixture
async def events(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[EventPublisher]:
    async with EventPublisher(redis_client, redis_prefix) as publisher:
        yield publisher


@pytest.fixture
async def event_sub(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[Any]:
    async with redis_client.pubsub() as sub:
        await sub.subscribe(events_channel(redis_prefix))
        yield sub


def intake(
    redis: aioredis.Redis, prefix: str, store: MemoryStore, events: EventPublisher, on_job: Handed, **kw: Any
) -> StreamIntake:
    admission = Admission(store, store, events, max_bytes=65536)
    return StreamIntake(redis, prefix, admission, on_job, group=GROUP, block=0.05, **kw)


async def drive(clock: FakeClock, store: MemoryStore, done: Callable[[], bool]) -> None:
    """Move fake time past each backoff the intake waits out, until ``done()`` holds."""
    async with asyncio.timeout(30):
        while not done():
            sleeper = asyncio.create_task(clock.wait_for_sleepers(within=30))
            finished = asyncio.create_task(store.wait_for(done))
            await asyncio.wait({sleeper, finished}, return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, finished):
                task.cancel()
            await asyncio.gather(sleeper, finished, return_exceptions=True)
            if clock.sleepers:
                await clock.advance(120)


async def pending(redis: aioredis.Redis, prefix: str) -> int:
    return int((await redis.xpending(stream_key(prefix), GROUP))["pending"])


async def test_a_submitted_job_is_persisted_before_its_entry_is_acked(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher, event_sub: Any
) -> None:
    seen_pending: list[int] = []

    class Watching(MemoryStore):
        async def create_job(self, job_id: str, spec: Any, parent_id: str | None = None) -> bool:
            seen_pending.append(await pending(redis_client, redis_prefix))
            return await super().create_job(job_id, spec, parent_id)

    store, handed = Watching(), Handed()
    async with intake(redis_client, redis_prefix, store, events, handed):
        job_id = await submit_to_stream(redis_client, redis_prefix, {"query": "plumbers", "location": "Omaha, NE"})
        await handed.wait_for_ids(job_id)
        (accepted,) = await next_events(event_sub, 1)
    assert seen_pending == [1]  # the entry was still pending while its job was being persisted
    assert store.jobs[job_id][0]["query"] == "plumbers"
    assert [s.id for s in handed.specs] == [job_id]
    assert (accepted["type"], accepted["job_id"], accepted["source"]) == ("job.accepted", job_id, "stream")
    assert await pending(redis_client, redis_prefix) == 0
    assert await redis_client.xlen(stream_key(redis_prefix)) == 0


async def test_a_job_id_submitted_twice_runs_once(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher, event_sub: Any
) -> None:
    store, handed = MemoryStore(), Handed()
    async with intake(redis_client, redis_prefix, store, events, handed):
        for _ in range(2):
            await submit_to_stream(redis_client, redis_prefix, {"id": "once", "query": "roofers"})
        await submit_to_stream(redis_client, redis_prefix, {"id": "marker", "query": "x"})
        await handed.wait_for_ids("marker")
        got = await next_events(event_sub, 2)
    assert [s.id for s in handed.specs] == ["once", "marker"]
    assert store.create_calls == 3
    assert [(e["type"], e["job_id"]) for e in got] == [("job.accepted", "once"), ("job.accepted", "marker")]
    assert await pending(redis_client, redis_prefix) == 0


async def test_a_batch_persists_parent_and_children(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    store, handed = MemoryStore(), Handed()
    async with intake(redis_client, redis_prefix, store, events, handed):
        await submit_to_stream(redis_client, redis_prefix, {"id": "b", "queries": ["a", "c"], "location": "Omaha"})
        await handed.wait_for_ids("b")
    assert len(store.jobs) == 3
    assert store.jobs["b.0"] == ({**store.jobs["b.0"][0], "query": "a", "location": "Omaha"}, "b")
    assert store.jobs["b.1"][1] == "b"
    assert [s.id for s in handed.specs] == ["b"]


@pytest.mark.parametrize(
    ("fields", "reason_part"),
    [
        ({"job": b'{"query": "a", "limit": 900}'}, "limit: must be between 1 and 500 (got 900)"),
        ({"job": b"{not json"}, "the job spec is not valid JSON"),
        ({"job": b"\xff\xfe\x00"}, "not UTF-8"),
        ({"job": b"[]"}, "must be a JSON object (got array)"),
        ({"job": b'{"query": "' + b"a" * 70_000 + b'"}'}, "the limit is 65536 bytes"),
        ({"spec": b'{"query": "a"}'}, "stream entry has no 'job' field (fields: spec)"),
    ],
)
async def test_an_invalid_entry_is_dead_lettered_acked_and_announced(
    redis_client: aioredis.Redis,
    redis_prefix: str,
    events: EventPublisher,
    event_sub: Any,
    fields: dict[str, bytes],
    reason_part: str,
) -> None:
    store, handed = MemoryStore(), Handed()
    async with intake(redis_client, redis_prefix, store, events, handed):
        await redis_client.xadd(stream_key(redis_prefix), fields)  # type: ignore[arg-type]
        await store.wait_for(lambda: bool(store.dead_letters))
        (rejected,) = await next_events(event_sub, 1)
    (letter,) = store.dead_letters
    assert letter.kind == "message"
    assert reason_part in letter.reason
    assert len(letter.payload) < 70_000
    assert rejected["type"] == "job.rejected"
    assert reason_part in rejected["reason"]
    assert store.jobs == {}
    assert handed.specs == []
    assert await pending(redis_client, redis_prefix) == 0


async def test_a_rejected_spec_with_an_id_is_announced_under_that_id(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher, event_sub: Any
) -> None:
    store = MemoryStore()
    async with intake(redis_client, redis_prefix, store, events, Handed()):
        await redis_client.xadd(stream_key(redis_prefix), {"job": b'{"id": "mine", "query": 3, "limit": 0}'})
        (rejected,) = await next_events(event_sub, 1)
    assert rejected["job_id"] == "mine"
    assert rejected["problems"] == [
        "query: must be a string, not integer (got 3)",
        "limit: must be between 1 and 500 (got 0)",
    ]


async def test_entries_left_pending_by_a_dead_consumer_are_reclaimed(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    key = stream_key(redis_prefix)
    await redis_client.xgroup_create(key, GROUP, id="0", mkstream=True)
    job_id = await submit_to_stream(redis_client, redis_prefix, {"query": "orphaned"})
    # a daemon read it, then died before persisting it
    await redis_client.xreadgroup(GROUP, "dead-daemon", {key: ">"}, count=10)
    assert await pending(redis_client, redis_prefix) == 1
    store, handed = MemoryStore(), Handed()
    async with intake(redis_client, redis_prefix, store, events, handed, claim_idle=0.2) as live:
        await handed.wait_for_ids(job_id)
    assert live.consumer != "dead-daemon"
    assert [s.id for s in handed.specs] == [job_id]
    assert await pending(redis_client, redis_prefix) == 0


async def test_an_entry_delivered_too_often_by_crashing_daemons_is_dead_lettered(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    key = stream_key(redis_prefix)
    await redis_client.xgroup_create(key, GROUP, id="0", mkstream=True)
    await submit_to_stream(redis_client, redis_prefix, {"id": "poison", "query": "x"})
    await redis_client.xreadgroup(GROUP, "crashed-1", {key: ">"})
    for i in range(2, 6):  # four more daemons took it and died: five deliveries
        ids: list[Any] = [row["message_id"] for row in await redis_client.xpending_range(key, GROUP, "-", "+", 10)]
        await redis_client.xclaim(key, GROUP, f"crashed-{i}", min_idle_time=0, message_ids=ids)
    store = MemoryStore()
    async with intake(redis_client, redis_prefix, store, events, Handed(), claim_idle=0.05):
        await store.wait_for(lambda: bool(store.dead_letters))
    (letter,) = store.dead_letters
    assert letter.attempts == 6
    assert "not persisted after 6 deliveries" in letter.reason
    assert store.jobs == {}
    assert await pending(redis_client, redis_prefix) == 0


async def test_an_entry_whose_persistence_fails_five_times_is_dead_lettered(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    class JobsDown(MemoryStore):
        async def create_job(self, job_id: str, spec: Any, parent_id: str | None = None) -> bool:
            self.create_calls += 1
            raise RuntimeError("jobs table is locked")

    clock = FakeClock()
    store = JobsDown()
    async with intake(redis_client, redis_prefix, store, events, Handed(), clock=clock, max_deliveries=5):
        await submit_to_stream(redis_client, redis_prefix, {"id": "stuck", "query": "x"})
        await drive(clock, store, lambda: bool(store.dead_letters))
    (letter,) = store.dead_letters
    assert store.create_calls == 5
    assert letter.attempts == 5
    assert "not persisted after 5 deliveries: RuntimeError: jobs table is locked" in letter.reason
    assert await pending(redis_client, redis_prefix) == 0


async def test_nothing_is_lost_while_the_database_is_down(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    clock = FakeClock()
    store = MemoryStore(down=True)
    async with intake(redis_client, redis_prefix, store, events, Handed(), clock=clock):
        ids = [await submit_to_stream(redis_client, redis_prefix, {"query": f"q{i}"}) for i in range(3)]
        await clock.wait_for_sleepers()  # the first delivery failed; it backs off
        assert await pending(redis_client, redis_prefix) >= 1
        store.down = False
        await drive(clock, store, lambda: set(store.jobs) == set(ids))
    assert store.dead_letters == []
    assert await pending(redis_client, redis_prefix) == 0


async def test_a_full_pipeline_stops_the_reading(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    store, handed = MemoryStore(), Handed()
    handed.open.clear()
    async with intake(redis_client, redis_prefix, store, events, handed, batch=1):
        ids = [await submit_to_stream(redis_client, redis_prefix, {"query": f"q{i}"}) for i in range(3)]
        async with asyncio.timeout(10):
            await handed.called.wait()
        # the first job waits to be handed on; the others stay unread in the stream
        assert await redis_client.xlen(stream_key(redis_prefix)) == 2
        assert await pending(redis_client, redis_prefix) == 0
        assert len(store.jobs) == 1
        handed.open.set()
        await handed.wait_for_ids(*ids)
    assert sorted(store.jobs) == sorted(ids)


async def test_submit_refuses_a_bad_spec_before_it_reaches_redis(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    with pytest.raises(JobSpecError) as caught:
        await submit_to_stream(redis_client, redis_prefix, {"query": "a", "limit": -1})
    assert caught.value.problems == ["limit: must be between 1 and 500 (got -1)"]
    assert await redis_client.exists(stream_key(redis_prefix)) == 0
    job_id = await submit_to_stream(redis_client, redis_prefix, {"query": "a"})
    entries: Any = await redis_client.xrange(stream_key(redis_prefix))
    ((_, fields),) = entries
    assert orjson.loads(fields[b"job"])["id"] == job_id


def test_a_decoding_client_is_refused_with_a_clear_error(redis_prefix: str) -> None:
    client = aioredis.Redis(decode_responses=True)
    admission = Admission(MemoryStore(), MemoryStore(), _NoEvents(), max_bytes=10)
    with pytest.raises(ValueError, match="decode_responses=False"):
        StreamIntake(client, redis_prefix, admission, Handed())


class _NoEvents:
    def publish(self, type: Any, /, **context: Any) -> None:
        pass


class DiesBeforeAck(StreamIntake):
    """A daemon that persists a job, then dies before it acknowledges the entry."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.persisted = asyncio.Event()

    async def _ack(self, entry_id: bytes) -> None:
        self.persisted.set()
        await asyncio.Event().wait()  # frozen here until killed


async def test_an_entry_without_id_redelivered_after_a_crash_before_its_ack_is_one_job(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    store = MemoryStore()
    # No id: the spec's content and its entry id make one, the same on every delivery of that entry.
    await redis_client.xadd(stream_key(redis_prefix), {"job": b'{"query": "plumbers", "location": "Omaha, NE"}'})
    dying = DiesBeforeAck(
        redis_client, redis_prefix, Admission(store, store, events, max_bytes=65536), Handed(), group=GROUP, block=0.05
    )
    async with dying:
        async with asyncio.timeout(10):
            await dying.persisted.wait()
    assert len(store.jobs) == 1  # persisted, never acknowledged
    assert await pending(redis_client, redis_prefix) == 1
    handed = Handed()
    async with intake(redis_client, redis_prefix, store, events, handed, claim_idle=0.05):
        await eventually(lambda: store.create_calls == 2, what="the entry redelivered and admitted again")
    assert await pending(redis_client, redis_prefix) == 0  # acknowledged this time
    assert len(store.jobs) == 1  # the redelivery found its job: a duplicate, not a second job
    ((job_id, (spec, _)),) = store.jobs.items()
    assert job_id.startswith("c")
    assert len(job_id) == 33
    assert spec["query"] == "plumbers"
    assert handed.specs == []  # nothing new to hand on


async def test_identical_entries_without_id_are_two_jobs(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    store, handed = MemoryStore(), Handed()
    for _ in range(2):  # a client submitting the same search twice means it twice
        await redis_client.xadd(stream_key(redis_prefix), {"job": b'{"query": "roofers"}'})
    async with intake(redis_client, redis_prefix, store, events, handed):
        await store.wait_for(lambda: len(store.jobs) == 2)
    assert len({s.id for s in handed.specs}) == 2


async def test_a_job_refused_for_a_full_queue_waits_in_the_stream_and_runs_when_room_frees(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    clock = FakeClock()
    store, handed = MemoryStore(), Handed()
    await store.create_job("waiting-1", {"query": "a"})
    await store.create_job("waiting-2", {"query": "b"})
    admission = Admission(store, store, events, max_bytes=65536, queue_size=2)
    live = StreamIntake(
        redis_client, redis_prefix, admission, handed, group=GROUP, block=0.05, clock=clock, max_deliveries=2
    )
    async with live:
        job_id = await submit_to_stream(redis_client, redis_prefix, {"query": "third"})
        for _ in range(6):  # the queue stays full for a long while: more waits than max_deliveries
            await clock.wait_for_sleepers()
            await clock.advance(120)
        assert job_id not in store.jobs
        assert store.dead_letters == []  # refused for room is not a failed delivery
        assert await pending(redis_client, redis_prefix) == 1
        rows = await redis_client.xpending_range(stream_key(redis_prefix), GROUP, "-", "+", 10)
        assert rows[0]["consumer"] == live.consumer.encode()  # kept ours: no other daemon reclaims it
        assert rows[0]["times_delivered"] == 1  # kept without spending deliveries
        await store.dequeue("waiting-1")  # a daemon took a job: room for one
        await drive(clock, store, lambda: job_id in store.jobs)
        await handed.wait_for_ids(job_id)
    assert store.dead_letters == []
    assert await pending(redis_client, redis_prefix) == 0

