"""Google's signed-out limited view: recognised on real-shaped pages, reported, and collected in
full through a signed-in session (the offline Maps replica's ``limited_view`` fault and sessions).

Detection runs on the replica's pages (English, German, class-churned) and on the real 2026
captures, none of which is a limited view; the scraper tests use a real Chromium, one per test
(a browser context keeps the cookies it was given).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from actors.clock import MonotonicClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.limited_view import combine_views, limited_view_in
from leadlawk_daemon.maps.scraper import LimitedViewError, MapsScraper, ScrapeRequest
from leadlawk_daemon.maps.session import write_session_file
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.qualify import HIDDEN_REVIEW_COUNT, Filters, qualify
from tests.support.replicas import MapsReplica
from tests.test_scraper import breaker, browser_settings, maps_settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.maps_replica(seed=5, max_results=30),
]

QUERY, LOCATION = "plumbers", "Omaha, NE"
SEARCH = "/maps/search/plumbers%20in%20Omaha%2C%20NE"


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _clear_faults(maps_replica: MapsReplica) -> AsyncIterator[None]:
    await maps_replica.faults()
    yield
    await maps_replica.faults()
    await maps_replica.expire_sessions()


# -- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize("hl", ["en", "de"])
@pytest.mark.parametrize("churn", [False, True])
async def test_the_limited_view_is_recognised_on_results_and_place_pages(
    maps_replica: MapsReplica, hl: str, churn: bool
) -> None:
    await maps_replica.faults(limited_view=0.3, class_churn=churn)
    results = await maps_replica.page(f"{SEARCH}?hl={hl}")
    place_path = (await maps_replica.answer_sheet())["answers"][0]["maps_url"].split("://", 1)[1].split("/", 1)[1]
    place = await maps_replica.page(f"/{place_path}")
    for html in (results, place):
        assert limited_view_in(html)
        # By its sentence alone (no help link, no alert role) ...
        text_only = re.sub(r'href="[^"]*"', 'href="#"', html).replace('role="alert"', "")
        assert limited_view_in(text_only)
        # ... and by its structure alone, whatever the language says.
        banner_words = re.compile(r"(limited view of Google Maps|Ansicht ist beschränkt)")
        assert limited_view_in(banner_words.sub("Xyz", html))
    await maps_replica.faults(class_churn=churn)
    assert not limited_view_in(await maps_replica.page(f"{SEARCH}?hl={hl}"))
    assert not limited_view_in(await maps_replica.page(f"/{place_path}"))


async def test_the_real_captures_are_full_views_and_a_business_named_like_the_banner_is_not_one(corpus: Path) -> None:
    for name in (
        "standard-businesses_website-nowebsite-website.html",
        "compact-business-listing.html",
        "compact-business-listing-expanded-with-website.html",
    ):
        assert not limited_view_in((corpus / name).read_text(encoding="utf-8")), name
    card = (
        '<body><div role="feed"><div role="article" aria-label="x">'
        "<div>You're seeing a limited view of Google Maps Plumbing LLC</div></div></div>"
        "<h1>Die Ansicht ist beschränkt GmbH</h1></body>"
    )
    assert not limited_view_in(card)
    assert combine_views(set()) is None
    assert combine_views({"full"}) == "full"
    assert combine_views({"limited"}) == "limited"
    assert combine_views({"full", "limited"}) == "mixed"


async def test_answers_list_what_the_limited_view_hides_and_a_session_sees_everything(
    maps_replica: MapsReplica
) -> None:
    await maps_replica.faults(limited_view=0.3)
    body = await maps_replica.answer_sheet()
    hidden = set(body["hidden_in_limited_view"])
    assert 0 < len(hidden) < len(body["answers"])
    signed_out = await maps_replica.page(f"{SEARCH}?hl=en")
    session = await maps_replica.new_session()
    cookie = session["storage_state"]["cookies"][0]
    signed_in = await maps_replica.page(f"{SEARCH}?hl=en", cookies={cookie["name"]: cookie["value"]})
    first_page = [a["place_id"] for a in body["answers"][:20]]  # the replica's page_size
    assert not any(place_id in signed_out for place_id in hidden)
    assert all(place_id in signed_in for place_id in first_page)
    assert not limited_view_in(signed_in)
    assert "Reviews" in signed_in
    assert "Reviews" not in signed_out
    assert await maps_replica.expire_sessions() == 1
    assert limited_view_in(await maps_replica.page(f"{SEARCH}?hl=en", cookies={cookie["name"]: cookie["value"]}))


# -- the scraper ----------------------------------------------------------------------------------


class Collected:
    def __init__(self) -> None:
        self.items: list[Listing] = []

    async def __call__(self, listing: Listing, _rank: int) -> None:
        self.items.append(listing)


def _metric(metrics: Metrics, name: str, **labels: str) -> float:
    registry: CollectorRegistry = metrics.registry
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def _scrape(
    maps_replica: MapsReplica, tmp_path: Path, *, session: dict[str, Any] | None = None, **settings: Any
) -> tuple[list[Listing], list[str], Metrics]:
    session_file = None
    if session is not None:
        session_file = tmp_path / "session.json"
        write_session_file(session_file, session["storage_state"]["cookies"])
    maps = maps_settings(maps_replica.base_url, session_file=str(session_file) if session_file else None, **settings)
    metrics = Metrics(process=False)
    views: list[str] = []
    collected = Collected()
    async with BrowserPool(browser_settings(pages=1)) as pool:
        scraper = MapsScraper(pool, maps, breaker=breaker(), clock=MonotonicClock(), metrics=metrics)
        request = ScrapeRequest(QUERY, LOCATION, limit=500, on_view=views.append)
        await scraper.scrape(request, collected, ())
    return collected.items, views, metrics


async def test_a_signed_out_scrape_is_reported_limited_and_misses_what_google_hides(
    maps_replica: MapsReplica, tmp_path: Path
) -> None:
    await maps_replica.faults(limited_view=0.3)
    body = await maps_replica.answer_sheet()
    hidden = set(body["hidden_in_limited_view"])
    listings, views, metrics = await _scrape(maps_replica, tmp_path)
    assert views == ["limited"]
    assert {x.place_id for x in listings} == {a["place_id"] for a in body["answers"]} - hidden
    assert all(x.review_count is None for x in listings)
    assert any(x.rating is not None for x in listings)  # stars are still shown
    assert _metric(metrics, "leadlawk_maps_view_total", view="limited") == 1
    assert _metric(metrics, "leadlawk_maps_view_limited") == 1


async def test_a_signed_in_session_sees_the_full_answer_set_with_review_counts_until_it_expires(
    maps_replica: MapsReplica, tmp_path: Path
) -> None:
    await maps_replica.faults(limited_view=0.3)
    body = await maps_replica.answer_sheet()
    session = await maps_replica.new_session()
    listings, views, metrics = await _scrape(maps_replica, tmp_path, session=session)
    assert views == ["full"]
    assert [x.place_id for x in listings] == [a["place_id"] for a in body["answers"]]
    assert [x.review_count for x in listings] == [a["review_count"] for a in body["answers"]]
    assert _metric(metrics, "leadlawk_maps_view_limited") == 0

    await maps_replica.expire_sessions()  # the account signed out, or its cookies lapsed
    listings, views, metrics = await _scrape(maps_replica, tmp_path, session=session)
    assert views == ["limited"]
    assert len(listings) == len(body["answers"]) - len(body["hidden_in_limited_view"])
    assert _metric(metrics, "leadlawk_maps_view_limited") == 1


async def test_waiting_on_the_limited_view_is_an_outage_for_the_maps_breaker(
    maps_replica: MapsReplica, tmp_path: Path
) -> None:
    await maps_replica.faults(limited_view=0.3)
    with pytest.raises(LimitedViewError, match="limited view"):
        await _scrape(maps_replica, tmp_path, on_limited_view="wait")


# -- qualification --------------------------------------------------------------------------------


async def test_a_review_count_google_hides_is_its_own_reason_and_can_be_accepted() -> None:
    lead = Listing("Acme Plumbing", place_id="ChIJ" + "a" * 23, rating=4.7, review_count=None)
    rejecting = Filters(min_reviews=10)
    accepting = Filters(min_reviews=10, min_reviews_when_hidden="accept")
    assert qualify(lead, (), rejecting, limited_view=True).reasons == (HIDDEN_REVIEW_COUNT,)
    assert qualify(lead, (), accepting, limited_view=True).qualified
    # Read in the full view, an unknown count is still "not met", whatever the setting.
    assert qualify(lead, (), accepting).reasons == ("review count unknown, minimum 10",)
    assert Filters.from_spec({"min_reviews": 3}, "accept").min_reviews_when_hidden == "accept"
    assert Filters.from_spec({"min_reviews": 3, "min_reviews_when_hidden": "reject"}, "accept") \
        .min_reviews_when_hidden == "reject"
