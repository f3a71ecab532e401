"""One leased job while it runs in this daemon: counters, outstanding work, cancel and deadline.

A :class:`JobRun` lives on the :class:`~leadlawk_daemon.jobs.pipeline.Pipeline`, not in any actor,
so actor restarts do not lose it. Counters are sets of place ids rather than integers: a message
redelivered after a crash then counts once, and a resumed run starts from what the store holds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.scraper import ScrapeOutcome
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.qualify import Filters

__all__ = ["JobRun", "StopReason"]

# cancelled: by a user; max_runtime: the spec's budget; failed: the scrape could not proceed;
# shutdown: handed back for another start; lease_lost: someone else holds the job now.
StopReason = Literal["cancelled", "max_runtime", "failed", "shutdown", "lease_lost"]


@dataclass(eq=False)
class JobRun:
    job_id: str
    spec: JobSpec
    filters: Filters
    deadline: float  # on the pipeline's clock
    parent_id: str | None = None
    found: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    enriched: set[str] = field(default_factory=set)
    qualified: dict[str, bool] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    # PageSpeed results committed for this job's leads: qualification is recomputed with them.
    tested: dict[str, tuple[PageSpeedResult, ...]] = field(default_factory=dict)
    # Messages sent to the writer and not yet committed; the job is complete only at zero.
    unwritten: int = 0
    # Enrichments sent to the enricher (or waiting in ``deferred``) and not finished.
    outstanding: int = 0
    # Leads for the enricher that found its mailbox full or its daily quota spent: fed later by
    # the job's driver, so that scraping never waits on enrichment. At most ``limit`` of them.
    deferred: list[Listing] = field(default_factory=list)
    scrape_done: bool = False
    outcome: ScrapeOutcome | None = None
    stop_reason: StopReason | None = None
    error: str | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    written_changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def active(self) -> bool:
        return self.stop_reason is None

    @property
    def wants_pagespeed(self) -> bool:
        return self.spec.pagespeed.enabled

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(self.spec.pagespeed.strategies)

    @property
    def complete(self) -> bool:
        return self.scrape_done and self.outstanding == 0 and self.unwritten == 0 and not self.deferred

    def counters(self) -> dict[str, int]:
        return {
            "found": len(self.found),
            "qualified": sum(1 for ok in self.qualified.values() if ok),
            "enriched": len(self.enriched),
            "written": len(self.written),
            "failed": len(self.failed),
        }

    def stop(self, reason: StopReason, error: str | None = None) -> None:
        """Stop the run (the first reason wins): its scrape and enrichments end, its driver finishes it."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.error = error
            self.stopped.set()
        self.poke()

    def scrape_finished(self, outcome: ScrapeOutcome) -> None:
        self.outcome = outcome
        self.scrape_done = True
        self.poke()

    def enrichment_finished(self) -> None:
        self.outstanding -= 1
        self.poke()

    async def wait_written(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until every message sent to the writer is committed; False after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                while self.unwritten > 0:
                    self.written_changed.clear()
                    await self.written_changed.wait()
        except TimeoutError:
            return False
        return True

    def poke(self) -> None:
        """Something changed that the driver may act on (completion, a stop)."""
        self.changed.set()
        self.written_changed.set()
