"""Address parts, E.164 phones and address results through the real scraper: Chromium against the
Maps replica's places abroad, with the pages parsed in the parse pool as in production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from actors.clock import MonotonicClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.parse_pool import ParsePool
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeRequest
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import BrowserSettings, MapsSettings
from tests.support.replicas import MapsReplica

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module"), pytest.mark.maps_replica(seed=11)]

PARTS = ("street", "locality", "region", "postal_code", "country_code")


class Collected:
    def __init__(self) -> None:
        self.listings: list[Listing] = []

    async def __call__(self, listing: Listing, rank: int) -> None:
        self.listings.append(listing)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def scraper(maps_replica: MapsReplica) -> AsyncIterator[MapsScraper]:
    browser = BrowserSettings.model_validate(
        {"executable": None, "headless": True, "pages": 2, "page_recycle_after": 25,
         "browser_recycle_after": 200, "memory_limit_mb": 4096, "launch_timeout": 30.0}
    )  # fmt: skip
    maps = MapsSettings.model_validate(
        {"base_url": maps_replica.base_url, "language": "en", "navigations_per_minute": 60_000,
         "navigation_timeout": 10.0, "scroll_timeout": 3.0, "max_idle_scrolls": 2}
    )  # fmt: skip
    clock = MonotonicClock()
    breaker = CircuitBreaker("google_maps", failure_threshold=5, reset_timeout=60.0, call_timeout=None, clock=clock)
    async with BrowserPool(browser) as pool, ParsePool() as parsers:
        yield MapsScraper(pool, maps, breaker=breaker, clock=clock, parsers=parsers)


async def _scrape(scraper: MapsScraper, request: ScrapeRequest) -> tuple[list[Listing], Any]:
    out = Collected()
    outcome = await scraper.scrape(request, out, set())
    return out.listings, outcome


@pytest.mark.parametrize(
    ("location", "country"), [("Berlin, Germany", "DE"), ("São Paulo, Brazil", "BR"), ("Makati, Philippines", "PH")]
)
async def test_place_pages_abroad_give_googles_parts_and_e164_phones(
    maps_replica: MapsReplica, scraper: MapsScraper, location: str, country: str
) -> None:
    truth = {a["place_id"]: a for a in await maps_replica.answers("plumbers", location)}
    # A field no card shows (plus_code): every lead's place page is read.
    request = ScrapeRequest("plumbers", location, limit=12, needs=frozenset({"plus_code"}))
    listings, _ = await _scrape(scraper, request)
    assert len(listings) == 12
    for listing in listings:
        answer = truth[listing.place_id or ""]
        assert listing.country_code == country
        assert listing.phone_e164 == answer["phone_e164"], answer["name"]
        if answer["full_address"] is None:
            assert listing.street is None
            continue
        assert listing.address_source == "google"
        assert {p: getattr(listing, p) for p in PARTS} == {p: answer[p] for p in PARTS}


async def test_result_cards_abroad_are_parsed_by_the_jobs_country(
    maps_replica: MapsReplica, scraper: MapsScraper
) -> None:
    truth = {a["place_id"]: a for a in await maps_replica.answers("dentists", "London, UK")}
    listings, _ = await _scrape(scraper, ScrapeRequest("dentists", "London, UK", limit=20))
    assert len(listings) == 20
    for listing in listings:
        answer = truth[listing.place_id or ""]
        assert listing.country_code == "GB"
        assert listing.street == answer["address"]
        if answer["phone"] is not None and not answer["compact"]:
            assert listing.phone_e164 == answer["phone_e164"], answer["name"]


async def test_an_address_result_is_kept_out_of_the_leads_and_counted(
    maps_replica: MapsReplica, scraper: MapsScraper
) -> None:
    query = "plumbers near 5024 S 110th St"
    answers = await maps_replica.answers(query, "Omaha, NE")
    address = answers[0]
    assert address["name"] == "5024 S 110th St"
    assert address["rating"] is None
    told: list[str] = []
    listings, outcome = await _scrape(scraper, ScrapeRequest(query, "Omaha, NE", limit=10, on_address=told.append))
    assert told == [address["place_id"]]  # what the job's progress counts
    assert address["place_id"] not in {x.place_id for x in listings}
    assert [x.place_id for x in listings] == [a["place_id"] for a in answers[1:11]]
    assert all(x.kind == "business" for x in listings)
    assert outcome.addresses == 1
    kept, outcome = await _scrape(scraper, ScrapeRequest(query, "Omaha, NE", limit=10, keep_addresses=True))
    assert kept[0].place_id == address["place_id"]
    assert kept[0].kind == "address"
    assert outcome.addresses == 0
