"""A consent loop is the block of the exit that met it: through two exits (local proxies, each its
own client address), the replica keeps one exit's consent answers from sticking; that exit opens
with the reason "a consent loop", the other answers the page once and carries every search.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import pytest_asyncio

from actors.clock import MonotonicClock
from leadlawk_daemon.maps.blocking import CONSENT_LOOP
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.egress import egress_pool
from leadlawk_daemon.maps.egress_pool import ExitHealth, ExitState, ExitUnavailable, Guard
from leadlawk_daemon.maps.egress_scraper import RoutedScraper
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeRequest
from leadlawk_daemon.quota.pace import Pacer
from leadlawk_daemon.replicas.proxy import ProxyFleet
from tests.support.replicas import MapsReplica
from tests.test_scraper import Collected, breaker, browser_settings, maps_settings

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module"), pytest.mark.maps_replica(seed=12)]

LOCATION = "Omaha, NE"
SEARCHES = ("bakers", "florists", "tailors")


@pytest_asyncio.fixture(loop_scope="module")
async def fleet() -> AsyncIterator[ProxyFleet]:
    async with ProxyFleet(2) as fleet:
        yield fleet


async def test_a_consent_loop_opens_that_exit_alone(maps_replica: MapsReplica, fleet: ProxyFleet) -> None:
    good, looped = fleet.proxies
    await maps_replica.faults(consent=True, consent_loop_clients=[looped.source])
    exits = [{"url": p.url, "name": f"exit{p.index}"} for p in fleet.proxies]
    maps = maps_settings(maps_replica.base_url, language="de", egress=exits, egress_cooldown=600.0)
    clock = MonotonicClock()
    pool = egress_pool(maps, clock=clock)
    async with AsyncExitStack() as stack:
        browsers: dict[str, BrowserPool] = {}

        async def browser_for(health: ExitHealth) -> BrowserPool:
            if health.name not in browsers:
                browser = BrowserPool(
                    browser_settings(pages=1), proxy=health.exit.playwright_proxy(), label=health.name
                )
                browsers[health.name] = await stack.enter_async_context(browser)
            return browsers[health.name]

        def make(browser: BrowserPool, guard: Guard, limiter: Pacer | None) -> MapsScraper:
            return MapsScraper(browser, maps, breaker=guard, clock=clock, limiter=limiter)

        routed = RoutedScraper(pool, browser_for, breaker(clock), maps, make)
        found: dict[str, list[str]] = {}
        rerouted = 0
        for query in SEARCHES:
            while True:  # as the scraper actor does: a search refused by its exit goes out again at once
                out = Collected()
                try:
                    await routed.scrape(ScrapeRequest(query, LOCATION, limit=3), out, set())
                except ExitUnavailable:
                    rerouted += 1
                    continue
                found[query] = out.place_ids
                break

    health = {h.name: h for h in pool.exits}
    assert health["exit1"].state is ExitState.OPEN
    assert health["exit1"].reason == CONSENT_LOOP
    assert health["exit0"].state is ExitState.CLOSED
    assert rerouted == 1
    for query in SEARCHES:
        assert found[query] == [a["place_id"] for a in await maps_replica.answers(query, LOCATION)][:3]
    stats: dict[str, Any] = await maps_replica.stats()
    # The good exit answered once (its cookie kept); the looped one twice before it was given up.
    assert stats["consent_answers"] == {"de": {"reject": 3}}
    assert stats["requests"]["consent_save"] == 3
    assert set(stats["clients"]) == {good.source, looped.source}
    await maps_replica.faults()
