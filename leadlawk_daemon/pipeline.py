"""The job pipeline: the writer, enricher and scraper actors and the job coordinator, wired.

Part of the composition root (beside :mod:`leadlawk_daemon.assembly`): ``jobs/`` holds the
coordinator, the driver and the job's state; this module builds them and the actors they drive.

``async with Pipeline(...) as pipeline:`` then mount ``pipeline.children()`` (start order: writer,
enricher, scraper, coordinator) under one ``one_for_one`` supervisor; they stop in the reverse
order: stop leasing and hand jobs back, stop scraping, stop enriching, flush the writer.

What must outlive actor restarts lives here: the actor cells (mailboxes, stats), the writer's
pending rows, the Google Maps, PageSpeed, database and sites breakers (registered in the daemon's
:class:`~leadlawk_daemon.dependencies.Dependencies`), the PageSpeed quota, and the states of the
jobs this daemon holds. Each piece is handed its dependencies explicitly; no actor
or driver reaches back into the pipeline. A message an actor gives up on (its handler crashed on
every attempt) goes to the owner of its job, which decides what that means and dead-letters it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Any, TypeVar, cast

from actors.actor import Actor, ActorCell
from actors.clock import Clock
from actors.dead_letters import DeadLetterSink
from actors.enricher import Enricher, EnricherDeps
from actors.fair_gate import FairGate
from actors.scraper import BrowserHost, Scraper, ScraperDeps
from actors.site import SiteDeps, SiteReader
from actors.stats import ActorStats, ActorStatsCollector
from actors.write_buffer import WriteBuffer
from actors.writer import Writer, WriterDeps
from leadlawk_daemon.dependencies import Dependencies, Dependency
from leadlawk_daemon.emails import DNS_BREAKER, EmailVerifier, MailDomainResolver, dns_breaker
from leadlawk_daemon.events import EventSink
from leadlawk_daemon.intake.admission import Admission, QueueFull
from leadlawk_daemon.jobs.coordinator import Coordinator
from leadlawk_daemon.jobs.driver import DriverDeps, Timing
from leadlawk_daemon.jobs.lifecycle import JobLifecycle
from leadlawk_daemon.jobs.state import JobState
from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.logs import redact
from leadlawk_daemon.maps.egress import egress_pool
from leadlawk_daemon.maps.page_guard import PageGuard
from leadlawk_daemon.maps.scraper import maps_breaker
from leadlawk_daemon.messages import EnrichLead, GaveUp, ReadSite, ScrapeJob, WorkMessage, WriterMessage
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.pagespeed.client import PageSpeedClient
from leadlawk_daemon.pagespeed.enrichment import Enricher as PageSpeedEnricher
from leadlawk_daemon.quota import SharedQuotas
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.sites import EgressGuard, SiteClient
from leadlawk_daemon.sites.demand import site_limit
from leadlawk_daemon.store.base import Store, StoreUnavailable
from supervisors.spec import ChildSpec

__all__ = ["DATABASE_BREAKER", "Pipeline", "QueueFull"]

DATABASE_BREAKER = "database"
SITES_BREAKER = "sites"  # our egress to websites: many different sites unreachable in a row
# "Writing resumes within 5 s of the database's return": the database breaker's reset timeout
# and the writer's retry backoff are capped below that, whatever resilience.* says.
RESUME_WITHIN = 5.0


M = TypeVar("M")


def job_lane(message: EnrichLead | ReadSite) -> str:
    """The fair mailbox's lane of a lead: its job."""
    return message.job.job_id


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        clock: Clock,
        events: EventSink,
        dead_letters: DeadLetterSink,
        owner: str,
        *,
        poll_interval: float | None = None,
        register_metrics: bool = True,
        shared: SharedQuotas | None = None,
        dependencies: Dependencies | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.events = events
        self.owner = owner
        self.runs: dict[str, JobState] = {}
        # Runs that ended with rows still on their way to the store, by job id (see the coordinator).
        self.retired: dict[str, JobState] = {}
        self.wake = asyncio.Event()
        self.dead_letters = dead_letters
        # The daemon's registry outlives this pipeline; a pipeline run alone (tests, benches) has its own.
        self.dependencies = dependencies if dependencies is not None else Dependencies(metrics, events)

        jobs, bulkhead = settings.jobs, settings.resilience.bulkhead
        self.max_concurrent_jobs = bulkhead.max_concurrent_jobs
        self.queue_size = bulkhead.queue_size
        self.max_attempts = jobs.max_attempts
        self.cancel_grace = jobs.cancel_grace
        # Orphaned leases (a dead daemon's) expire after lease_ttl; looking every heartbeat is enough.
        self.poll_interval = poll_interval if poll_interval is not None else jobs.heartbeat

        changed = self.dependencies.changed
        cb = settings.resilience.circuit_breaker
        self.maps_breaker = self.dependencies.add(Dependency(
            "google_maps",
            maps_breaker(cb, clock=clock, call_timeout=settings.maps.navigation_timeout * 4, on_change=changed),
        ))
        self.db_breaker = self.dependencies.add(Dependency(DATABASE_BREAKER, CircuitBreaker(
            DATABASE_BREAKER,
            failure_threshold=cb.failure_threshold,
            reset_timeout=min(cb.reset_timeout, RESUME_WITHIN / 2),
            call_timeout=settings.database.command_timeout,
            clock=clock,
            on_change=changed,
            exclude=lambda exc: not isinstance(exc, StoreUnavailable | TimeoutError),
        )))
        self._client = PageSpeedClient(settings.pagespeed.base_url, settings.pagespeed.api_key)
        self.pagespeed = PageSpeedEnricher.from_settings(
            settings, self._client, clock=clock, metrics=metrics, on_breaker_change=changed, shared=shared,
        )
        self.dependencies.add(Dependency("pagespeed", self.pagespeed.breaker))
        self.buffer = WriteBuffer(settings.database.max_pending, settings.database.batch_size)

        self.writer: ActorCell[WriterMessage] = self._cell(
            "writer", lambda cell: Writer(cell, self._writer_deps()), dead_letter_kind="lead"
        )
        # Past the fair mailbox, workers wait for a call slot in their job's line (actors/fair_gate.py).
        # Twice the in-flight limit: a lead in a retry's backoff holds its place without a slot.
        self.enrich_turns = FairGate(lambda: 2 * self.pagespeed.limits.limit)
        self.enricher: ActorCell[EnrichLead] = self._cell(
            "enricher",
            lambda cell: Enricher(cell, EnricherDeps(self.pagespeed, self.writer, metrics, self.enrich_turns)),
            dead_letter_kind="lead",
            concurrency=self.pagespeed.max_workers,
            lane_of=job_lane,  # one lane per job, served round-robin: a big job cannot starve a small one
        )
        # Site enrichment (sites.enabled): its client (and per-origin cache) outlives the actor.
        self.sites: SiteClient | None = None
        self.sites_breaker: CircuitBreaker | None = None
        self.site: ActorCell[ReadSite] | None = None
        if settings.sites.enabled:
            self.site = self._site_cell(settings, metrics)
        # A parse worker per exit searching at once, up to two (the CPUs a small dyno has).
        guard = PageGuard.from_settings(settings.maps.base_url, settings.sites.allowed_networks, metrics)
        self.browser_host = BrowserHost(
            settings.browser, metrics, guard, parse_workers=min(2, len(settings.maps.egress))
        )
        self.egress = egress_pool(settings.maps, clock=clock, metrics=metrics, events=events, shared=shared)
        scraper_deps = ScraperDeps(
            self.browser_host, settings.browser, settings.maps, self.maps_breaker, self.writer, metrics,
            events=events, politeness=shared.maps if shared is not None else None, egress=self.egress,
        )
        self.scraper: ActorCell[ScrapeJob] = self._cell(
            "scraper", lambda cell: Scraper(cell, scraper_deps), dead_letter_kind="job",
            concurrency=settings.browser.pages,
        )
        self.cells: tuple[ActorCell[Any], ...] = (
            self.writer, self.enricher, *((self.site,) if self.site is not None else ()), self.scraper
        )
        if register_metrics:
            # A daemon that may build the pipeline again after a restart registers one collector
            # of its own instead: a registry refuses the same metric names twice.
            metrics.register(ActorStatsCollector(self._actor_stats))
        self.coordinator: Coordinator | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Pipeline:
        await self._client.__aenter__()
        if self.sites is not None:
            await self.sites.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.browser_host.aclose()
        finally:
            try:
                await self._client.__aexit__(exc_type, exc, tb)
            finally:
                if self.sites is not None:
                    await self.sites.__aexit__(exc_type, exc, tb)

    def _site_cell(self, settings: Settings, metrics: Metrics) -> ActorCell[ReadSite]:
        """The site actor beside the enricher: its own mailbox (the bulkhead) and egress breaker."""
        cells: list[ActorCell[ReadSite]] = []  # the limit's backlog reads the cell built below
        limit = site_limit(
            settings.sites,
            clock=self.clock,
            backlog=lambda: cells[0].mailbox.depth if cells else 0,
            on_latency=lambda estimate: metrics.site_latency_mean.set(estimate.mean),
        )

        def current_limit() -> float:
            limit.refresh()  # idle, no read sizes it again: the scrape does, or it shows a stale peak
            return limit.limit

        metrics.site_in_flight_limit.set_function(current_limit)
        sites = self.sites = SiteClient(settings.sites, clock=self.clock, limit=limit)
        breaker = self.sites_breaker = self.dependencies.add(Dependency(SITES_BREAKER, CircuitBreaker(
            SITES_BREAKER,
            failure_threshold=settings.sites.egress_failures,
            reset_timeout=settings.resilience.circuit_breaker.reset_timeout,
            call_timeout=None,  # a site's requests are each cut at sites.timeout
            clock=self.clock,
            on_change=self.dependencies.changed,
        )))

        def forget(streak: list[str]) -> None:
            for site in streak:  # their "unreachable" was ours, not theirs
                sites.cache.forget(site)

        emails = self._email_verifier(settings) if settings.emails.enabled else None
        deps = SiteDeps(sites, EgressGuard(breaker, on_outage=forget), self.writer, metrics, emails=emails)
        cell: ActorCell[ReadSite] = self._cell(
            "site", lambda cell: SiteReader(cell, deps), dead_letter_kind="lead",
            concurrency=settings.sites.max_in_flight, lane_of=job_lane,
        )
        cells.append(cell)
        return cell

    def _email_verifier(self, settings: Settings) -> EmailVerifier:
        """Email verdicts in the site actor: DNS through the ``dns`` breaker (open: an outage, leads
        wait). Its cache, like the site client's, outlives the actor."""
        conf = settings.emails
        resolver = MailDomainResolver(
            conf.dns_servers, timeout=conf.timeout, cache_ttl=conf.cache_ttl, cache_size=conf.cache_size,
            max_in_flight=conf.max_in_flight, clock=self.clock,
        )
        breaker = self.dependencies.add(Dependency(DNS_BREAKER, dns_breaker(
            conf.dns_failures, settings.resilience.circuit_breaker.reset_timeout, self.clock,
            self.dependencies.changed,
        )))
        return EmailVerifier(resolver, breaker, clock=self.clock)

    def children(self) -> list[ChildSpec]:
        """Start order for one ``rest_for_one`` supervisor: writer, enricher, scraper, coordinator."""
        sup = self.settings.supervision
        return [
            self.writer.child_spec(shutdown_timeout=max(sup.shutdown_timeout, 5.0), start_timeout=sup.start_timeout),
            self.enricher.child_spec(shutdown_timeout=sup.shutdown_timeout, start_timeout=sup.start_timeout),
            *(
                (self.site.child_spec(shutdown_timeout=sup.shutdown_timeout, start_timeout=sup.start_timeout),)
                if self.site is not None else ()
            ),
            self.scraper.child_spec(
                shutdown_timeout=sup.shutdown_timeout,
                start_timeout=max(sup.start_timeout, self.settings.browser.launch_timeout + 10),
            ),
            ChildSpec(
                "coordinator",
                self._new_coordinator,
                shutdown_timeout=max(sup.shutdown_timeout, self.cancel_grace + 2),
                start_timeout=sup.start_timeout,
            ),
        ]

    def _new_coordinator(self) -> Coordinator:
        self.coordinator = Coordinator(
            self._driver_deps(),
            max_concurrent_jobs=self.max_concurrent_jobs,
            max_attempts=self.max_attempts,
            poll_interval=self.poll_interval,
            runs=self.runs,
            retired=self.retired,
            wake=self.wake,
            min_reviews_when_hidden=self.settings.maps.min_reviews_when_hidden,
        )
        return self.coordinator

    def _driver_deps(self) -> DriverDeps:
        jobs = self.settings.jobs
        timing = Timing(
            lease_ttl=jobs.lease_ttl,
            # A cancel made through another daemon is seen at the next renewal: within cancel_grace.
            renew_every=min(jobs.heartbeat, jobs.cancel_grace / 2),
            renew_timeout=min(jobs.renew_timeout, jobs.lease_ttl / 3),
            progress_interval=jobs.progress_interval,
            cancel_grace=jobs.cancel_grace,
            max_wait=jobs.max_wait,
            requeue_after=min(jobs.max_wait, self.settings.resilience.circuit_breaker.reset_timeout),
        )
        return DriverDeps(
            store=self.store,
            clock=self.clock,
            events=self.events,
            metrics=self.metrics,
            owner=self.owner,
            scraper=self.scraper,
            enricher=self.enricher,
            writer=self.writer,
            outages=self.outages,
            daily_quota_spent=lambda: self.pagespeed.daily.exhausted,
            dead_letter=self.dead_letters.dead_letter,
            timing=timing,
            stopping=lambda: self.coordinator is None or self.coordinator.stopping,
            site=self.site,
            egress=self.egress.summary,
        )

    def outages(self) -> frozenset[str]:
        """The dependencies whose breakers are not closed: jobs that need them wait."""
        down = self.dependencies.outages()
        if self.pagespeed.throttled:
            down |= {"pagespeed"}  # 429 on every attempt: its quota is taken, which is an outage for us
        return down

    def _cell(
        self,
        name: str,
        actor: Callable[[ActorCell[M]], Actor[M]],
        *,
        dead_letter_kind: str,
        concurrency: int | None = None,
        lane_of: Callable[[M], Hashable] | None = None,
    ) -> ActorCell[M]:
        """An actor's cell, with what every cell of the pipeline shares: the bulkhead's send timeout,
        the dead letters, a crash's text masked, and a message given up on handed to its job."""
        limits = self.settings.actors.for_actor(name)
        if concurrency is not None:
            limits = limits.model_copy(update={"concurrency": concurrency})
        return ActorCell(
            name,
            actor,
            limits,
            clock=self.clock,
            dead_letters=self.dead_letters,
            put_timeout=self.settings.resilience.bulkhead.timeout,
            dead_letter_kind=dead_letter_kind,
            on_give_up=self._give_up(name),
            lane_of=lane_of,
            redact=redact,
        )

    def _give_up(self, actor: str) -> Callable[[M, str, int], bool]:
        """What an actor does with a message it crashed on every time: its job's owner takes it."""

        def give_up(message: M, reason: str, attempts: int) -> bool:
            job = getattr(message, "job", None)
            if job is None:
                return False
            # Every message an actor of the pipeline takes is a WorkMessage; only those carry a job.
            job.report(GaveUp(actor, cast(WorkMessage, message), reason, attempts))
            return True

        return give_up

    def _writer_deps(self) -> WriterDeps:
        retry = self.settings.resilience.retry
        return WriterDeps(
            store=self.store,
            buffer=self.buffer,
            breaker=self.db_breaker,
            flush_interval=self.settings.database.flush_interval,
            retry_base=min(retry.base_delay, 0.25) or 0.05,
            retry_cap=min(retry.max_delay, RESUME_WITHIN / 4),
            metrics=self.metrics,
            events=self.events,
        )

    # -- jobs ------------------------------------------------------------------------------------------

    async def submit(self, spec: JobSpec) -> bool:
        """Admit a job through the one admission every intake path shares (queue_size, the queued
        count, the job.accepted event), then wake the coordinator; False when its id exists.

        Raises :class:`QueueFull` when ``queue_size`` jobs wait already, and
        :class:`~leadlawk_daemon.store.base.StoreUnavailable` when the database is down.
        """
        admission = Admission.from_settings(self.settings, self.store, self.events, self.metrics)
        admitted = await admission.admit_spec(spec, "cli")
        self.notify()
        return admitted.outcome == "accepted"

    def notify(self) -> None:
        """A job was persisted by someone else (the Redis intake, say): look for work now."""
        self.wake.set()

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job (a batch: with its children); False if unknown or finished.

        A run of this daemon stops within ``jobs.cancel_grace``; one held by another daemon stops at
        that daemon's next lease renewal, which comes as often.
        """
        cancelled = await JobLifecycle(self.store, self.events, self.metrics, clock=self.clock).cancel(job_id)
        for run in list(self.runs.values()):
            if run.job_id == job_id or run.parent_id == job_id:
                run.stop("cancelled")
        return cancelled

    # -- health and metrics ------------------------------------------------------------------------

    def readiness(self) -> dict[str, bool]:
        """Dependency checks: the browser is up and no breaker of the registry's is open."""
        conditions = self.dependencies.conditions()
        return {"browser": self.browser_up(), **{name: reason is None for name, reason in conditions.items()}}

    def browser_up(self) -> bool:
        """``/health/ready``'s browser condition: the scraper holds a running browser."""
        scraper = self.scraper.current
        return isinstance(scraper, Scraper) and scraper.pool is not None

    async def browser_healthy(self) -> bool:
        """A deeper browser probe (the process answers), for the readiness checker's interval."""
        scraper = self.scraper.current
        return isinstance(scraper, Scraper) and scraper.pool is not None and await scraper.pool.healthy()

    def _actor_stats(self) -> list[tuple[ActorStats, int, int]]:
        return [(c.stats, c.mailbox.depth, c.mailbox.capacity) for c in self.cells]
