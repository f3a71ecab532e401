"""The enricher actor: PageSpeed for a lead's website, under the Enricher's quota and breaker.

Its concurrency is the Enricher's in-flight ceiling; how many calls are really in flight at once
is the Enricher's adaptive limit, sized from measured latency (``resilience/inflight.py``), and when
each may start is the quota pacer's alone. The Enricher (its breaker, pace and daily count)
belongs to the pipeline and survives restarts of this actor.

Fairness between jobs (issue 12): the mailbox gives leads one job at a time, and ``turns`` (a
:class:`~actors.fair_gate.FairGate` sized from the in-flight limit) keeps it so past the mailbox:
workers wait there in their job's line before they may ask for a call slot.

Failures, by kind (docs/failure-model.md): while PageSpeed is down (its breaker open) a call
waits for it, spending no retry and failing nothing, and the job shows as waiting on
``pagespeed``; a lead whose calls ran out of retries while PageSpeed served others is that lead's
failure (:class:`LeadFailed`), and the job goes on; a spent daily quota hands the lead back to its
job's owner (:class:`EnrichmentReturned`) instead of holding a worker for hours.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from actors.actor import Actor, ActorCell
from actors.fair_gate import FairGate
from actors.racing import Stopped, unless_set
from leadlawk_daemon.messages import (
    EnrichLead,
    EnrichmentReturned,
    LeadEnriched,
    LeadFailed,
    WriteEnrichment,
    WriterMessage,
)
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.pagespeed.enrichment import Enricher as PageSpeedEnricher
from leadlawk_daemon.pagespeed.enrichment import EnrichmentOutcome

__all__ = ["Enricher", "EnricherDeps"]

log = logging.getLogger("leadlawk.enricher")


@dataclass(frozen=True, slots=True)
class EnricherDeps:
    enricher: PageSpeedEnricher
    writer: ActorCell[WriterMessage]
    metrics: Metrics
    turns: FairGate | None = None  # None: workers ask for call slots first come, first served


class Enricher(Actor[EnrichLead]):
    def __init__(self, cell: ActorCell[EnrichLead], deps: EnricherDeps) -> None:
        super().__init__(cell)
        self.deps = deps

    async def handle(self, message: EnrichLead) -> None:
        job, listing = message.job, message.listing
        if not job.active:
            job.report(EnrichmentReturned(listing, "its job stopped"))
            return
        if self.deps.enricher.daily.exhausted:
            job.report(EnrichmentReturned(listing, "the daily PageSpeed quota is spent"))
            return
        started = time.monotonic()
        strategies = tuple(job.spec.pagespeed.strategies)
        try:
            outcome = await unless_set(job.stopped, self._enrich(message, strategies))
        except Exception as exc:  # not PageSpeed's doing: a bug, kept as the lead's failure, not a crash
            outcome = EnrichmentOutcome(listing, "failed", reason=f"{type(exc).__name__}: {exc}")
        if isinstance(outcome, Stopped):
            job.report(EnrichmentReturned(listing, "its job stopped"))  # enriched again if the job resumes
            return
        self.deps.metrics.stage_duration.labels(stage="enrich").observe(time.monotonic() - started)
        place_id = listing.place_id
        if place_id is None:
            return
        if outcome.status == "enriched":
            await self.deps.writer.tell(WriteEnrichment(job, listing, outcome.results))
            job.report(LeadEnriched(place_id))
            self.deps.metrics.leads.labels(stage="enriched").inc()
        elif outcome.status == "failed":
            job.report(LeadFailed(place_id, "pagespeed", outcome.reason or "enrichment failed", message.to_dict()))
        else:
            # Nothing to test (no website): not a failure, and nothing to write.
            job.report(LeadEnriched(place_id, handed_to_writer=False))

    async def _enrich(self, message: EnrichLead, strategies: tuple[str, ...]) -> EnrichmentOutcome:
        turns = self.deps.turns
        if turns is None:
            return await self.deps.enricher.enrich(message.listing, strategies)
        async with turns.turn(message.job.job_id):
            return await self.deps.enricher.enrich(message.listing, strategies)
