"""The scraper actor: one search per message, listings passed on as they are found.

Its browser and parse workers live in a :class:`BrowserHost` the pipeline keeps, so a scraper that
crashed for another reason is back in a millisecond with the browser it had. A crashed or frozen
browser (or parse worker) makes the handler raise after marking the host broken: the actor fails,
its supervisor starts a fresh one with a fresh browser, and the same message is delivered again;
the scrape skips every place id its job already knows, so none is emitted twice or skipped.

Failures, by kind (docs/failure-model.md):

* Google Maps unreachable (refused, reset, DNS, a timeout while the browser answers, 5xx) or
  blocking us (``/sorry/``, consent loops, an empty feed): an outage. The Maps breaker counts it;
  the scrape waits for the breaker and tries again, however long, spending no redelivery. The
  job's driver shows the job as waiting on ``google_maps`` meanwhile.
* A search Google answers with nothing readable while it is healthy: the job's own failure,
  reported as :class:`ScrapeFailed`.
* The browser failing: the actor restarts with a new one; a search that kills it every time is
  given up after ``max_attempts`` and its job fails (its owner decides that).

Each listing goes to the writer at once; the job's owner is told (:class:`LeadScraped`) and feeds
the enricher itself, so that scraping never waits on enrichment. Cancelling a job stops its
scrape within a moment, without failing the actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, replace

from actors.actor import Actor, ActorCell
from actors.racing import Stopped, unless_set
from actors.scrape_request import scrape_request
from leadlawk_daemon.events import EventSink
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.area_search import search_area
from leadlawk_daemon.maps.blocking import BlockedError
from leadlawk_daemon.maps.browser import BrowserError, BrowserPool, UnreachableError
from leadlawk_daemon.maps.coverage import CoveragePlan
from leadlawk_daemon.maps.egress_exits import DIRECT
from leadlawk_daemon.maps.egress_pool import EgressPool, ExitHealth, ExitUnavailable, Guard
from leadlawk_daemon.maps.egress_scraper import RoutedScraper
from leadlawk_daemon.maps.page_guard import PageGuard
from leadlawk_daemon.maps.parse_pool import ParsePool
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeError, ScrapeRequest
from leadlawk_daemon.messages import (
    AddressSkipped,
    AreaCellDone,
    JobHandle,
    LeadScraped,
    MapsViewSeen,
    ScrapeEnded,
    ScrapeFailed,
    ScrapeJob,
    WriteLead,
    WriterMessage,
)
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.outcomes import ScrapeOutcome
from leadlawk_daemon.quota.pace import Pacer
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.resilience.worker_pool import PoolUnavailable
from leadlawk_daemon.settings import BrowserSettings, MapsSettings
from supervisors.backoff import Backoff, Jitter

__all__ = ["BrowserHost", "Scraper", "ScraperDeps"]

log = logging.getLogger("leadlawk.scraper")


class BrowserHost:
    """The scraper's browser and parse workers, kept across scraper restarts that were not theirs.

    With an egress pool, one browser per exit (:meth:`browser_for`), launched when the exit is
    first leased and pinned to it (its proxy), so that each exit keeps its own cookies, consent
    answer and session; ``pool`` is then the first exit's.
    """

    def __init__(
        self, settings: BrowserSettings, metrics: Metrics, guard: PageGuard, parse_workers: int = 1
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # Every browser of the host loads under the egress policy (docs/egress-policy.md).
        self.guard = guard
        # Several exits read feeds at once: one parse worker would queue them all behind each other.
        self.parse_workers = parse_workers
        self.pool: BrowserPool | None = None
        self.parsers: ParsePool | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._broken = False
        self._exits: dict[str, BrowserPool] = {}
        self._launching = asyncio.Lock()

    async def acquire(self) -> tuple[BrowserPool, ParsePool]:
        """The live browser and parse workers; fresh ones if there are none or they broke."""
        if self.pool is not None and self.parsers is not None and not self._broken:
            return self.pool, self.parsers
        await self.aclose()
        stack = contextlib.AsyncExitStack()
        try:
            pool = await stack.enter_async_context(BrowserPool(self.settings, metrics=self.metrics, guard=self.guard))
            self._exits[DIRECT] = pool
            parsers = await stack.enter_async_context(ParsePool(workers=self.parse_workers))
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self.pool, self.parsers, self._broken = stack, pool, parsers, False
        return pool, parsers

    async def browser_for(self, health: ExitHealth) -> BrowserPool:
        """The browser pinned to ``health``'s exit; the direct exit uses the host's own browser."""
        if self._stack is None or self._broken:
            await self.acquire()
        if health.exit.direct:
            return self._exits[DIRECT]
        async with self._launching:
            pool = self._exits.get(health.name)
            if pool is None and self._stack is not None:
                browser = BrowserPool(
                    self.settings, metrics=self.metrics, proxy=health.exit.playwright_proxy(), label=health.name,
                    guard=self.guard,
                )
                pool = self._exits[health.name] = await self._stack.enter_async_context(browser)
            assert pool is not None
            return pool

    def invalidate(self) -> None:
        """The browser or a parse worker failed: the next :meth:`acquire` replaces them."""
        self._broken = True

    async def aclose(self) -> None:
        stack, self._stack = self._stack, None
        self.pool = self.parsers = None
        self._exits.clear()
        if stack is not None:
            await stack.aclose()


@dataclass(frozen=True, slots=True)
class ScraperDeps:
    host: BrowserHost
    browser: BrowserSettings
    maps: MapsSettings
    breaker: CircuitBreaker
    writer: ActorCell[WriterMessage]
    metrics: Metrics
    # Where "maps.session_signed_out" is announced (Google's limited view while a session is set).
    events: EventSink | None = None
    # The politeness budget shared over Redis (maps.politeness_scope host or fleet); None: the
    # scraper's own limiter (scope process, or no Redis).
    politeness: Pacer | None = None
    # The exits Google Maps is reached through (docs/egress-pool.md); None: the host's own address
    # alone, with no exit breaker (the scraper as it was before the pool).
    egress: EgressPool | None = None


# Between two tries of a search that met an outage, before the breaker has opened (once it is
# open, the breaker's own trial timing paces the tries).
_OUTAGE_BACKOFF = Backoff(0.5, 10.0, jitter=Jitter.FULL)


class Scraper(Actor[ScrapeJob]):
    def __init__(self, cell: ActorCell[ScrapeJob], deps: ScraperDeps) -> None:
        super().__init__(cell)
        self.deps = deps
        self.pool: BrowserPool | None = None
        self._scraper: MapsScraper | RoutedScraper | None = None
        self._rng = random.Random()
        # The view of the last Google page read for the search in hand: the leads emitted after it
        # were read in it.
        self._view = "full"

    async def on_start(self) -> None:
        self.pool, parsers = await self.deps.host.acquire()
        deps = self.deps

        def make(browser: BrowserPool, breaker: Guard, limiter: Pacer | None) -> MapsScraper:
            return MapsScraper(
                browser,
                deps.maps,
                breaker=breaker,
                clock=self.clock,
                metrics=deps.metrics,
                parsers=parsers,
                events=deps.events,
                limiter=limiter,
            )

        if deps.egress is None:
            self._scraper = make(self.pool, deps.breaker, deps.politeness)
        else:
            self._scraper = RoutedScraper(
                deps.egress, deps.host.browser_for, deps.breaker, deps.maps, make, shared_pacer=deps.politeness
            )

    async def on_stop(self) -> None:
        self.pool = None  # the host keeps the browser for the next instance, or replaces it

    async def handle(self, message: ScrapeJob) -> None:
        job = message.job
        if not job.active:
            return  # stopped (cancelled, handed back) before its turn came
        started = time.monotonic()
        try:
            outcome = await unless_set(job.stopped, self._scrape_through_outages(job))
        except (BrowserError, PoolUnavailable):
            self.deps.host.invalidate()
            raise
        except ScrapeError as exc:
            job.report(ScrapeFailed(str(exc)))
            return
        if isinstance(outcome, Stopped):
            log.info("scrape stopped", extra={"job_id": job.job_id})
            return
        # Per listing, as every stage is timed per unit of work: a whole search takes minutes by design,
        # and the "response time > 5 s" alert reads this histogram.
        per_listing = (time.monotonic() - started) / max(1, outcome.emitted)
        self.deps.metrics.stage_duration.labels(stage="scrape").observe(per_listing)
        job.report(ScrapeEnded(outcome))

    async def _scrape_through_outages(self, job: JobHandle) -> ScrapeOutcome:
        assert self._scraper is not None
        scraper = self._scraper
        self._view = "full"

        def on_view(view: str) -> None:
            self._view = view
            job.report(MapsViewSeen(view))

        def on_address(place_id: str) -> None:
            job.report(AddressSkipped(place_id))

        request = replace(scrape_request(job.spec), on_view=on_view, on_address=on_address)
        tries = 0
        while True:
            try:
                if job.spec.coverage == "area":
                    return await self._search_area(job, scraper, request)
                # Known place ids are read again on every try: they grow as listings are emitted.
                return await scraper.scrape(
                    request, lambda listing, rank: self._emit(job, listing, rank), job.known_place_ids()
                )
            except ExitUnavailable as moved:
                # One exit failed while others are healthy: the search goes again, through another.
                log.info("search moves to another exit", extra={"job_id": job.job_id, "reason": moved.reason})
            except (BlockedError, UnreachableError) as exc:
                # Google's outage, not the job's: counted by the breaker, which makes the next try
                # wait for its trial once it has opened.
                tries += 1
                delay = _OUTAGE_BACKOFF.delay(tries, self._rng)
                if tries == 1 or tries % 10 == 0:
                    log.warning(
                        "Google Maps unavailable; the search waits and tries again",
                        extra={"job_id": job.job_id, "reason": str(exc), "tries": tries},
                    )
                await self.clock.sleep(delay)

    async def _search_area(
        self, job: JobHandle, scraper: MapsScraper | RoutedScraper, request: ScrapeRequest
    ) -> ScrapeOutcome:
        """Every business in the job's area: cell after cell, carrying on from the job's plan (a
        restart or a retry after an outage searches no finished cell again)."""
        spec, maps = job.spec, self.deps.maps
        saved = job.coverage_plan()
        if saved is not None:
            plan = CoveragePlan.from_json(saved, seen=job.known_place_ids())
        else:
            area = spec.area
            if area is None:
                # Validation requires a location when there is no area.
                area = (await scraper.location_viewport(spec.location or "")).bbox
            plan = CoveragePlan(
                area,
                width_px=maps.viewport_width,
                height_px=maps.viewport_height,
                limit=spec.limit,
                cap=maps.results_cap,
                min_cell_m=maps.min_cell_m,
            )
            plan.seen |= job.known_place_ids()
        emitted = 0

        async def emit(listing: Listing, rank: int) -> None:
            nonlocal emitted
            await self._emit(job, listing, rank)
            emitted += 1

        async def cell_done(plan: CoveragePlan, added: list[Listing]) -> None:
            progress = plan.progress()
            job.report(
                AreaCellDone(
                    plan.to_json(with_seen=False),
                    tuple(listing.place_id for listing in added if listing.place_id is not None),
                    progress.cells_done,
                    progress.cells_pending,
                    progress.found,
                )
            )

        width = scraper.width if isinstance(scraper, RoutedScraper) else 1
        await search_area(scraper, plan, request, emit, cell_done=cell_done, width=width)
        if plan.cells_saturated:
            log.warning(
                "area cells still capped at the minimum size; businesses there may be missing",
                extra={"job_id": job.job_id, "cells": plan.cells_saturated},
            )
        found = len(plan.seen)
        return ScrapeOutcome(
            found=found,
            emitted=emitted,
            skipped=0,
            malformed=0,
            details_fetched=0,
            scrolls=0,
            end_reason="limit" if found >= plan.limit else "end_of_list",
            feed_exhausted=found < plan.limit,
        )

    async def _emit(self, job: JobHandle, listing: Listing, rank: int) -> None:
        if listing.place_id is None:
            return
        await self.deps.writer.tell(WriteLead(job, listing, rank))
        # Reported only once the writer holds it: a lead the writer never got is scraped again.
        job.report(LeadScraped(listing, rank, limited_view=self._view == "limited"))
        self.deps.metrics.leads.labels(stage="scraped").inc()
