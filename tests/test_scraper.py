"""The scraping flow with a real Chromium against the offline Maps replica.

One replica and one shared browser serve the module (the machine has 2 cores); tests that kill
or hang a browser bring their own. Every expectation comes from the replica's ``/_answers``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from actors.clock import FakeClock, MonotonicClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps import proctree
from leadlawk_daemon.maps.blocking import BlockedError
from leadlawk_daemon.maps.browser import BrowserCrashedError, BrowserPool, UnreachableError
from leadlawk_daemon.maps.parse_pool import ParsePool
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeRequest
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker
from leadlawk_daemon.settings import BrowserSettings, MapsSettings
from tests.support.replicas import MapsReplica

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module"), pytest.mark.maps_replica(seed=7)]

QUERY, LOCATION = "plumbers", "Omaha, NE"


def browser_settings(**overrides: Any) -> BrowserSettings:
    values: dict[str, Any] = {
        "executable": None,
        "headless": True,
        "pages": 2,
        "page_recycle_after": 25,
        "browser_recycle_after": 200,
        "memory_limit_mb": 4096,
        "launch_timeout": 30.0,
    }
    return BrowserSettings.model_validate(values | overrides)


def maps_settings(base_url: str, **overrides: Any) -> MapsSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "language": "en",
        "navigations_per_minute": 60_000,
        "navigation_timeout": 10.0,
        "scroll_timeout": 3.0,
        "max_idle_scrolls": 2,
    }
    return MapsSettings.model_validate(values | overrides)


class Collected:
    """The downstream end of the scraper: what was emitted, in order, with ranks."""

    def __init__(self) -> None:
        self.items: list[tuple[Listing, int]] = []

    async def __call__(self, listing: Listing, rank: int) -> None:
        self.items.append((listing, rank))

    @property
    def place_ids(self) -> list[str]:
        return [listing.place_id or "" for listing, _ in self.items]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared_pool() -> AsyncIterator[BrowserPool]:
    async with BrowserPool(browser_settings()) as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _clear_faults(maps_replica: MapsReplica) -> AsyncIterator[None]:
    await maps_replica.faults()
    yield
    await maps_replica.faults()


def breaker(clock: Any = None, threshold: int = 5) -> CircuitBreaker:
    return CircuitBreaker(
        "google_maps",
        failure_threshold=threshold,
        reset_timeout=60.0,
        call_timeout=None,
        clock=clock or MonotonicClock(),
    )


def scraper_for(pool: BrowserPool, maps_replica: MapsReplica, clock: Any = None, **maps: Any) -> MapsScraper:
    clock = clock or MonotonicClock()
    return MapsScraper(pool, maps_settings(maps_replica.base_url, **maps), breaker=breaker(clock), clock=clock)


async def test_limit_above_feed_size_yields_exactly_the_answer_set(
    maps_replica: MapsReplica, shared_pool: BrowserPool
) -> None:
    expected = [a["place_id"] for a in await maps_replica.answers()]
    assert len(expected) == 120
    out = Collected()
    clock = MonotonicClock()
    # The production path: cards parsed in a worker process.
    async with ParsePool() as parsers:
        scraper = MapsScraper(
            shared_pool, maps_settings(maps_replica.base_url), breaker=breaker(clock), clock=clock, parsers=parsers
        )
        outcome = await scraper.scrape(ScrapeRequest(QUERY, LOCATION, limit=500), out, set())
    assert out.place_ids == expected
    assert [rank for _, rank in out.items] == list(range(1, 121))
    assert outcome.found == outcome.emitted == 120
    assert outcome.feed_exhausted
    assert outcome.end_reason == "end_of_list"
    assert outcome.malformed == 0
    # The fields the cards show are the replica's business, not just its id.
    by_id = {a["place_id"]: a for a in await maps_replica.answers()}
    for listing, _ in out.items:
        assert listing.name == by_id[listing.place_id or ""]["name"]


async def test_smaller_limit_yields_first_n_in_feed_order(maps_replica: MapsReplica, shared_pool: BrowserPool) -> None:
    expected = [a["place_id"] for a in await maps_replica.answers("dentists", LOCATION)]
    out = Collected()
    request = ScrapeRequest("dentists", LOCATION, limit=25)
    outcome = await scraper_for(shared_pool, maps_replica).scrape(request, out, set())
    assert out.place_ids == expected[:25]
    assert outcome.end_reason == "limit"
    assert not outcome.feed_exhausted
    assert outcome.found == 25


async def test_killed_browser_then_fresh_browser_finishes_the_job_exactly_once(maps_replica: MapsReplica) -> None:
    expected = [a["place_id"] for a in await maps_replica.answers("roofers", LOCATION)]
    request = ScrapeRequest("roofers", LOCATION, limit=500)
    out = Collected()
    emitted: set[str] = set()
    user_data_dirs: list[str] = []

    async def emit_then_kill(listing: Listing, rank: int) -> None:
        await out(listing, rank)
        emitted.add(listing.place_id or "")
        if len(out.items) == 40:
            os.kill(pool.pids()[0], signal.SIGKILL)

    async with BrowserPool(browser_settings(pages=1)) as pool:
        user_data_dirs.append(pool.user_data_dir or "")
        with pytest.raises(BrowserCrashedError):
            await scraper_for(pool, maps_replica).scrape(request, emit_then_kill, emitted)
    assert 40 <= len(out.items) < 120
    # What the supervisor does: a fresh browser, the same job, what was already emitted.
    async with BrowserPool(browser_settings(pages=1)) as pool:
        outcome = await scraper_for(pool, maps_replica).scrape(request, out, set(emitted))
    assert sorted(out.place_ids) == sorted(expected)
    assert len(out.place_ids) == len(set(out.place_ids)) == 120
    assert [rank for _, rank in out.items] == list(range(1, 121))
    assert outcome.skipped == len(emitted)
    assert outcome.feed_exhausted
    assert proctree.browser_processes(user_data_dirs[0]) == []


async def test_google_hanging_while_the_browser_answers_is_an_outage_and_a_retry_recovers(
    maps_replica: MapsReplica
) -> None:
    await maps_replica.faults(hang=True)
    request = ScrapeRequest("electricians", LOCATION, limit=10)
    async with BrowserPool(browser_settings(pages=1)) as pool:
        scraper = scraper_for(pool, maps_replica, navigation_timeout=1.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # A page that never loads while the browser answers is Google unreachable, not a broken browser.
        with pytest.raises(UnreachableError):
            await scraper.scrape(request, Collected(), set())
        assert loop.time() - started < 15, "the navigation timeout, not a test timeout, ended the hang"
        assert await pool.responsive()
        await maps_replica.faults()
        out = Collected()
        await scraper.scrape(request, out, set())
    assert out.place_ids == [a["place_id"] for a in await maps_replica.answers("electricians", LOCATION)][:10]


async def test_a_refused_connection_or_an_unknown_host_is_an_outage_counted_by_the_breaker(
    shared_pool: BrowserPool,
) -> None:
    clock = FakeClock()
    maps_breaker = breaker(clock, threshold=2)
    request = ScrapeRequest("plumbers", LOCATION, limit=5)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    for base_url in (f"http://127.0.0.1:{port}", "http://no-such-host.invalid"):
        scraper = MapsScraper(shared_pool, maps_settings(base_url), breaker=maps_breaker, clock=clock)
        with pytest.raises(UnreachableError, match=r"ERR_CONNECTION_REFUSED|ERR_NAME_NOT_RESOLVED"):
            await scraper.scrape(request, Collected(), set())
    assert maps_breaker.state.value == BreakerState.OPEN.value


async def test_sorry_opens_the_breaker_and_nothing_reaches_google_until_the_trial(
    maps_replica: MapsReplica, shared_pool: BrowserPool
) -> None:
    clock = FakeClock()
    maps_breaker = breaker(clock, threshold=1)
    scraper = MapsScraper(shared_pool, maps_settings(maps_replica.base_url), breaker=maps_breaker, clock=clock)
    request = ScrapeRequest("painters", LOCATION, limit=5)
    await maps_replica.faults(sorry=True)
    with pytest.raises(BlockedError, match="/sorry/"):
        await scraper.scrape(request, Collected(), set())
    assert maps_breaker.state.value == BreakerState.OPEN.value
    before = await maps_replica.stats()

    out = Collected()
    job = asyncio.create_task(scraper.scrape(request, out, set()))
    try:
        await clock.wait_for_sleepers()
        await clock.advance(59)
        await clock.wait_for_sleepers()
        assert not job.done()
        assert _google_requests(await maps_replica.stats()) == _google_requests(before), "none while open"
        await maps_replica.faults()
        await clock.advance(1)
        outcome = await asyncio.wait_for(job, 30)
    finally:
        job.cancel()
    assert maps_breaker.state is BreakerState.CLOSED
    assert outcome.emitted == 5
    assert out.place_ids == [a["place_id"] for a in await maps_replica.answers("painters", LOCATION)][:5]


async def test_sorry_trial_that_fails_opens_the_breaker_again(
    maps_replica: MapsReplica, shared_pool: BrowserPool
) -> None:
    clock = FakeClock()
    maps_breaker = breaker(clock, threshold=1)
    scraper = MapsScraper(shared_pool, maps_settings(maps_replica.base_url), breaker=maps_breaker, clock=clock)
    request = ScrapeRequest("painters", LOCATION, limit=5)
    await maps_replica.faults(sorry=True)
    with pytest.raises(BlockedError):
        await scraper.scrape(request, Collected(), set())
    job = asyncio.create_task(scraper.scrape(request, Collected(), set()))
    try:
        await clock.wait_for_sleepers()
        before = await maps_replica.stats()
        await clock.advance(60)
        with pytest.raises(BlockedError):
            await asyncio.wait_for(job, 30)
    finally:
        job.cancel()
    after = await maps_replica.stats()
    assert _searches(after) - _searches(before) == 1, "exactly one trial"
    assert maps_breaker.state.value == BreakerState.OPEN.value


def _google_requests(stats: dict[str, Any]) -> dict[str, int]:
    """Requests a scraper makes (the test's own /_* calls excluded)."""
    return {
        route: n for route, n in stats["requests"].items() if route not in ("control", "answers", "stats")
    }


def _searches(stats: dict[str, Any]) -> int:
    return int(stats["requests"].get("search", 0))


async def test_consent_page_is_passed_and_a_consent_loop_is_a_block(maps_replica: MapsReplica) -> None:
    # A browser of its own: consent cookies must not come from another test.
    request = ScrapeRequest("bakers", LOCATION, limit=8)
    out = Collected()
    async with BrowserPool(browser_settings(pages=1)) as pool:
        await maps_replica.faults(consent="loop")
        with pytest.raises(BlockedError, match="consent loop"):
            await scraper_for(pool, maps_replica).scrape(request, Collected(), set())
        await maps_replica.faults(consent=True)
        await scraper_for(pool, maps_replica).scrape(request, out, set())
    assert out.place_ids == [a["place_id"] for a in await maps_replica.answers("bakers", LOCATION)][:8]
    assert (await maps_replica.stats())["requests"].get("consent_save", 0) >= 3


async def test_malformed_cards_are_counted_and_the_rest_parsed(
    maps_replica: MapsReplica, shared_pool: BrowserPool, caplog: pytest.LogCaptureFixture
) -> None:
    await maps_replica.faults(malformed_cards=6)
    expected = [a["place_id"] for a in await maps_replica.answers("florists", LOCATION)]
    out = Collected()
    with caplog.at_level(logging.WARNING, logger="leadlawk_daemon.maps.scraper"):
        outcome = await scraper_for(shared_pool, maps_replica).scrape(
            ScrapeRequest("florists", LOCATION, limit=500), out, set()
        )
    assert outcome.malformed == 6
    assert len(out.place_ids) == 120 - 6
    # The rest are there, in feed order.
    assert [p for p in expected if p in set(out.place_ids)] == out.place_ids
    assert any(getattr(r, "malformed", None) == 6 for r in caplog.records)


async def test_empty_feed_is_a_block(maps_replica: MapsReplica, shared_pool: BrowserPool) -> None:
    await maps_replica.faults(empty_feed=True)
    with pytest.raises(BlockedError, match="empty"):
        await scraper_for(shared_pool, maps_replica, scroll_timeout=1.0).scrape(
            ScrapeRequest("tailors", LOCATION, limit=5), Collected(), set()
        )


async def test_feed_that_stops_growing_ends_the_job_with_what_it_has(
    maps_replica: MapsReplica, shared_pool: BrowserPool
) -> None:
    await maps_replica.faults(feed_stops_after=30)
    out = Collected()
    outcome = await scraper_for(shared_pool, maps_replica, scroll_timeout=1.0).scrape(
        ScrapeRequest("movers", LOCATION, limit=100), out, set()
    )
    assert out.place_ids == [a["place_id"] for a in await maps_replica.answers("movers", LOCATION)][:30]
    assert outcome.end_reason == "stopped_growing"
    assert outcome.feed_exhausted


async def test_compact_cards_get_their_website_from_the_place_page(
    maps_replica: MapsReplica, shared_pool: BrowserPool
) -> None:
    answers = await maps_replica.answers("barbers", LOCATION)
    out = Collected()
    outcome = await scraper_for(shared_pool, maps_replica).scrape(
        ScrapeRequest("barbers", LOCATION, limit=500, needs=frozenset({"website"})), out, set()
    )
    compact = [a for a in answers if a["compact"]]
    assert compact, "the replica serves some compact cards"
    # A card showing neither phone nor website may be compact: only those are looked up.
    bare = [a for a in answers if a["compact"] or (a["phone"] is None and a["website"] is None)]
    assert outcome.details_fetched == len(bare) < len(answers)
    websites = {listing.place_id: listing.website for listing, _ in out.items}
    assert {a["place_id"]: a["website"] for a in answers} == websites


async def test_single_place_search_yields_that_place(maps_replica: MapsReplica, shared_pool: BrowserPool) -> None:
    answers = await maps_replica.answers("place: Joe's Diner", LOCATION)
    assert len(answers) == 1
    out = Collected()
    outcome = await scraper_for(shared_pool, maps_replica).scrape(
        ScrapeRequest("place: Joe's Diner", LOCATION, limit=10), out, set()
    )
    assert out.place_ids == [answers[0]["place_id"]]
    assert outcome.end_reason == "single_place"
    assert outcome.feed_exhausted
