"""The events channel: what a subscriber receives, and that publishing never blocks or raises."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis.asyncio as aioredis

from leadlawk_daemon.intake.events import EventPublisher, events_channel, follow_events
from leadlawk_daemon.logs import register_secret
from tests.conftest import REDIS_TEST_URL


async def next_events(pubsub: Any, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(got) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                got.append(orjson.loads(message["data"]))
    return got


async def kill_clients_named(admin: aioredis.Redis, name: str) -> int:
    """CLIENT KILL ID each connection of ours, by its client name: a connection loss that spares
    everyone else using the shared Redis."""
    killed = 0
    for entry in await admin.client_list():
        if entry.get("name") == name:
            killed += int(await admin.client_kill_filter(_id=entry["id"]))
    return killed


async def test_published_events_arrive_as_json_objects_with_type_and_ts(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    register_secret("evt-secret-123456")
    async with redis_client.pubsub() as sub:
        await sub.subscribe(events_channel(redis_prefix))
        async with EventPublisher(redis_client, redis_prefix) as events:
            events.publish("job.started", job_id="j1")
            events.publish("job.progress", job_id="j1", found=3, url="https://x.test/?key=evt-secret-123456")
            got = await next_events(sub, 2)
    assert [(e["type"], e["job_id"]) for e in got] == [("job.started", "j1"), ("job.progress", "j1")]
    assert all(isinstance(e["ts"], str) and e["ts"].startswith("20") for e in got)
    assert got[1]["found"] == 3
    assert "evt-secret-123456" not in orjson.dumps(got).decode()


async def test_publishing_while_redis_is_unreachable_never_blocks_and_drops_oldest(redis_prefix: str) -> None:
    # Nothing listens on port 1: every publish attempt fails at once.
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        async with EventPublisher(dead, redis_prefix, capacity=5, flush_timeout=0.05) as events:
            for i in range(20):
                events.publish("lead.written", job_id="j", n=i)
            assert events.depth == 5
            assert events.dropped == 15
            assert not events.connected
    finally:
        await dead.aclose()


async def test_follow_events_yields_one_jobs_events_until_it_finishes(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    async with (
        EventPublisher(redis_client, redis_prefix) as events,
        follow_events(redis_client, redis_prefix, "job-9") as followed,
    ):
        events.publish("job.started", job_id="other")
        events.publish("job.started", job_id="job-9")
        events.publish("job.progress", job_id="job-9.0", parent_id="job-9", found=1)
        events.publish("job.finished", job_id="job-9", status="succeeded")
        events.publish("job.started", job_id="job-9")  # after the end: not seen
        seen = []
        async with asyncio.timeout(10):
            async for event in followed:
                seen.append((event["type"], event["job_id"]))
    assert seen == [("job.started", "job-9"), ("job.progress", "job-9.0"), ("job.finished", "job-9")]


async def test_events_buffered_while_redis_is_away_go_out_after_it_returns(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    name = f"{redis_prefix}-events"
    client = aioredis.Redis.from_url(REDIS_TEST_URL, client_name=name)
    try:
        async with redis_client.pubsub() as sub:
            await sub.subscribe(events_channel(redis_prefix))
            async with EventPublisher(client, redis_prefix, reconnect_max_delay=0.2) as events:
                events.publish("job.started", job_id="a")
                await next_events(sub, 1)
                assert await kill_clients_named(redis_client, name) >= 1
                events.publish("job.finished", job_id="a", status="succeeded")
                (got,) = await next_events(sub, 1)
        assert (got["type"], got["job_id"]) == ("job.finished", "a")
    finally:
        await client.aclose()
