"""The site actor's in-flight limit on the FakeClock: sized for the demand the jobs bring and the
latency reads take, at the floor when idle, never past ``sites.max_in_flight``; and the real client
reading through it."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from actors.clock import FakeClock
from leadlawk_daemon.replicas.sites import SitesReplica
from leadlawk_daemon.resilience.inflight import MARGIN, InFlightLimit
from leadlawk_daemon.settings import SitesSettings, load_settings
from leadlawk_daemon.sites import SiteClient
from leadlawk_daemon.sites.demand import SITE_FLOOR, SITE_READ, SiteDemand, site_limit
from leadlawk_daemon.sites.report import SiteStatus

pytestmark = pytest.mark.sites_replica(seed=4)


def _settings(**update: object) -> SitesSettings:
    return load_settings().sites.model_copy(update=update)


class Arrivals:
    """Site reads arriving at ``rate`` a second into a queue (the actor's mailbox), read by as many
    workers as the ceiling through the limit, each read taking ``latency(t)`` on the FakeClock."""

    def __init__(self, settings: SitesSettings, latency: float) -> None:
        self.clock = FakeClock(start=0.0)
        self.latency = latency
        self.queue: asyncio.Queue[float] = asyncio.Queue(maxsize=100_000)
        self.in_hand = 0  # taken by a worker, waiting for a slot or reading
        self.limit = site_limit(settings, clock=self.clock, backlog=lambda: self.queue.qsize() + self.in_hand)
        self.rng = random.Random(11)
        self.read = 0

    async def _worker(self) -> None:
        while True:
            await self.queue.get()
            self.in_hand += 1
            try:
                self.limit.refresh()
                async with self.limit.slot():
                    started = self.limit.started(SITE_READ)
                    await self.clock.sleep(self.latency * self.rng.uniform(0.8, 1.2))
                    self.limit.finished(SITE_READ, started)
                    self.read += 1
            finally:
                self.in_hand -= 1

    async def run(self, seconds: float, rate: float, step: float = 0.25) -> list[int]:
        """Feed ``rate`` reads a second for ``seconds``; the limit at each step."""
        workers = [asyncio.create_task(self._worker()) for _ in range(self.limit.ceiling)]
        limits, owed = [], 0.0
        try:
            for _ in range(round(seconds / step)):
                owed += rate * step
                while owed >= 1:
                    self.queue.put_nowait(self.clock.monotonic())
                    owed -= 1
                await self.clock.advance(step)
                limits.append(self.limit.limit)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return limits


async def test_demand_is_throughput_plus_the_backlog_to_drain() -> None:
    clock, backlog = FakeClock(start=0.0), [0]
    demand = SiteDemand(clock=clock, backlog=lambda: backlog[0], decay=10.0, horizon=30.0)
    assert demand.rate() == 0.0
    backlog[0] = 60
    assert demand.rate() == 2.0  # 60 reads to drain in 30 s
    backlog[0] = 0
    for _ in range(2_000):  # 4 reads a second for 500 s: the estimate settles on 4
        await clock.advance(0.25)
        demand.finished()
    assert math.isclose(demand.rate(), 4.0, rel_tol=0.05)
    await clock.advance(90)  # nothing for 90 s: the demand is gone
    assert demand.rate() < 0.01


def test_idle_the_limit_sits_at_its_floor_and_a_backlog_raises_it_to_the_ceiling_at_most() -> None:
    clock, backlog = FakeClock(start=0.0), [0]
    limit = site_limit(_settings(max_in_flight=12), clock=clock, backlog=lambda: backlog[0])
    assert limit.limit == SITE_FLOOR
    backlog[0] = 10_000  # a 10,000-lead area job's websites, all at once
    limit.refresh()
    assert limit.limit == 12


async def test_the_limit_carries_the_arrivals_and_drains_no_more_than_it_needs() -> None:
    # 3 reads a second, 2 s each: Little's law asks for 6 in flight, 6.9 with the margin.
    rig = Arrivals(_settings(max_in_flight=64), latency=2.0)
    limits = await rig.run(180, rate=3.0)
    settled = limits[-240:]  # the last minute
    need = MARGIN * 3.0 * 2.0
    assert max(settled) <= math.ceil(1.5 * need), settled
    assert min(settled) >= math.floor(need * 0.85), settled
    assert rig.queue.qsize() + rig.in_hand <= 3.0 * 2.0 * 2  # the backlog does not grow
    assert rig.read >= 0.95 * 3.0 * (180 - 2 * 2.0)


async def test_the_limit_follows_a_latency_rise_and_returns_to_the_floor_when_idle() -> None:
    rig = Arrivals(_settings(max_in_flight=64), latency=1.0)
    slow = await rig.run(60, rate=4.0)
    rig.latency = 5.0
    slower = await rig.run(90, rate=4.0)
    assert max(slow[-40:]) < min(slower[-40:])  # 4.6 in flight needed, then 23
    assert min(slower[-40:]) >= math.floor(MARGIN * 4.0 * 5.0 * 0.85)
    await rig.run(120, rate=0.0)
    rig.limit.refresh()  # what the next read does first, and a scrape of the gauge
    assert rig.limit.limit == SITE_FLOOR


async def test_a_burst_of_timeouts_raises_the_limit_no_further_than_the_ceiling() -> None:
    clock = FakeClock(start=0.0)
    limit = site_limit(_settings(max_in_flight=20, timeout=5.0, max_pages=1), clock=clock, backlog=lambda: 500)
    for _ in range(200):  # every read ran to its last page's timeout, and longer
        started = limit.started(SITE_READ)
        await clock.advance(300.0)
        limit.finished(SITE_READ, started)
    assert limit.estimate(SITE_READ).mean <= 10.0  # timeout x (1 + max_pages)
    assert limit.limit == 20


async def test_the_client_reads_through_the_limit_and_a_cached_site_takes_no_slot(sites_replica: SitesReplica) -> None:
    settings = _settings(proxy=sites_replica.base_url, ca_file=str(sites_replica.ca_path), max_in_flight=8)
    limit: InFlightLimit = site_limit(settings, clock=FakeClock(), backlog=lambda: 0)
    async with SiteClient(settings, limit=limit) as client:
        reports = await asyncio.gather(*(client.inspect(f"http://t-ok-{n}.example/") for n in range(6)))
        assert {r.status for r in reports} == {SiteStatus.OK}
        assert limit.estimate(SITE_READ).samples == 6
        again = await client.inspect("http://t-ok-0.example/")  # from the cache
        assert again.status is SiteStatus.OK
    assert limit.estimate(SITE_READ).samples == 6
    assert limit.held == 0
    assert limit.running == 0
