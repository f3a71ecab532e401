"""The enricher actor: PageSpeed for a lead's website, under the Enricher's quota and breaker.

Its concurrency is the Enricher's bulkhead (Little's law: the per-100-s rate times the expected
latency), so every call the quota allows is in flight. The Enricher (its breaker, pace and daily
count) belongs to the pipeline and survives restarts of this actor.

Nothing here crashes the actor on a PageSpeed problem: results (a broken site's included) go to
the writer; a lead whose enrichment failed after its retries is dead-lettered as kind ``lead``
with the reason and counted as failed in its job. While the daily quota is spent the lead goes
back to its job's ``deferred`` list at once instead of holding a worker for hours: the job's
driver feeds it again after the reset, and scraping goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from actors.actor import Actor, ActorCell
from actors.dead_letters import DeadLetter, DeadLetterSink
from leadlawk_daemon.jobs.messages import EnrichLead, LeadEnriched, WriterMessage
from leadlawk_daemon.logs import redact
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
    dead_letters: DeadLetterSink


class Enricher(Actor[EnrichLead]):
    def __init__(self, cell: ActorCell[EnrichLead], deps: EnricherDeps) -> None:
        super().__init__(cell)
        self.deps = deps

    async def handle(self, message: EnrichLead) -> None:
        run, listing = message.run, message.listing
        if not run.active:
            run.enrichment_finished()
            return
        if self.deps.enricher.daily.exhausted:
            run.deferred.append(listing)
            run.poke()
            return
        started = time.monotonic()
        call = asyncio.ensure_future(self.deps.enricher.enrich(listing, run.strategies))
        stop = asyncio.ensure_future(run.stopped.wait())
        try:
            await asyncio.wait({call, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call
        if call.cancelled():
            run.enrichment_finished()  # its job stopped: the lead is re-enqueued if the job resumes
            return
        try:
            outcome = call.result()
        except Exception as exc:  # not PageSpeed's doing: a bug, kept as a dead letter, not a crash
            outcome = EnrichmentOutcome(listing, "failed", reason=f"{type(exc).__name__}: {exc}")
        self.deps.metrics.stage_duration.labels(stage="enrich").observe(time.monotonic() - started)
        if outcome.status == "enriched":
            self.deps.metrics.leads.labels(stage="enriched").inc()
            run.unwritten += 1
            try:
                await self.deps.writer.tell(LeadEnriched(run, listing, outcome.results))
            except BaseException:
                run.unwritten -= 1
                raise
        elif outcome.status == "failed" and listing.place_id is not None:
            reason = redact(outcome.reason or "enrichment failed")
            run.failed.add(listing.place_id)
            self.deps.metrics.dead_letters.labels(kind="lead").inc()
            self.deps.dead_letters.dead_letter(
                DeadLetter(kind="lead", payload=message.to_dict(), reason=reason, attempts=1, source=self.name)
            )
            log.warning(
                "lead not enriched", extra={"job_id": run.job_id, "place_id": listing.place_id, "reason": reason}
            )
        run.enrichment_finished()
