"""One search on Google Maps, from URL to listings emitted downstream one by one.

The flow: open the search (past the consent page), wait for the results feed or a single-place
redirect, then read, emit and scroll until the end marker, the job's limit, or
``max_idle_scrolls`` scrolls without growth. A listing lacking a field the job needs gets its
place page fetched. Each listing goes downstream as soon as it is read, with its rank (its
position in the feed); ranks already emitted before a crash are skipped, none are lost.

Every request to Google passes the Google Maps circuit breaker and the politeness limiter; a
block signal raises :class:`BlockedError` and counts against the breaker. While the breaker is
open the scraper waits on the injected clock for its trial, making no request at all. Every
await is bounded or cancellable: the caller enforces the job's ``max_runtime_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from aiolimiter import AsyncLimiter
from playwright.async_api import Page, Request, Response

from actors.clock import Clock
from leadlawk_daemon.events import EventSink
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.area import Viewport
from leadlawk_daemon.maps.blocking import (
    CONSENT_LOOP,
    PROBE_JS,
    BlockedError,
    PageProbe,
    block_signal,
    html_block_signal,
)
from leadlawk_daemon.maps.browser import BrowserError, BrowserPool, BrowserTimeoutError, PageError, UnreachableError
from leadlawk_daemon.maps.completion import complete_listing
from leadlawk_daemon.maps.consent import ACTION_JS, answer_allowed, answer_selectors, html_is_consent
from leadlawk_daemon.maps.countries import country_of_location
from leadlawk_daemon.maps.extent import page_viewport
from leadlawk_daemon.maps.feed import FeedParse, parse_feed
from leadlawk_daemon.maps.feed_page import FeedPage
from leadlawk_daemon.maps.limited_view import limited_view_in
from leadlawk_daemon.maps.parse_pool import ParsePool, parse_place_page
from leadlawk_daemon.maps.session import SessionCookies
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.outcomes import EndReason, ScrapeOutcome
from leadlawk_daemon.quota.pace import Pacer
from leadlawk_daemon.resilience.breaker import BreakerOpenError, CircuitBreaker
from leadlawk_daemon.resilience.worker_pool import TaskLost
from leadlawk_daemon.settings import CircuitBreakerSettings, MapsSettings

__all__ = [
    "BREAKER_NAME",
    "Emit",
    "LimitedViewError",
    "MapsScraper",
    "ScrapeError",
    "ScrapeRequest",
    "maps_breaker",
    "search_url",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

BREAKER_NAME = "google_maps"
Emit = Callable[[Listing, int], Awaitable[None]]

# Consent answered this often and shown again: Google is looping us, which is a block.
_MAX_CONSENT_PASSES = 2
_READY_JS = """() => !!document.querySelector('div[role="feed"]')
  || location.pathname.includes('/maps/place/')"""
# A proxy refusing our credentials (docs/egress-pool.md): that exit's outage, as a 5xx is Google's.
PROXY_AUTH_REFUSED = 407
# While a half-open trial runs (retry_after 0), look again this often on the clock.
_TRIAL_POLL = 1.0


class ScrapeError(Exception):
    """The search could not be read (no feed, no place page): not a block, not the browser."""


class LimitedViewError(UnreachableError):
    """Google shows its signed-out limited view while ``maps.on_limited_view`` is ``wait``: an
    outage like Google unreachable (the Maps breaker counts it, jobs wait), until a signed-in
    session is imported."""

    def __init__(self, url: str) -> None:
        super().__init__(f"Google Maps shows its limited view (signed out), and maps.on_limited_view is wait ({url})")


class Breaker(Protocol):
    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...


@dataclass(frozen=True, slots=True)
class ScrapeRequest:
    """What the scraper needs of a job. ``needs`` names the Listing fields the job filters or
    enriches on: a listing lacking one gets its place page fetched."""

    query: str
    location: str | None = None
    limit: int = 50
    needs: frozenset[str] = frozenset()
    job_id: str | None = None
    # A map to search (area coverage): the query alone then, as on Google a place named in the
    # text would move the map to it.
    viewport: Viewport | None = None
    # Told the view of each page read ("full" or "limited"): the job's owner keeps it.
    on_view: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    # Results that are a street address or a locality (kind "address") are emitted too; else each
    # one is told here (by place id: a result seen twice is told twice) and counted in the outcome.
    keep_addresses: bool = False
    on_address: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    @property
    def country(self) -> str | None:
        """The country the search's location names: what a lead's address and phone are read by
        when its own page does not say."""
        return country_of_location(self.location)

    @property
    def search_text(self) -> str:
        if self.viewport is not None:
            return self.query
        return f"{self.query} in {self.location}" if self.location else self.query


def search_url(base_url: str, request: ScrapeRequest, language: str) -> str:
    at = f"/{request.viewport.url_segment()}" if request.viewport is not None else ""
    return f"{base_url.rstrip('/')}/maps/search/{quote(request.search_text, safe='')}{at}?hl={quote(language)}"


def maps_breaker(
    settings: CircuitBreakerSettings,
    *,
    clock: Clock,
    metrics: Metrics | None = None,
    call_timeout: float | None = None,
    on_change: Callable[[str, Any, Any], None] | None = None,
) -> CircuitBreaker:
    """The Google Maps breaker: blocks and timeouts count; a crashed browser is not Google's doing.

    ``on_change`` replaces the default handler (log and gauge): the daemon's dependency registry's.
    """

    def logged(name: str, old: Any, new: Any) -> None:
        log.warning("circuit breaker changed", extra={"breaker": name, "from": str(old), "to": str(new)})
        if metrics is not None:
            metrics.breaker_state.labels(breaker=name).set(new.metric_value)

    if metrics is not None:
        metrics.breaker_state.labels(breaker=BREAKER_NAME).set(0)
    return CircuitBreaker.from_settings(
        BREAKER_NAME,
        settings,
        clock=clock,
        on_change=on_change or logged,
        exclude=lambda exc: isinstance(exc, BrowserError) and not isinstance(exc, BrowserTimeoutError),
        call_timeout=call_timeout,
    )


class _FeedLoadFailures:
    """The page's own requests for more results that failed (refused, reset, 5xx) while the feed was
    read: tells a feed that ended from one that could not load its next page."""

    def __init__(self, page: Page) -> None:
        self._page = page
        self._origin = _origin(page.url)
        self.seen: list[str] = []

    def __enter__(self) -> _FeedLoadFailures:
        self._page.on("requestfailed", self._failed)
        self._page.on("response", self._response)
        return self

    def __exit__(self, *exc: object) -> None:
        self._page.remove_listener("requestfailed", self._failed)
        self._page.remove_listener("response", self._response)

    def _ours(self, request: Request) -> bool:
        return request.resource_type in ("xhr", "fetch") and _origin(request.url) == self._origin

    def _failed(self, request: Request) -> None:
        if self._ours(request):
            self.seen.append(f"{request.failure or 'request failed'} ({request.url})")

    def _response(self, response: Response) -> None:
        if response.status >= 500 and self._ours(response.request):
            self.seen.append(f"HTTP {response.status} ({response.url})")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _lacks(listing: Listing, name: str) -> bool:
    if name == "website":
        # A full card shows a phone and, if there is one, the website button: a card showing
        # neither is the compact kind, where "no website" only means "not shown here".
        return listing.website is None and listing.phone is None
    return getattr(listing, name, None) is None


class MapsScraper:
    """Scrapes searches with pages from ``pool``; one instance serves every job of an actor."""

    def __init__(
        self,
        pool: BrowserPool,
        settings: MapsSettings,
        *,
        breaker: Breaker,
        clock: Clock,
        metrics: Metrics | None = None,
        limiter: Pacer | None = None,
        parsers: ParsePool | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.pool = pool
        self.events = events
        self.settings = settings
        self.breaker = breaker
        self.clock = clock
        self.metrics = metrics
        # One navigation per interval, no burst: politeness is about spacing, not an average. A
        # limiter given is the budget shared over Redis (maps.politeness_scope host or fleet).
        self.limiter: Pacer = limiter or AsyncLimiter(1, 60.0 / settings.navigations_per_minute)
        # Without a worker process, parsing runs in a thread: off the loop, but not out of its GC.
        self.parsers = parsers
        self.session = SessionCookies(settings.session_file) if settings.session_file else None
        self._signed_out_said = False

    async def read_feed(self, html: str) -> FeedParse:
        if self.parsers is None:
            return await asyncio.to_thread(parse_feed, html)
        try:
            return await self.parsers.feed(html)
        except TaskLost as exc:
            # The search's failure, as a page that is neither feed nor place page is.
            raise ScrapeError(f"a results page could not be parsed: {exc.reason}") from None

    async def read_place_page(self, html: str, url: str) -> Listing | None:
        """The page's listing; None when it has none, or could not be parsed within its budget
        (that lead's loss, as an unavailable place page is: the card's facts stand)."""
        if self.parsers is None:
            return await asyncio.to_thread(parse_place_page, html, url)
        try:
            return await self.parsers.place_page(html, url)
        except TaskLost as exc:
            log.warning("place page could not be parsed", extra={"url": url, "reason": exc.reason})
            return None

    # -- the flow --------------------------------------------------------------------------------

    async def scrape(
        self, request: ScrapeRequest, emit: Emit, already_emitted: Collection[str]
    ) -> ScrapeOutcome:
        started = time.monotonic()
        url = search_url(self.settings.base_url, request, self.settings.language)
        context = {"job_id": request.job_id, "query": request.search_text}
        try:
            async with self.pool.page() as page:
                probe = await self._guarded(self._open_search, page, url, request)
                if probe.place and not probe.feed:
                    outcome = await self._single_place(
                        page, probe.url, emit, already_emitted, request.country, request.keep_addresses,
                        request.on_address,
                    )
                else:
                    outcome = await self._read_feed(page, request, emit, already_emitted)
        except BrowserTimeoutError as exc:
            # A page that does not load is Google unreachable (a blackhole, a dead route) when the
            # browser itself still answers; otherwise the browser is frozen and must be replaced.
            if await self.pool.responsive():
                raise UnreachableError(str(exc)) from None
            raise
        outcome = replace(outcome, seconds=time.monotonic() - started)
        if outcome.malformed:
            log.warning("malformed result cards skipped", extra={**context, "malformed": outcome.malformed})
        log.info(
            "search scraped",
            extra={
                **context,
                "found": outcome.found,
                "emitted": outcome.emitted,
                "end_reason": outcome.end_reason,
                "feed_exhausted": outcome.feed_exhausted,
            },
        )
        return outcome

    async def location_viewport(self, location: str) -> Viewport:
        """The map Google opens for ``location`` searched alone: its extent as Google reports it."""
        url = search_url(self.settings.base_url, ScrapeRequest(location), self.settings.language)
        async with self.pool.page() as page:
            probe = await self._guarded(self._open_search, page, url)
            html = await self.pool.bounded(page.content(), self.settings.navigation_timeout, "reading the map")
        viewport = page_viewport(html, probe.url, self.settings.viewport_width, self.settings.viewport_height)
        if viewport is None:
            raise ScrapeError(f"the page for {location!r} states no map: {probe.url}")
        return viewport

    async def _open_search(self, page: Page, url: str, request: ScrapeRequest | None = None) -> PageProbe:
        if self.session is not None:
            await self.session.apply(page.context)
        await self._navigate(page, url)
        probe = await self._probe(page)
        passes = 0
        while probe.consent and block_signal(probe) is None:
            if passes >= _MAX_CONSENT_PASSES:
                raise BlockedError(CONSENT_LOOP, probe.url)
            passes += 1
            await self._answer_consent(page)
            probe = await self._probe(page)
        if (reason := block_signal(probe)) is not None:
            raise BlockedError(reason, probe.url)
        if not (probe.feed or probe.place):
            # Google renders the feed (or moves to /maps/place/) by script after the load.
            # A timeout here is judged below from what the page shows.
            with contextlib.suppress(PageError):
                await self.pool.bounded(
                    page.wait_for_function(
                        _READY_JS, timeout=self.settings.navigation_timeout * 1000, polling=50
                    ),
                    self.settings.navigation_timeout + 5,
                    "waiting for the results",
                )
            probe = await self._probe(page)
            if (reason := block_signal(probe)) is not None:
                raise BlockedError(reason, probe.url)
            if not (probe.feed or probe.place):
                raise ScrapeError(f"neither a results feed nor a place page at {probe.url}")
        if probe.feed and not probe.place:
            feed = self._feed_page(page)
            if not await feed.wait_for_first_results() or (await feed.link_count()) == 0:
                # Every search has results on Google: an empty feed is Google holding them back.
                raise BlockedError("an empty results feed", probe.url)
        if request is not None:
            html = await self.pool.bounded(page.content(), self.settings.navigation_timeout, "reading the page")
            self._saw(request, await asyncio.to_thread(limited_view_in, html), probe.url)
        return probe

    async def _answer_consent(self, page: Page) -> None:
        # By the form's hidden answer field, in whatever language its buttons speak (maps/consent.py).
        timeout = self.settings.navigation_timeout
        button = None
        for selector in answer_selectors(self.settings.consent):
            candidate = page.locator(selector).first
            if not await self.pool.bounded(candidate.count(), timeout, "reading the consent page"):
                continue
            action = await self.pool.bounded(candidate.evaluate(ACTION_JS), timeout, "reading the consent page")
            if answer_allowed(str(action), page.url, self.settings.base_url):
                button = candidate
                break
        if button is None:
            # Google's page changed shape: no exit gets past it, so Maps waits (an outage), not the job.
            raise BlockedError("a consent page without a reject-all or accept-all form to answer", page.url)
        await self._polite()

        async def click_and_follow() -> None:
            async with page.expect_navigation(timeout=timeout * 1000, wait_until="domcontentloaded"):
                await button.click(timeout=timeout * 1000)

        await self.pool.bounded(click_and_follow(), timeout + 5, "answering the consent page")

    async def _read_feed(
        self, page: Page, request: ScrapeRequest, emit: Emit, already_emitted: Collection[str]
    ) -> ScrapeOutcome:
        feed = self._feed_page(page)
        ranks: dict[str, int] = {}
        addresses: set[str] = set()
        emitted = skipped = malformed = details = scrolls = idle = 0
        end_reason: EndReason | None = None
        country = request.country

        async def take(parsed: FeedParse) -> None:
            nonlocal emitted, skipped, details
            for listing in parsed.listings:
                place_id = listing.place_id
                if place_id is None or place_id in ranks or place_id in addresses or len(ranks) >= request.limit:
                    continue
                completed = complete_listing(listing, country)
                if completed.kind == "address" and not request.keep_addresses:
                    addresses.add(place_id)
                    if request.on_address is not None:
                        request.on_address(place_id)
                    continue
                rank = ranks[place_id] = len(ranks) + 1
                if place_id in already_emitted:
                    skipped += 1
                    continue
                if any(_lacks(listing, name) for name in request.needs):
                    # Completed after the merge: the place page's own address parts, when it has
                    # them, win over a parse of the card's street line.
                    completed = complete_listing(await self._with_details(page, listing, request), country)
                    details += 1
                await emit(completed, rank)
                emitted += 1

        with _FeedLoadFailures(page) as load_failures:
            while end_reason is None:
                chunk = await feed.collect()
                if not chunk.html:
                    # Through the breaker: a block met here counts against it like any other.
                    await self._guarded(self._feed_gone, page)
                parsed = await self.read_feed(chunk.html)
                malformed += parsed.malformed
                await take(parsed)
                if len(ranks) >= request.limit:
                    end_reason = "limit"
                elif chunk.ended or parsed.end_of_list:
                    end_reason = "end_of_list"
                elif idle >= self.settings.max_idle_scrolls:
                    if load_failures.seen:
                        # The feed stopped because its next page could not be loaded, not because
                        # Google had no more: an outage, and the search is read again once it ends.
                        raise UnreachableError(f"the results feed stopped loading: {load_failures.seen[-1]}")
                    end_reason = "stopped_growing"
                else:
                    await feed.scroll()
                    scrolls += 1
                    grown = await feed.wait_for_growth(chunk.links)
                    idle = 0 if grown else idle + 1
                    if grown:
                        load_failures.seen.clear()
        if end_reason != "limit":
            # A card can be filled in after its slot was read; one last look at the whole feed.
            whole = await self.read_feed(await feed.full_html())
            await take(FeedParse(whole.listings, 0, whole.end_of_list))
            if len(ranks) >= request.limit:
                end_reason = "limit"
        return ScrapeOutcome(
            found=len(ranks),
            emitted=emitted,
            skipped=skipped,
            malformed=malformed,
            details_fetched=details,
            scrolls=scrolls,
            end_reason=end_reason,
            feed_exhausted=end_reason != "limit",
            ranks=ranks,
            addresses=len(addresses),
        )

    async def _feed_gone(self, page: Page) -> None:
        """The results feed left the page while it was read: the page's own script moves to
        /sorry/ when a feed fetch is refused (as Google's does). Without this look the empty page
        would pass for a feed that keeps growing."""
        probe = await self._probe(page)
        if (reason := block_signal(probe)) is not None:
            raise BlockedError(reason, probe.url)
        raise UnreachableError(f"the results feed left the page: {probe.url}")

    async def _single_place(
        self,
        page: Page,
        url: str,
        emit: Emit,
        already_emitted: Collection[str],
        country: str | None = None,
        keep_addresses: bool = False,
        on_address: Callable[[str], None] | None = None,
    ) -> ScrapeOutcome:
        html = await self.pool.bounded(
            page.content(), self.settings.navigation_timeout, "reading the place page"
        )
        listing = await self.read_place_page(html, url)
        if listing is None or listing.place_id is None:
            raise ScrapeError(f"the search led to a place page that could not be read: {url}")
        place_id = listing.place_id
        listing = complete_listing(listing, country)
        if listing.kind == "address" and not keep_addresses:
            if on_address is not None and place_id is not None:
                on_address(place_id)
            return ScrapeOutcome(0, 0, 0, 0, 0, 0, "single_place", True, addresses=1)
        emitted = skipped = 0
        if place_id in already_emitted:
            skipped = 1
        else:
            await emit(listing, 1)
            emitted = 1
        return ScrapeOutcome(1, emitted, skipped, 0, 0, 0, "single_place", True, ranks={place_id: 1})

    async def _with_details(self, page: Page, listing: Listing, request: ScrapeRequest) -> Listing:
        if listing.maps_url is None:
            return listing
        url = urljoin(page.url, listing.maps_url)
        if _origin(url) not in (_origin(page.url), _origin(self.settings.base_url)):
            # The link is data from the page: only Google itself is asked (docs/egress-policy.md).
            return listing
        detail = await self._guarded(self._fetch_place, page, url, request)
        return listing if detail is None else listing.merged(detail)

    async def _fetch_place(self, page: Page, url: str, request: ScrapeRequest) -> Listing | None:
        await self._polite()
        timeout = self.settings.navigation_timeout

        async def fetch() -> tuple[str, int, str]:
            response = await page.context.request.get(url, timeout=timeout * 1000)
            return response.url, response.status, await response.text()

        final_url, status, html = await self.pool.bounded(fetch(), timeout + 5, "fetching a place page")
        if (reason := html_block_signal(final_url, html)) is not None:
            raise BlockedError(reason, final_url)
        if await asyncio.to_thread(html_is_consent, final_url, html):
            # The search page got past consent with this browser's cookies: asked again, the answer did not hold.
            raise BlockedError(CONSENT_LOOP, final_url)
        if status >= 500 or status == PROXY_AUTH_REFUSED:
            # 407: the exit's proxy refused our credentials, an outage of the way out, not the lead's.
            raise UnreachableError(f"fetching a place page: HTTP {status} from {final_url}")
        if status >= 400:
            log.warning("place page unavailable", extra={"url": final_url, "status": status})
            return None
        self._saw(request, await asyncio.to_thread(limited_view_in, html), final_url)
        return await self.read_place_page(html, final_url)

    def _saw(self, request: ScrapeRequest, limited: bool, url: str) -> None:
        """One page read in the full or the limited view: counted, told to the job, and (under
        ``on_limited_view: wait``) a limited one is an outage."""
        view = "limited" if limited else "full"
        if self.metrics is not None:
            self.metrics.maps_view.labels(view=view).inc()
            self.metrics.maps_view_limited.set(1 if limited else 0)
        if limited and self.session is not None and not self._signed_out_said:
            # Said once per loss: the session is configured, so Google signing us out is news.
            self._signed_out_said = True
            cookies_expired = self.session.expired()
            log.warning(
                "the Google Maps session is signed out (the limited view is back); import a fresh one "
                "with `leadlawk maps-session import`",
                extra={
                    "job_id": request.job_id,
                    "on_limited_view": self.settings.on_limited_view,
                    "cookies_expired": cookies_expired,
                },
            )
            if self.events is not None:
                self.events.publish(
                    "maps.session_signed_out",
                    job_id=request.job_id,
                    on_limited_view=self.settings.on_limited_view,
                    cookies_expired=cookies_expired,
                )
        elif not limited and self._signed_out_said:
            self._signed_out_said = False
            log.info("Google Maps shows the full view again", extra={"job_id": request.job_id})
        if limited and self.settings.on_limited_view == "wait":
            raise LimitedViewError(url)
        # Told only of pages whose content is used: a page waited out collected nothing.
        if request.on_view is not None:
            request.on_view(view)

    # -- requests to Google: breaker, limiter, bounded -------------------------------------------

    async def _guarded(self, step: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run one request step through the breaker; while it is open, wait for its trial."""
        while True:
            try:
                return await self.breaker.call(step, *args)
            except BreakerOpenError as refused:
                log.info("waiting for the Google Maps breaker", extra={"retry_after": refused.retry_after})
                await self.clock.sleep(refused.retry_after or _TRIAL_POLL)

    async def _polite(self) -> None:
        started = time.monotonic()
        await self.limiter.acquire()
        if self.metrics is not None:
            self.metrics.rate_limit_wait.labels(limiter="maps").observe(time.monotonic() - started)

    async def _navigate(self, page: Page, url: str) -> None:
        await self._polite()
        timeout = self.settings.navigation_timeout
        response = await self.pool.bounded(
            page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000),
            timeout + 5,
            "opening the search",
        )
        if response is not None and (response.status >= 500 or response.status == PROXY_AUTH_REFUSED):
            raise UnreachableError(f"opening the search: HTTP {response.status} from {response.url}")

    async def _probe(self, page: Page) -> PageProbe:
        raw = await self.pool.bounded(
            page.evaluate(PROBE_JS), self.settings.navigation_timeout, "probing the page"
        )
        return PageProbe.from_js(raw)

    def _feed_page(self, page: Page) -> FeedPage:
        return FeedPage(
            self.pool,
            page,
            operation_timeout=self.settings.navigation_timeout,
            scroll_timeout=self.settings.scroll_timeout,
        )
