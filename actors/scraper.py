"""The scraper actor: one search per message, listings passed on as they are found.

Its browser and parse workers live in a :class:`BrowserHost` the pipeline keeps, so a scraper that
crashed for another reason is back in a millisecond with the browser it had. A crashed or hung
browser (or parse worker) makes the handler raise after marking the host broken: the actor fails,
its supervisor starts a fresh one, which gets a fresh browser, and the same message is delivered
again: the scrape resumes with every place id its run already knows passed as ``already_emitted``,
so none is emitted twice and none is skipped. The Google Maps breaker belongs to the pipeline too.

Each listing goes to the writer at once and, when the job wants PageSpeed and the listing has a
website, to the enricher: without waiting when the enricher's mailbox is full, so that scraping
goes on while enrichment is paused (the job's driver feeds such leads later).

Cancelling one job stops its scrape within a moment, without failing the actor: the scrape runs
in a child task raced against the run's ``stopped`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from actors.actor import Actor, ActorCell
from leadlawk_daemon.jobs.messages import EnrichLead, LeadFound, ScrapeJob, WriterMessage
from leadlawk_daemon.jobs.run import JobRun
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.blocking import BlockedError
from leadlawk_daemon.maps.browser import BrowserError, BrowserPool
from leadlawk_daemon.maps.parse_pool import ParsePool
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeError, ScrapeOutcome, ScrapeRequest
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import BrowserSettings, MapsSettings

__all__ = ["BrowserHost", "Scraper", "ScraperDeps"]

log = logging.getLogger("leadlawk.scraper")


class BrowserHost:
    """The scraper's browser and parse workers, kept across scraper restarts that were not theirs."""

    def __init__(self, settings: BrowserSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pool: BrowserPool | None = None
        self.parsers: ParsePool | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._broken = False

    async def acquire(self) -> tuple[BrowserPool, ParsePool]:
        """The live browser and parse workers; fresh ones if there are none or they broke."""
        if self.pool is not None and self.parsers is not None and not self._broken:
            return self.pool, self.parsers
        await self.aclose()
        stack = contextlib.AsyncExitStack()
        try:
            pool = await stack.enter_async_context(BrowserPool(self.settings, metrics=self.metrics))
            parsers = await stack.enter_async_context(ParsePool())
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self.pool, self.parsers, self._broken = stack, pool, parsers, False
        return pool, parsers

    def invalidate(self) -> None:
        """The browser or a parse worker failed: the next :meth:`acquire` replaces them."""
        self._broken = True

    async def aclose(self) -> None:
        stack, self._stack = self._stack, None
        self.pool = self.parsers = None
        if stack is not None:
            await stack.aclose()


@dataclass(frozen=True, slots=True)
class ScraperDeps:
    host: BrowserHost
    browser: BrowserSettings
    maps: MapsSettings
    breaker: CircuitBreaker
    writer: ActorCell[WriterMessage]
    enricher: ActorCell[EnrichLead]
    metrics: Metrics


class Scraper(Actor[ScrapeJob]):
    def __init__(self, cell: ActorCell[ScrapeJob], deps: ScraperDeps) -> None:
        super().__init__(cell)
        self.deps = deps
        self.pool: BrowserPool | None = None
        self._scraper: MapsScraper | None = None

    async def on_start(self) -> None:
        self.pool, parsers = await self.deps.host.acquire()
        self._scraper = MapsScraper(
            self.pool,
            self.deps.maps,
            breaker=self.deps.breaker,
            clock=self.clock,
            metrics=self.deps.metrics,
            parsers=parsers,
        )

    async def on_stop(self) -> None:
        self.pool = None  # the host keeps the browser for the next instance, or replaces it

    async def handle(self, message: ScrapeJob) -> None:
        run = message.run
        if not run.active or run.scrape_done:
            return  # stopped (cancelled, handed back) before its turn came
        assert self._scraper is not None
        scraper = self._scraper
        request = ScrapeRequest.from_spec(run.spec)
        started = time.monotonic()

        async def scrape() -> ScrapeOutcome:
            while True:
                # Known place ids are read again on every attempt: they grow as listings are emitted.
                known = message.already_emitted | run.found
                try:
                    return await scraper.scrape(request, lambda listing, rank: self._emit(run, listing, rank), known)
                except BlockedError as exc:
                    # Counted by the breaker; the next attempt waits for it when it has opened.
                    log.warning("search blocked; trying again", extra={"job_id": run.job_id, "reason": str(exc)})

        task = asyncio.get_running_loop().create_task(scrape(), name=f"{self.name}/{run.job_id}")
        stop = asyncio.ensure_future(run.stopped.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            log.info("scrape stopped", extra={"job_id": run.job_id, "reason": run.stop_reason})
            return
        try:
            outcome = task.result()
        except (BrowserError, BrokenProcessPool):
            self.deps.host.invalidate()
            raise
        except ScrapeError as exc:
            # Not the browser, not a block: this search cannot be read, and trying again will not help.
            run.stop("failed", f"the search could not be read: {exc}")
            return
        # Per listing, as every stage is timed per unit of work: a whole search takes minutes by design,
        # and the "response time > 5 s" alert reads this histogram.
        per_listing = (time.monotonic() - started) / max(1, outcome.emitted)
        self.deps.metrics.stage_duration.labels(stage="scrape").observe(per_listing)
        run.scrape_finished(outcome)

    async def _emit(self, run: JobRun, listing: Listing, rank: int) -> None:
        place_id = listing.place_id
        if place_id is None:
            return
        run.found.add(place_id)
        self.deps.metrics.leads.labels(stage="scraped").inc()
        run.unwritten += 1
        try:
            await self.deps.writer.tell(LeadFound(run, listing, rank))
        except BaseException:
            run.unwritten -= 1
            raise
        if run.wants_pagespeed and listing.website:
            run.outstanding += 1
            mailbox = self.deps.enricher.mailbox
            if run.deferred or mailbox.full():
                run.deferred.append(listing)
            else:
                mailbox.put_nowait(EnrichLead(run, listing))
