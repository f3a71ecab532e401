"""Redis going away: intake keeps running, says it is disconnected, backs off within its ceiling,
and picks up where it was when Redis answers again."""

from __future__ import annotations

import asyncio
import random

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from actors.clock import FakeClock
from leadlawk_daemon.intake.admission import Admission
from leadlawk_daemon.intake.events import EventPublisher
from leadlawk_daemon.intake.reconnect import Reconnect
from leadlawk_daemon.intake.stream import StreamIntake
from leadlawk_daemon.intake.submit import submit_to_stream
from tests.conftest import REDIS_TEST_URL
from tests.test_intake_events import kill_clients_named
from tests.test_intake_memory_store import MemoryStore
from tests.test_intake_stream import Handed


async def test_backoff_grows_to_its_ceiling_and_resets_after_a_success() -> None:
    clock = FakeClock()
    link = Reconnect("test", clock=clock, max_delay=8.0, base_delay=0.5, rng=random.Random(7))
    waits: list[float] = []
    for _ in range(10):
        task = asyncio.create_task(link.down(ConnectionError("refused")))
        await clock.wait_for_sleepers()
        deadline = clock.next_deadline()
        assert deadline is not None
        waits.append(deadline - clock.monotonic())
        await clock.advance(deadline - clock.monotonic())
        await task
    caps = [min(8.0, 0.5 * 2**n) for n in range(10)]
    assert all(0 <= w <= cap for w, cap in zip(waits, caps, strict=True))
    assert max(waits[6:]) > 4.0  # it does grow (full jitter, seeded)
    assert not link.connected
    assert link.failures == 10
    link.up()
    assert (link.connected, link.failures) == (True, 0)


async def test_intake_starts_and_reports_disconnected_while_redis_is_unreachable(redis_prefix: str) -> None:
    clock = FakeClock()
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    store = MemoryStore()
    events = EventPublisher(dead, redis_prefix, clock=clock)
    admission = Admission(store, store, events, max_bytes=65536)
    intake = StreamIntake(dead, redis_prefix, admission, Handed(), clock=clock, reconnect_max_delay=5.0)
    intake.stop_timeout = 0.1  # its backoff sleeps on the fake clock, which the test does not move
    try:
        async with intake:
            assert not intake.connected
            for _ in range(5):  # it keeps trying, never crashes, never waits past the ceiling
                await clock.wait_for_sleepers()
                deadline = clock.next_deadline()
                assert deadline is not None
                assert deadline - clock.monotonic() <= 5.0
                await clock.advance(5.0)
            assert not intake.connected
    finally:
        await dead.aclose()


async def test_stream_intake_carries_on_after_its_connections_are_killed(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    name = f"{redis_prefix}-stream"
    client = aioredis.Redis.from_url(REDIS_TEST_URL, client_name=name)
    store, handed = MemoryStore(), Handed()
    try:
        async with EventPublisher(redis_client, redis_prefix) as events:
            admission = Admission(store, store, events, max_bytes=65536)
            async with StreamIntake(
                client, redis_prefix, admission, handed, block=0.05, reconnect_max_delay=0.2
            ) as intake:
                first = await submit_to_stream(redis_client, redis_prefix, {"query": "before"})
                await handed.wait_for_ids(first)
                assert await kill_clients_named(redis_client, name) >= 1
                second = await submit_to_stream(redis_client, redis_prefix, {"query": "after"})
                await handed.wait_for_ids(second)
                assert intake.connected
        assert set(store.jobs) == {first, second}
    finally:
        await client.aclose()
