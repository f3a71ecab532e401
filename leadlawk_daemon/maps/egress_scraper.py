"""The Maps scraper over the egress pool: each search goes out through one leased exit.

A :class:`RoutedScraper` answers what a :class:`MapsScraper` answers (``scrape``,
``location_viewport``), so the area search and the scraper actor drive either. Per exit it keeps
one ``MapsScraper``, on that exit's browser (its own cookies, consent answer and session), paced
by that exit's politeness budget (counted as the exit's navigations) and guarded by an
:class:`ExitBreaker`. A failure that leaves another exit usable is raised as
:class:`ExitUnavailable`, which the caller answers by searching again at once; when it was the
last exit standing the original error goes up, as Google's outage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from aiolimiter import AsyncLimiter

from leadlawk_daemon.maps.area import Viewport
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.egress_pool import EXIT_FAILURES, EgressPool, ExitBreaker, ExitHealth, ExitUnavailable, Guard
from leadlawk_daemon.maps.scraper import Emit, MapsScraper, ScrapeRequest
from leadlawk_daemon.outcomes import ScrapeOutcome
from leadlawk_daemon.quota.pace import Pacer
from leadlawk_daemon.settings import MapsSettings

__all__ = ["CountingPacer", "RoutedScraper"]


class CountingPacer:
    """An exit's politeness budget; every turn taken is one navigation through the exit."""

    def __init__(self, pool: EgressPool, health: ExitHealth, inner: Pacer) -> None:
        self._pool = pool
        self._health = health
        self._inner = inner

    async def acquire(self) -> None:
        await self._inner.acquire()
        self._pool.navigated(self._health)


# Builds a MapsScraper on one exit's browser: (browser, breaker, limiter) -> scraper.
ScraperFactory = Callable[[BrowserPool, Guard, Pacer], MapsScraper]


class RoutedScraper:
    def __init__(
        self,
        pool: EgressPool,
        browser_for: Callable[[ExitHealth], Awaitable[BrowserPool]],
        maps_breaker: Guard,
        settings: MapsSettings,
        make: ScraperFactory,
        shared_pacer: Pacer | None = None,
    ) -> None:
        self.pool = pool
        self._browser_for = browser_for
        self._maps_breaker = maps_breaker
        self._settings = settings
        self._make = make
        # Used by every exit when politeness is not per exit (scope host, fleet, process).
        self._shared_pacer = shared_pacer
        self._scrapers: dict[str, tuple[BrowserPool, MapsScraper]] = {}

    @property
    def width(self) -> int:
        return self.pool.width

    async def _scraper(self, health: ExitHealth) -> MapsScraper:
        browser = await self._browser_for(health)
        known = self._scrapers.get(health.name)
        if known is not None and known[0] is browser:
            return known[1]
        pacer = health.pacer or self._shared_pacer
        if pacer is None:
            # One navigation per interval, no burst, per exit (as MapsScraper's own limiter).
            pacer = health.pacer = AsyncLimiter(1, 60.0 / self._settings.navigations_per_minute)
        breaker = ExitBreaker(self.pool, health, self._maps_breaker)
        scraper = self._make(browser, breaker, CountingPacer(self.pool, health, pacer))
        self._scrapers[health.name] = (browser, scraper)
        return scraper

    async def scrape(self, request: ScrapeRequest, emit: Emit, already_emitted: Collection[str]) -> ScrapeOutcome:
        async with self.pool.lease() as health:
            scraper = await self._scraper(health)
            try:
                return await scraper.scrape(request, emit, already_emitted)
            except EXIT_FAILURES as exc:
                if self._rerouted(health, exc):
                    raise ExitUnavailable(health.name, str(exc)) from exc
                raise

    async def location_viewport(self, location: str) -> Viewport:
        async with self.pool.lease() as health:
            scraper = await self._scraper(health)
            try:
                return await scraper.location_viewport(location)
            except EXIT_FAILURES as exc:
                if self._rerouted(health, exc):
                    raise ExitUnavailable(health.name, str(exc)) from exc
                raise

    def _rerouted(self, health: ExitHealth, exc: Exception) -> bool:
        """A failure met outside the breaker's steps (a feed that stopped loading, a page that
        timed out while the browser answers) is the exit's too; rerouted while another is usable."""
        self.pool.failed(health, exc)
        return self.pool.others_usable(health)
