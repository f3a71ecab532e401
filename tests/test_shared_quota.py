"""Quotas shared over real Redis by several daemons (several limiters, each with its own client).

Time is a :class:`FakeClock` shared by the "daemons" and passed to Redis as the scripts' ``now``:
the run is a discrete-event simulation against the real Redis scripts. :func:`run_until` moves the
clock to the next sleeper's deadline only once every caller is parked on the clock again (each
caller's Redis round trip has come back), so the simulation is exact whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from actors.clock import FakeClock
from leadlawk_daemon.chaos import FaultProxy
from leadlawk_daemon.pagespeed.quota import WindowPacer
from leadlawk_daemon.quota import SharedQuotas, quota_id
from leadlawk_daemon.quota.pace import SharedPacer
from leadlawk_daemon.quota.quotas import maps_scope_key, pagespeed_share
from leadlawk_daemon.settings import Settings, load_settings
from tests.conftest import REDIS_TEST_URL

QUOTA = 100  # per window: per_window 98 after the pacer's headroom of 2
WINDOW = 100.0
API_KEY = "AIzaSyTEST-secret-key-0123456789abcdef"
PACIFIC = ZoneInfo("America/Los_Angeles")
T = TypeVar("T")


def settings_for(url: str, prefix: str, **extra: str) -> Settings:
    return load_settings(
        environ={
            "REDIS_URL": url,
            "PAGESPEED_API_KEY": API_KEY,
            "LEADLAWK__REDIS__PREFIX": prefix,
            "LEADLAWK__PAGESPEED__QUERIES_PER_100S": str(QUOTA),
            **extra,
        }
    )


@asynccontextmanager
async def daemons(
    count: int, url: str, prefix: str, clock: FakeClock, *, peers: int = 1, **extra: str
) -> AsyncIterator[list[SharedQuotas]]:
    """``count`` daemons' shared quotas, each with its own Redis connection."""
    async with AsyncExitStack() as stack:
        fleet = []
        for n in range(count):
            quotas = SharedQuotas.from_settings(
                settings_for(url, prefix, **extra), clock=clock, peers=lambda: peers, hostname=f"host-{n}"
            )
            assert quotas is not None
            stack.push_async_callback(quotas.aclose)
            fleet.append(quotas)
        yield fleet


class Callers:
    """``per_daemon`` callers on each pacer, each taking turns forever and noting when it started."""

    def __init__(self, clock: FakeClock, pacers: list[SharedPacer], per_daemon: int, latency: float = 0.0) -> None:
        self.clock = clock
        self.latency = latency  # each call's length: the caller is busy this long after its start
        self.starts: list[list[float]] = [[] for _ in pacers]
        self.count = len(pacers) * per_daemon
        self._group = asyncio.TaskGroup()
        self._pacers = pacers
        self._per_daemon = per_daemon
        self._tasks: list[asyncio.Task[None]] = []

    async def _caller(self, n: int) -> None:
        while True:
            await self._pacers[n].acquire()
            self.starts[n].append(self.clock.wall())
            if self.latency:
                await self.clock.sleep(self.latency)

    async def __aenter__(self) -> Callers:
        await self._group.__aenter__()
        for n in range(len(self._pacers)):
            self._tasks += [self._group.create_task(self._caller(n)) for _ in range(self._per_daemon)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(None, None, None)

    async def run_until(self, wall: float, between: Callable[[], Awaitable[None]] | None = None) -> None:
        """Move the clock, deadline by deadline, until ``wall``, each step once every caller is parked."""
        while True:
            await self.clock.wait_for_sleepers(self.count, within=10.0)
            deadline = self.clock.next_deadline()
            assert deadline is not None
            step = deadline - self.clock.monotonic()
            if self.clock.wall() + step > wall:
                await self.clock.advance(wall - self.clock.wall())
                return
            await self.clock.advance(step)

    def all_starts(self) -> list[float]:
        return sorted(t for starts in self.starts for t in starts)


async def on_clock(clock: FakeClock, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, moving the clock to the next deadline whenever it sleeps on it."""
    task = asyncio.ensure_future(awaitable)
    while not task.done():
        parked = asyncio.ensure_future(clock.wait_for_sleepers(1, within=10.0))
        await asyncio.wait({task, parked}, return_when=asyncio.FIRST_COMPLETED)
        parked.cancel()
        await asyncio.gather(parked, return_exceptions=True)
        deadline = clock.next_deadline()
        if not task.done() and deadline is not None:
            await clock.advance(deadline - clock.monotonic())
    return task.result()


def most_in_any_window(starts: list[float], window: float) -> int:
    """The most starts in any window ``(t - window, t]``, as the service counts them."""
    ordered = sorted(starts)
    return max((i + 1 - bisect.bisect_right(ordered, t - window) for i, t in enumerate(ordered)), default=0)


def between(starts: list[float], t0: float, t1: float) -> list[float]:
    return [t for t in starts if t0 <= t < t1]


async def test_three_daemons_together_never_exceed_a_window_and_use_95_percent(redis_prefix: str) -> None:
    clock = FakeClock()
    async with daemons(3, REDIS_TEST_URL, redis_prefix, clock) as fleet:
        pacers = [q.pagespeed for q in fleet]
        async with Callers(clock, pacers, per_daemon=6) as callers:
            t0 = clock.wall()
            await callers.run_until(t0 + 4 * WINDOW)
        starts = callers.all_starts()
    per_window = WindowPacer(QUOTA, WINDOW, clock=clock).per_window
    assert per_window < QUOTA
    assert most_in_any_window(starts, WINDOW) <= per_window
    # Every window of the run is used to >= 95 % of the quota, by the three together.
    for k in range(4):
        assert len(between(starts, t0 + k * WINDOW, t0 + (k + 1) * WINDOW)) >= 0.95 * QUOTA
    # Each daemon had turns: one busy daemon does not lock the others out.
    assert all(len(s) >= QUOTA / 10 for s in callers.starts)
    assert all(q.link.up for q in fleet)


async def test_a_daemon_alone_on_a_key_has_the_whole_pace(redis_prefix: str) -> None:
    clock = FakeClock()
    async with (
        daemons(1, REDIS_TEST_URL, redis_prefix, clock) as fleet,
        Callers(clock, [fleet[0].pagespeed], per_daemon=4) as callers,
    ):
        t0 = clock.wall()
        await callers.run_until(t0 + 2 * WINDOW)
    starts = callers.all_starts()
    assert len(between(starts, t0 + WINDOW, t0 + 2 * WINDOW)) >= 0.95 * QUOTA
    assert most_in_any_window(starts, WINDOW) <= WindowPacer(QUOTA, WINDOW, clock=clock).per_window


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"127.0.0.1:{port}").geturl()


@asynccontextmanager
async def redis_proxy() -> AsyncIterator[FaultProxy]:
    parts = urlsplit(REDIS_TEST_URL)
    assert parts.hostname is not None
    assert parts.port is not None
    async with FaultProxy("127.0.0.1", 0, parts.hostname, parts.port) as proxy:
        yield proxy


async def test_redis_cut_falls_back_to_local_shares_that_never_exceed_the_quota(redis_prefix: str) -> None:
    clock = FakeClock()
    async with redis_proxy() as proxy, daemons(3, _through(REDIS_TEST_URL, proxy.port), redis_prefix, clock) as fleet:
        pacers = [q.pagespeed for q in fleet]
        async with Callers(clock, pacers, per_daemon=6) as callers:
            t0 = clock.wall()
            await callers.run_until(t0 + WINDOW)
            assert all(p.members == 3 for p in pacers)  # each has seen the others on the key
            proxy.cut()
            cut_at = clock.wall()
            await callers.run_until(cut_at + 2 * WINDOW)
            assert not any(q.link.up for q in fleet)
            assert all(not p.shared for p in pacers)
            proxy.restore()
            restored_at = clock.wall()
            await callers.run_until(restored_at + WINDOW)
            assert all(q.link.up and p.shared for q, p in zip(fleet, pacers, strict=True))
    share = WindowPacer(pagespeed_share(QUOTA, 3), WINDOW, clock=clock).per_window
    assert pagespeed_share(QUOTA, 3) == QUOTA // 3
    for starts in callers.starts:
        # Fully inside the outage, each daemon keeps to its share...
        assert most_in_any_window(between(starts, cut_at + 1, restored_at), WINDOW) <= share
    every = callers.all_starts()
    # ...and the fleet to the quota, through the cut and the return.
    assert most_in_any_window(every, WINDOW) <= QUOTA
    # Fallen back, the three still use their shares: the outage is not a stop.
    assert len(between(every, cut_at + WINDOW, cut_at + 2 * WINDOW)) >= 0.9 * 3 * share
    # Back on Redis, the whole pace again.
    assert len(between(every, restored_at + 1, restored_at + WINDOW)) >= 0.9 * QUOTA * (WINDOW - 1) / WINDOW


async def test_callers_waiting_for_far_local_turns_come_back_as_soon_as_redis_does(redis_prefix: str) -> None:
    clock = FakeClock()
    async with (
        redis_proxy() as proxy,
        daemons(1, _through(REDIS_TEST_URL, proxy.port), redis_prefix, clock, peers=3) as fleet,
        # Calls of 25 s: 30 callers are enough for the whole pace (0.98 a second), and on a local
        # share of 31 per 100 s most of them wait for local turns up to a minute away.
        Callers(clock, [fleet[0].pagespeed], per_daemon=30, latency=25.0) as callers,
    ):
        t0 = clock.wall()
        await callers.run_until(t0 + 10.0)
        proxy.cut()
        await callers.run_until(t0 + 10.0 + WINDOW)
        proxy.restore()
        restored_at = clock.wall()
        await callers.run_until(restored_at + 30.0)
    starts = callers.all_starts()
    # Within seconds of Redis' return the daemon is at the whole pace (0.98 a second), not its share's.
    assert len(between(starts, restored_at + 5.0, restored_at + 30.0)) >= 0.9 * 25.0 * QUOTA / WINDOW
    assert most_in_any_window(starts, WINDOW) <= QUOTA


async def test_without_redis_at_all_a_daemon_paces_at_its_share_of_the_peers(redis_prefix: str) -> None:
    clock = FakeClock()
    closed = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    async with daemons(1, closed, redis_prefix, clock, peers=4) as fleet:
        async with Callers(clock, [fleet[0].pagespeed], per_daemon=4) as callers:
            t0 = clock.wall()
            await callers.run_until(t0 + 2 * WINDOW)
        report = fleet[0].report()
    share = WindowPacer(QUOTA // 4, WINDOW, clock=clock).per_window
    starts = callers.all_starts()
    assert most_in_any_window(starts, WINDOW) <= share
    assert len(between(starts, t0 + WINDOW, t0 + 2 * WINDOW)) >= share - 1
    assert report["redis"] == "down"
    assert report["pagespeed_100s"]["mode"] == "local"
    assert report["pagespeed_100s"]["share"] == share
    assert report["pagespeed_100s"]["peers"] == 4


def _pacific(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=PACIFIC).timestamp()


async def test_the_daily_count_is_shared_and_rolls_over_at_midnight_pacific(
    redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    # 23:59 in Los Angeles is already the next day in UTC: the day is Pacific's, not UTC's.
    clock = FakeClock(wall_start=_pacific(2026, 12, 7, 23, 59))
    async with daemons(2, REDIS_TEST_URL, redis_prefix, clock, LEADLAWK__PAGESPEED__QUERIES_PER_DAY="5") as fleet:
        a, b = (q.daily for q in fleet)
        assert [await a.claim() for _ in range(3)] == [True] * 3
        assert [await b.claim() for _ in range(3)] == [True, True, False]
        assert b.exhausted
        assert b.fleet_used == 5
        assert not await a.claim()  # a learns that the day is spent from Redis
        assert a.exhausted
        assert a.used == 3
        day_key = f"{redis_prefix}:quota:{quota_id(API_KEY)}:day:2026-12-07"
        assert await redis_client.get(day_key) == b"5"
        assert 0 < await redis_client.pttl(day_key) <= (60 + 3600) * 1000

        await clock.advance(59.0)  # 23:59:59: still the same day
        assert a.exhausted
        assert not await a.claim()
        await clock.advance(1.0)  # midnight Pacific
        assert not a.exhausted
        assert not b.exhausted
        assert await a.claim()
        assert await b.claim()
        assert await redis_client.get(f"{redis_prefix}:quota:{quota_id(API_KEY)}:day:2026-12-08") == b"2"
        assert a.used == 1
        assert a.fleet_used == 1
        assert b.fleet_used == 2


async def test_daily_local_share_while_redis_is_down_then_added_back(
    redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    clock = FakeClock(wall_start=_pacific(2026, 12, 7, 12, 0))
    async with (
        redis_proxy() as proxy,
        daemons(
            1, _through(REDIS_TEST_URL, proxy.port), redis_prefix, clock, peers=2,
            LEADLAWK__PAGESPEED__QUERIES_PER_DAY="10",
        ) as fleet,
    ):
        daily = fleet[0].daily
        assert [await daily.claim() for _ in range(4)] == [True] * 4
        proxy.cut()
        # (10 - 4) // 2 daemons = 3 of what was left, no more.
        assert [await daily.claim() for _ in range(4)] == [True, True, True, False]
        assert daily.exhausted
        assert daily.report()["mode"] == "local"
        proxy.restore()
        await clock.advance(fleet[0].link.retry_every)
        waiting = asyncio.create_task(daily.wait_until_available())
        assert await asyncio.wait_for(waiting, 10.0) == 0.0  # Redis answers: 3 left, not exhausted
        assert daily.fleet_used == 7
        assert await redis_client.get(f"{redis_prefix}:quota:{quota_id(API_KEY)}:day:2026-12-07") == b"7"
        assert daily.report()["mode"] == "shared"


async def _everything_stored(client: aioredis.Redis, prefix: str) -> list[bytes]:
    stored: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}:*"):
        stored.append(key)
        kind = await client.type(key)
        if kind == b"string":
            stored.append(str(await client.get(key)).encode())
        elif kind == b"zset":
            stored += [str(m).encode() for m in await client.zrange(key, 0, -1)]
        else:
            raise AssertionError(f"unexpected {kind!r} at {key!r}")
    return stored


async def test_the_api_key_is_never_in_redis_nor_in_the_logs(
    redis_prefix: str, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    async with redis_proxy() as proxy, daemons(2, _through(REDIS_TEST_URL, proxy.port), redis_prefix, clock) as fleet:
        for quotas in fleet:
            await on_clock(clock, quotas.pagespeed.acquire())
            assert await quotas.daily.claim()
            assert quotas.maps is not None
            await on_clock(clock, quotas.maps.acquire())
        stored = await _everything_stored(redis_client, redis_prefix)
        proxy.cut()  # the fallback's log lines too
        await on_clock(clock, fleet[0].pagespeed.acquire())
        assert await fleet[0].daily.claim()
        reports = [q.report() for q in fleet]
    assert len(stored) >= 8
    assert any(quota_id(API_KEY).encode() in item for item in stored)
    for item in stored:
        assert API_KEY.encode() not in item
        assert b"host-0" not in item
        assert b"host-1" not in item
    assert "Redis unreachable" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(reports)


async def test_maps_politeness_scopes(redis_prefix: str) -> None:
    assert maps_scope_key("process", "a") is None
    assert maps_scope_key("fleet", "a") == maps_scope_key("fleet", "b") == "maps:fleet"
    assert maps_scope_key("host", "a") != maps_scope_key("host", "b")
    assert "worker-7.internal" not in (maps_scope_key("host", "worker-7.internal") or "")  # hashed
    clock = FakeClock()
    async with daemons(1, REDIS_TEST_URL, redis_prefix, clock, LEADLAWK__MAPS__POLITENESS_SCOPE="process") as fleet:
        assert fleet[0].maps is None
        assert "maps_politeness" not in fleet[0].report()


async def test_two_daemons_on_one_host_share_the_maps_budget(redis_prefix: str) -> None:
    clock = FakeClock()
    async with AsyncExitStack() as stack:
        pacers = []
        for _ in range(2):
            quotas = SharedQuotas.from_settings(
                settings_for(REDIS_TEST_URL, redis_prefix, LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE="30"),
                clock=clock,
                hostname="one-host",
            )
            assert quotas is not None
            assert quotas.maps is not None
            stack.push_async_callback(quotas.aclose)
            pacers.append(quotas.maps)
        async with Callers(clock, pacers, per_daemon=2) as callers:
            t0 = clock.wall()
            await callers.run_until(t0 + 300.0)
    starts = callers.all_starts()
    # 30 a minute between the two, spaced 2 s apart: never two in the same 2 s.
    assert most_in_any_window(starts, 60.0) <= 30
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 2.0 - 1e-6
    assert len(between(starts, t0 + 60, t0 + 300)) >= 0.95 * 30 * 4


async def test_the_daemon_shares_its_quotas_and_reports_them_in_its_fleet_entry(redis_prefix: str) -> None:
    from leadlawk_daemon.assembly import LeadLawkDaemon

    daemon = LeadLawkDaemon(settings_for("redis://127.0.0.1:1/0", redis_prefix))  # Redis unreachable
    try:
        quotas = daemon.quotas
        assert quotas is not None
        await quotas.daily.claim()  # finds Redis down: the local share
        record = daemon.fleet.record()
        assert record["quota"]["redis"] == "down"
        pace = record["quota"]["pagespeed_100s"]
        assert pace["per_window"] == WindowPacer(QUOTA, WINDOW, clock=FakeClock()).per_window
        assert record["quota"]["maps_politeness"]["mode"] == "shared"  # not asked yet
        assert API_KEY not in repr(record)
        note = daemon.health.notes["shared_quotas"]()
        assert note is not None
        assert note.startswith("Redis unreachable")
    finally:
        assert daemon.quotas is not None
        await daemon.quotas.aclose()
        if daemon.redis is not None:
            await daemon.redis.aclose()


def test_a_politeness_scope_that_is_not_one_of_the_three_is_refused_naming_the_key() -> None:
    from leadlawk_daemon.settings import ConfigError

    # auto: host with the one default exit (direct), egress with more (docs/egress-pool.md).
    assert load_settings(environ={}).maps.politeness_scope == "auto"
    assert load_settings(environ={}).maps.scope == "host"
    assert load_settings(environ={}).redis.quota_timeout == 0.5
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"LEADLAWK__MAPS__POLITENESS_SCOPE": "everywhere"})
    assert any(problem.startswith("maps.politeness_scope:") for problem in refused.value.problems)
