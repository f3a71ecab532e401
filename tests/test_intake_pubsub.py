"""Intake from the pub/sub channel, against a real Redis: each message claimed and copied to the
durable stream in one atomic step, so it runs once and no daemon's death or Redis error loses it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from actors.clock import FakeClock
from leadlawk_daemon.intake.admission import Admission
from leadlawk_daemon.intake.events import EventPublisher
from leadlawk_daemon.intake.pubsub import PubSubIntake, claim_key, jobs_channel
from leadlawk_daemon.intake.stream import StreamIntake, stream_key
from tests.conftest import REDIS_TEST_URL
from tests.test_intake_events import kill_clients_named, next_events
from tests.test_intake_memory_store import MemoryStore
from tests.test_intake_stream import Handed, drive
from tests.test_intake_stream import event_sub as event_sub  # fixtures shared with the stream tests
from tests.test_intake_stream import events as events
from tests.waiting import eventually


def pubsub_intake(redis: aioredis.Redis, prefix: str, **kw: Any) -> PubSubIntake:
    return PubSubIntake(redis, prefix, poll=0.1, **kw)


@contextlib.asynccontextmanager
async def daemon(
    redis: aioredis.Redis, prefix: str, store: MemoryStore, events: EventPublisher, handed: Handed, **kw: Any
) -> AsyncIterator[PubSubIntake]:
    """One daemon's intake: pub/sub hands messages to the stream, the stream admits them."""
    admission = Admission(store, store, events, max_bytes=65536)
    async with (
        pubsub_intake(redis, prefix) as listening,
        StreamIntake(redis, prefix, admission, handed, block=0.05, **kw),
    ):
        yield listening


async def wait_for_subscribers(redis: aioredis.Redis, channel: str, count: int) -> None:
    """Poll PUBSUB NUMSUB until ``count`` clients listen: a message published earlier is lost."""

    async def listening() -> bool:
        ((_, subscribers),) = await redis.pubsub_numsub(channel)
        return int(subscribers) >= count

    await eventually(listening, 10, f"{count} subscribers on {channel}", every=0.01)


async def test_a_published_job_is_persisted_handed_on_and_announced(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher, event_sub: Any
) -> None:
    store, handed = MemoryStore(), Handed()
    async with daemon(redis_client, redis_prefix, store, events, handed):
        await wait_for_subscribers(redis_client, jobs_channel(redis_prefix), 1)
        await redis_client.publish(jobs_channel(redis_prefix), b'{"id": "ps-1", "query": "plumbers"}')
        await handed.wait_for_ids("ps-1")
        (accepted,) = await next_events(event_sub, 1)
    assert store.jobs["ps-1"][0]["query"] == "plumbers"
    assert (accepted["type"], accepted["job_id"], accepted["source"]) == ("job.accepted", "ps-1", "pubsub")
    assert await redis_client.xlen(stream_key(redis_prefix)) == 0  # acked and deleted once persisted


async def test_an_invalid_message_is_dead_lettered_and_announced(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher, event_sub: Any
) -> None:
    store, handed = MemoryStore(), Handed()
    async with daemon(redis_client, redis_prefix, store, events, handed):
        await wait_for_subscribers(redis_client, jobs_channel(redis_prefix), 1)
        await redis_client.publish(jobs_channel(redis_prefix), b'{"query": "a", "website": "maybe", "x": 1}')
        await store.wait_for(lambda: bool(store.dead_letters))
        (rejected,) = await next_events(event_sub, 1)
    (letter,) = store.dead_letters
    assert letter.payload == '{"query": "a", "website": "maybe", "x": 1}'
    assert letter.reason == "x: unknown field; website: must be one of 'any', 'required', 'none' (got \"maybe\")"
    assert (rejected["type"], rejected["source"]) == ("job.rejected", "pubsub")
    assert rejected["problems"] == letter.reason.split("; ")
    assert store.jobs == {}
    assert handed.specs == []


async def test_two_daemons_listening_run_a_message_once(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    store, handed_a, handed_b = MemoryStore(), Handed(), Handed()
    async with (
        daemon(redis_client, redis_prefix, store, events, handed_a) as a,
        daemon(redis_client, redis_prefix, store, events, handed_b) as b,
    ):
        await wait_for_subscribers(redis_client, jobs_channel(redis_prefix), 2)
        # no id: without the claim, each daemon would copy it to the stream and it would run twice
        await redis_client.publish(jobs_channel(redis_prefix), b'{"query": "no id given"}')
        await redis_client.publish(jobs_channel(redis_prefix), b'{"id": "after", "query": "x"}')
        await store.wait_for(lambda: "after" in store.jobs)
        await store.wait_for(lambda: len(store.jobs) >= 2)
        await eventually(lambda: a.received == b.received == 2, what="both daemons heard both messages")
    assert len(store.jobs) == 2
    assert a.handed_off + b.handed_off == 2  # one copy of each message in the stream
    assert len(handed_a.specs) + len(handed_b.specs) == 2
    assert store.create_calls == 2


async def test_a_daemon_dying_right_after_it_claimed_a_message_loses_nothing(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    channel = jobs_channel(redis_prefix)
    # Daemon A hears the message and claims it, then dies before it could admit anything.
    async with pubsub_intake(redis_client, redis_prefix) as a:
        await wait_for_subscribers(redis_client, channel, 1)
        await redis_client.publish(channel, b'{"query": "claimed by a daemon that died"}')
        await eventually(lambda: a.handed_off == 1, what="daemon A claimed the message")
    assert await redis_client.exists(claim_key(redis_prefix, b'{"query": "claimed by a daemon that died"}'))
    # Daemon B's intake admits it: the claim came with a durable copy, not instead of one.
    store, handed = MemoryStore(), Handed()
    async with StreamIntake(redis_client, redis_prefix, Admission(store, store, events, max_bytes=65536), handed):
        await store.wait_for(lambda: len(store.jobs) == 1)
    ((spec, _),) = store.jobs.values()
    assert spec["query"] == "claimed by a daemon that died"


class FlakyRedis(aioredis.Redis):
    """A client whose hand-off calls fail: before reaching Redis, or after Redis ran them (reply lost)."""

    fail_before = 0
    fail_after = 0

    async def eval(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_before:
            self.fail_before -= 1
            raise RedisConnectionError("Connection reset by peer (before sending)")
        result = await super().eval(*args, **kwargs)
        if self.fail_after:
            self.fail_after -= 1
            raise RedisConnectionError("Connection reset by peer (reply lost)")
        return result


async def test_a_redis_error_during_the_hand_off_keeps_the_message_until_it_is_in_the_stream(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    channel = jobs_channel(redis_prefix)
    flaky = FlakyRedis.from_url(REDIS_TEST_URL)
    assert isinstance(flaky, FlakyRedis)
    try:
        flaky.fail_before = 2  # the first two attempts never reach Redis
        flaky.fail_after = 1  # the third runs, and its answer is lost: the retry must not copy it again
        async with pubsub_intake(flaky, redis_prefix, reconnect_max_delay=0.05) as listening:
            await wait_for_subscribers(redis_client, channel, 1)
            await redis_client.publish(channel, b'{"query": "through a flaky link"}')
            await eventually(lambda: listening.received == 1 and listening.held == 0, what="the message handed off")
            assert listening.handed_off == 0  # the copy that landed was the one whose reply was lost
    finally:
        await flaky.aclose()
    assert await redis_client.xlen(stream_key(redis_prefix)) == 1  # exactly one durable copy
    store, handed = MemoryStore(), Handed()
    async with StreamIntake(redis_client, redis_prefix, Admission(store, store, events, max_bytes=65536), handed):
        await store.wait_for(lambda: len(store.jobs) == 1)


async def test_a_message_the_database_cannot_take_waits_in_the_durable_stream(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    clock = FakeClock()
    store, handed = MemoryStore(down=True), Handed()
    async with daemon(redis_client, redis_prefix, store, events, handed, clock=clock):
        await wait_for_subscribers(redis_client, jobs_channel(redis_prefix), 1)
        await redis_client.publish(jobs_channel(redis_prefix), b'{"id": "kept", "query": "x"}')
        # the stream intake could not persist it and retries it with backoff
        await clock.wait_for_sleepers()
        assert "kept" not in store.jobs
        store.down = False
        await drive(clock, store, lambda: "kept" in store.jobs)
        await handed.wait_for_ids("kept")
    assert store.jobs["kept"][0]["query"] == "x"
    assert store.dead_letters == []


async def test_the_subscription_survives_its_connection_being_killed(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    name = f"{redis_prefix}-pubsub"
    client = aioredis.Redis.from_url(REDIS_TEST_URL, client_name=name)
    store, handed = MemoryStore(), Handed()
    channel = jobs_channel(redis_prefix)
    admission = Admission(store, store, events, max_bytes=65536)
    try:
        async with (
            pubsub_intake(client, redis_prefix, reconnect_max_delay=0.2) as intake,
            StreamIntake(redis_client, redis_prefix, admission, handed, block=0.05),
        ):
            await wait_for_subscribers(redis_client, channel, 1)
            assert await kill_clients_named(redis_client, name) >= 1
            # the intake notices, reconnects and subscribes again
            await wait_for_subscribers(redis_client, channel, 1)
            await redis_client.publish(channel, orjson.dumps({"id": "after-kill", "query": "x"}))
            await handed.wait_for_ids("after-kill")
            assert intake.connected
    finally:
        await client.aclose()
