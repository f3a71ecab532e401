"""Intake from the pub/sub channel, against a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis.asyncio as aioredis

from leadlawk_daemon.clock import FakeClock
from leadlawk_daemon.intake.admission import Admission
from leadlawk_daemon.intake.events import EventPublisher
from leadlawk_daemon.intake.pubsub import PubSubIntake, jobs_channel
from leadlawk_daemon.intake.stream import StreamIntake
from tests.conftest import REDIS_TEST_URL
from tests.test_intake_events import kill_clients_named, next_events
from tests.test_intake_memory_store import MemoryStore
from tests.test_intake_stream import Handed, drive
from tests.test_intake_stream import event_sub as event_sub  # fixtures shared with the stream tests
from tests.test_intake_stream import events as events


def pubsub_intake(
    redis: aioredis.Redis, prefix: str, store: MemoryStore, events: EventPublisher, on_job: Handed, **kw: Any
) -> PubSubIntake:
    return PubSubIntake(redis, prefix, Admission(store, store, events, max_bytes=65536), on_job, poll=0.1, **kw)


async def wait_for_subscribers(redis: aioredis.Redis, channel: str, count: int) -> None:
    """Poll PUBSUB NUMSUB until ``count`` clients listen: a message published earlier is lost."""
    async with asyncio.timeout(10):
        while True:
            ((_, listening),) = await redis.pubsub_numsub(channel)
            if int(listening) >= count:
                return
            await asyncio.sleep(0.01)


async def test_a_published_job_is_persisted_handed_on_and_announced(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher, event_sub: Any
) -> None:
    store, handed = MemoryStore(), Handed()
    async with pubsub_intake(redis_client, redis_prefix, store, events, handed):
        await wait_for_subscribers(redis_client, jobs_channel(redis_prefix), 1)
        await redis_client.publish(jobs_channel(redis_prefix), b'{"id": "ps-1", "query": "plumbers"}')
        await handed.wait_for_ids("ps-1")
        (accepted,) = await next_events(event_sub, 1)
    assert store.jobs["ps-1"][0]["query"] == "plumbers"
    assert (accepted["type"], accepted["job_id"], accepted["source"]) == ("job.accepted", "ps-1", "pubsub")


async def test_an_invalid_message_is_dead_lettered_and_announced(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher, event_sub: Any
) -> None:
    store, handed = MemoryStore(), Handed()
    async with pubsub_intake(redis_client, redis_prefix, store, events, handed):
        await wait_for_subscribers(redis_client, jobs_channel(redis_prefix), 1)
        await redis_client.publish(jobs_channel(redis_prefix), b'{"query": "a", "website": "maybe", "x": 1}')
        await store.wait_for(lambda: bool(store.dead_letters))
        (rejected,) = await next_events(event_sub, 1)
    (letter,) = store.dead_letters
    assert letter.payload == '{"query": "a", "website": "maybe", "x": 1}'
    assert letter.reason == "x: unknown field; website: must be one of 'any', 'required', 'none' (got \"maybe\")"
    assert rejected["type"] == "job.rejected"
    assert rejected["problems"] == letter.reason.split("; ")
    assert store.jobs == {}
    assert handed.specs == []


async def test_two_daemons_listening_run_a_message_once(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    store, handed_a, handed_b = MemoryStore(), Handed(), Handed()
    async with (
        pubsub_intake(redis_client, redis_prefix, store, events, handed_a),
        pubsub_intake(redis_client, redis_prefix, store, events, handed_b),
    ):
        await wait_for_subscribers(redis_client, jobs_channel(redis_prefix), 2)
        # no id: without the claim, each daemon would mint its own and run it
        await redis_client.publish(jobs_channel(redis_prefix), b'{"query": "no id given"}')
        await redis_client.publish(jobs_channel(redis_prefix), b'{"id": "after", "query": "x"}')
        await store.wait_for(lambda: "after" in store.jobs)
        await store.wait_for(lambda: len(store.jobs) >= 2)
    assert len(store.jobs) == 2
    assert len(handed_a.specs) + len(handed_b.specs) <= 2
    assert store.create_calls == 2


async def test_a_message_the_database_cannot_take_is_handed_to_the_durable_stream(
    redis_client: aioredis.Redis, redis_prefix: str, events: EventPublisher
) -> None:
    clock = FakeClock()
    store, handed = MemoryStore(down=True), Handed()
    admission = Admission(store, store, events, max_bytes=65536)
    async with (
        pubsub_intake(redis_client, redis_prefix, store, events, handed),
        StreamIntake(redis_client, redis_prefix, admission, handed, block=0.05, clock=clock),
    ):
        await wait_for_subscribers(redis_client, jobs_channel(redis_prefix), 1)
        await redis_client.publish(jobs_channel(redis_prefix), b'{"id": "kept", "query": "x"}')
        # pub/sub could not persist it and passed it on; the stream intake retries it with backoff
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
    try:
        async with pubsub_intake(client, redis_prefix, store, events, handed, reconnect_max_delay=0.2) as intake:
            await wait_for_subscribers(redis_client, channel, 1)
            assert await kill_clients_named(redis_client, name) >= 1
            # the intake notices, reconnects and subscribes again
            await wait_for_subscribers(redis_client, channel, 1)
            await redis_client.publish(channel, orjson.dumps({"id": "after-kill", "query": "x"}))
            await handed.wait_for_ids("after-kill")
            assert intake.connected
    finally:
        await client.aclose()
