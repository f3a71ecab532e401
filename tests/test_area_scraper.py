"""Area searches through the real scraper and Chromium against the Maps replica's geography."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from actors.clock import MonotonicClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.area import Bbox, Circle
from leadlawk_daemon.maps.area_search import search_area
from leadlawk_daemon.maps.blocking import BlockedError
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.coverage import CoveragePlan
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeRequest
from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import BrowserSettings, MapsSettings

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

W, H = 1280, 720
DOWNTOWN = Circle(41.2565, -95.9345, 6.0)


class Crash(Exception):
    """Stands for SIGKILL between two cells."""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def base_url() -> AsyncIterator[str]:
    async with serve_maps_replica("127.0.0.1", 0, seed=5, viewport_px=(W, H)) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def scraper(base_url: str) -> AsyncIterator[MapsScraper]:
    browser = BrowserSettings.model_validate({
        "executable": None, "headless": True, "pages": 1, "page_recycle_after": 100,
        "browser_recycle_after": 1000, "memory_limit_mb": 4096, "launch_timeout": 30.0,
    })
    maps = MapsSettings.model_validate({
        "base_url": base_url, "language": "en", "navigations_per_minute": 60_000, "navigation_timeout": 10.0,
        "scroll_timeout": 3.0, "max_idle_scrolls": 2, "viewport_width": W, "viewport_height": H,
    })
    clock = MonotonicClock()
    breaker = CircuitBreaker("google_maps", failure_threshold=5, reset_timeout=60.0, call_timeout=None, clock=clock)
    async with BrowserPool(browser) as pool:
        yield MapsScraper(pool, maps, breaker=breaker, clock=clock)


async def get(base_url: str, path: str, **params: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.request(
        "POST" if path.endswith("reset") else "GET", base_url + path, params=params
    ) as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
        return body


async def downtown_truth(base_url: str) -> set[str]:
    """The replica's plumbers inside DOWNTOWN, by their coordinates."""
    truth = await get(base_url, "/_answers", q="plumbers", location="Omaha, NE", coverage="area")
    return {a["place_id"] for a in truth["answers"] if DOWNTOWN.contains(a["latitude"], a["longitude"])}


class Stored:
    def __init__(self) -> None:
        self.items: list[tuple[Listing, int]] = []

    async def __call__(self, listing: Listing, rank: int) -> None:
        self.items.append((listing, rank))

    @property
    def ids(self) -> list[str]:
        return [listing.place_id or "" for listing, _ in self.items]


def plan_for(area: Bbox | Circle, limit: int = 10_000) -> CoveragePlan:
    return CoveragePlan(area, width_px=W, height_px=H, limit=limit)


async def test_the_location_searched_alone_reports_its_extent(base_url: str, scraper: MapsScraper) -> None:
    viewport = await scraper.location_viewport("Omaha, NE")
    truth = await get(base_url, "/_answers", q="plumbers", location="Omaha, NE", coverage="area")
    assert viewport.bbox.covers(Bbox(*truth["extent"]))
    assert viewport.bbox.to_list() == pytest.approx(truth["area"]["bbox"])


async def test_an_area_search_yields_exactly_the_in_area_ground_truth_once(
    base_url: str, scraper: MapsScraper
) -> None:
    expected = await downtown_truth(base_url)
    assert len(expected) > 120  # the cap binds: one search could not hold them
    await get(base_url, "/_stats/reset")
    stored = Stored()
    plan = await search_area(scraper, plan_for(DOWNTOWN), ScrapeRequest("plumbers"), stored)
    assert sorted(stored.ids) == sorted(expected)  # nothing outside, nothing twice
    assert [rank for _, rank in stored.items] == list(range(1, len(expected) + 1))
    stats = await get(base_url, "/_stats")
    assert set(stats["viewports"].values()) == {1}
    assert len(stats["viewports"]) == plan.cells_done
    assert plan.cells_split >= 1


async def test_a_search_killed_between_cells_resumes_without_revisiting_finished_cells(
    base_url: str, scraper: MapsScraper
) -> None:
    expected = await downtown_truth(base_url)
    await get(base_url, "/_stats/reset")
    saved: dict[str, Any] = {}
    stored = Stored()

    async def persist_then_die(plan: CoveragePlan, _kept: list[Listing]) -> None:
        saved["state"] = json.dumps(plan.to_json())
        if plan.cells_done == 3:
            raise Crash

    with pytest.raises(Crash):
        await search_area(scraper, plan_for(DOWNTOWN), ScrapeRequest("plumbers"), stored, cell_done=persist_then_die)
    before = (await get(base_url, "/_stats"))["viewports"]
    assert sum(before.values()) == 3
    resumed = CoveragePlan.from_json(json.loads(saved["state"]))
    await search_area(scraper, resumed, ScrapeRequest("plumbers"), stored)
    after = (await get(base_url, "/_stats"))["viewports"]
    assert set(after.values()) == {1}, "a finished cell was searched again"
    assert set(before) < set(after)
    assert sorted(stored.ids) == sorted(expected)


async def test_the_limit_is_honoured(scraper: MapsScraper) -> None:
    stored = Stored()
    plan = await search_area(scraper, plan_for(DOWNTOWN, limit=130), ScrapeRequest("plumbers"), stored)
    assert len(stored.ids) == len(set(stored.ids)) == 130
    assert plan.finished


async def test_place_pages_are_fetched_only_for_listings_not_already_kept(
    base_url: str, scraper: MapsScraper
) -> None:
    expected = await downtown_truth(base_url)
    await get(base_url, "/_stats/reset")
    stored = Stored()
    request = ScrapeRequest("plumbers", needs=frozenset({"website"}))
    plan = await search_area(scraper, plan_for(DOWNTOWN), request, stored)
    assert sorted(stored.ids) == sorted(expected)
    stats = await get(base_url, "/_stats")
    place_visits = stats["requests"].get("place", 0)
    assert 0 < place_visits <= len(expected) + plan.outside  # never for a neighbour's duplicate
    assert stats["navigations"] == plan.cells_done + place_visits


async def test_a_block_met_while_scrolling_the_feed_is_a_block_not_an_endless_feed(
    base_url: str, scraper: MapsScraper
) -> None:
    """The page's script moves to /sorry/ when a feed fetch is refused; the scraper must say so."""
    blocked = False

    async def block_the_next_fetch(_listing: Listing, _rank: int) -> None:
        nonlocal blocked
        if not blocked:
            blocked = True
            async with aiohttp.ClientSession() as http, http.post(f"{base_url}/_faults", json={"sorry": 2}) as r:
                assert r.status == 200

    breaker = scraper.breaker
    assert isinstance(breaker, CircuitBreaker)
    before = breaker.failures
    try:
        with pytest.raises(BlockedError, match="/sorry/"):
            await asyncio.wait_for(
                scraper.scrape(ScrapeRequest("plumbers", "Omaha, NE", limit=500), block_the_next_fetch, ()), 30
            )
        assert breaker.failures == before + 1  # counted against the Maps breaker like any block
    finally:
        async with aiohttp.ClientSession() as http, http.post(f"{base_url}/_faults", json={}) as r:
            assert r.status == 200
