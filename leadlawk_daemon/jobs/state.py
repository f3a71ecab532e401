"""One job's truth while it runs in this daemon: the only place its counters and completion change.

Actors hold a :class:`JobState` only through its :attr:`~JobState.handle` (a
:class:`~leadlawk_daemon.messages.JobHandle`: the job's id and spec, whether it runs, and
``report``); :meth:`JobState.apply` is the one function that turns a fact into a change, and a
lead's verdict is computed here too, once its facts are durable (:mod:`.verdicts`). It also
classifies failures (see docs/failure-model.md):

* a lead's own failure (its PageSpeed calls ran out of retries while PageSpeed served others, the
  store refused its row, an actor crashed on it every time) is recorded on the lead, counted in
  ``failed``, dead-lettered once, and the job goes on;
* a job's own failure (a search Google answers with nothing readable, a scrape that crashes the
  scraper every time) stops the job with the cause in ``error``;
* an outage never reaches here as a failure: the actors wait on their breakers, and the job's
  driver reports the job as waiting (see ``jobs.driver``).

Counters are sets of place ids, so a fact repeated after a crash counts once, and a resumed run
starts from what the store holds.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.dead_letters import DeadLetter
from leadlawk_daemon.jobs.verdicts import FactKind, Verdict, VerdictBook, facts_of_row
from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.logs import redact
from leadlawk_daemon.maps.limited_view import MapsView, combine_views
from leadlawk_daemon.messages import (
    AddressSkipped,
    AreaCellDone,
    EnrichLead,
    EnrichmentReturned,
    Fact,
    GaveUp,
    JobHandle,
    LeadEnriched,
    LeadFailed,
    LeadScraped,
    LeadSiteRead,
    MapsViewSeen,
    ReadSite,
    RowsCommitted,
    ScrapeEnded,
    ScrapeFailed,
    ScrapeJob,
    SiteReturned,
    WriteEnrichment,
    WriteLead,
    WriteLeadStatus,
    WriteSite,
)
from leadlawk_daemon.outcomes import ScrapeOutcome
from leadlawk_daemon.qualify import Filters
from leadlawk_daemon.sites.report import SiteReport

__all__ = ["JobState", "StopReason"]

log = logging.getLogger("leadlawk.jobs")

# cancelled: by a user; max_runtime: the spec's budget; failed: a cause retrying cannot fix;
# shutdown: handed back for another start; requeued: an outage outlasted jobs.max_wait;
# lease_lost: another daemon may hold the job now; crashed: its driver failed (a bug): handed back
# after a backoff, failed after jobs.max_attempts such failures.
StopReason = Literal["cancelled", "max_runtime", "failed", "shutdown", "requeued", "lease_lost", "crashed"]

# What the writer holds for a job that is not durable yet: (kind, place id).
Unwritten = tuple[Literal["lead", "pagespeed", "site", "status"], str]


def _take(queue: collections.deque[Listing], taken: set[str]) -> Listing | None:
    """The next queued lead not already taken, now counted in ``taken``."""
    while queue:
        listing = queue.popleft()
        place_id = listing.place_id
        if place_id is not None and place_id not in taken:
            taken.add(place_id)
            return listing
    return None


class _Handle:
    """What an actor holds of a job: read-only facts, and ``report``. Not the state: an actor cannot
    reach a counter, a queue or a verdict through it."""

    __slots__ = ("_state",)

    def __init__(self, state: JobState) -> None:
        self._state = state

    @property
    def job_id(self) -> str:
        return self._state.job_id

    @property
    def spec(self) -> JobSpec:
        return self._state.spec

    @property
    def active(self) -> bool:
        return self._state.active

    @property
    def stopped(self) -> asyncio.Event:
        return self._state.stopped

    def known_place_ids(self) -> frozenset[str]:
        return self._state.known_place_ids()

    def coverage_plan(self) -> dict[str, Any] | None:
        return self._state.coverage_plan()

    def report(self, fact: Fact) -> None:
        self._state.report(fact)


@dataclass(eq=False)
class JobState:
    job_id: str
    spec: JobSpec
    filters: Filters
    parent_id: str | None = None
    # Where lead dead letters go (the daemon's dead-letter writer): set by the driver.
    dead_letters: Callable[[DeadLetter], None] | None = None

    found: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    enriched: set[str] = field(default_factory=set)
    qualified: dict[str, bool] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    malformed: int = 0
    unwritten: set[Unwritten] = field(default_factory=set)
    # Leads waiting for the enricher (fed by the driver while its mailbox has room), and those in it.
    to_enrich: collections.deque[Listing] = field(default_factory=collections.deque)
    enriching: set[str] = field(default_factory=set)
    # Leads whose website the site actor should read (only when the pipeline has one: read_sites),
    # those in it, those done, and the reports read (their qualification reads them).
    read_sites: bool = False
    to_read_site: collections.deque[Listing] = field(default_factory=collections.deque)
    reading_site: set[str] = field(default_factory=set)
    sites_read: set[str] = field(default_factory=set)
    site_reports: dict[str, SiteReport] = field(default_factory=dict)
    # Lead failures to record on job_leads: sent to the writer by the driver.
    outbox: collections.deque[WriteLeadStatus] = field(default_factory=collections.deque)
    scrape_done: bool = False
    # coverage "area": the plan as the scraper last reported it (to carry on from after a scraper
    # restart), and the newest plan whose cells' leads are all settled (written, or failed): only
    # that one is persisted, so a resumed job neither searches a finished cell again nor loses a
    # lead its plan counted. ``area_progress``: cells done and pending, businesses found.
    plan: dict[str, Any] | None = None
    durable_plan: dict[str, Any] | None = None
    plan_unsaved: bool = False
    area_progress: dict[str, int] = field(default_factory=dict)
    _plans: collections.deque[tuple[dict[str, Any], frozenset[str]]] = field(default_factory=collections.deque)
    outcome: ScrapeOutcome | None = None
    # The views Google showed the job's search ("full", "limited"; "mixed" from an earlier run),
    # and the leads read in the limited view (a review count they lack may be hidden).
    views: set[str] = field(default_factory=set)
    limited_ids: set[str] = field(default_factory=set)
    # Results that were a street address or a locality, kept out of the leads (docs/addresses.md).
    addresses_skipped: set[str] = field(default_factory=set)
    hidden_ids: set[str] = field(default_factory=set)
    stop_reason: StopReason | None = None
    error: str | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Each lead's durable facts, and which leads are due a verdict (the one place one is computed).
    verdicts: VerdictBook = field(init=False)

    handle: JobHandle = field(init=False)

    def __post_init__(self) -> None:
        self.verdicts = VerdictBook(self.filters, self.read_in_limited_view)
        self.handle = _Handle(self)

    # -- the handle actors see --------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.stop_reason is None

    @property
    def stopped(self) -> asyncio.Event:
        return self._stopped

    def known_place_ids(self) -> frozenset[str]:
        return frozenset(self.found)

    def coverage_plan(self) -> dict[str, Any] | None:
        return self.plan

    def site_for(self, place_id: str) -> SiteReport | None:
        return self.site_reports.get(place_id)

    def read_in_limited_view(self, place_id: str) -> bool:
        return place_id in self.limited_ids

    def hidden_review_counts(self) -> int:
        """Leads whose ``min_reviews`` could not be applied: Google's limited view hid their count."""
        return len(self.hidden_ids)

    @property
    def maps_view(self) -> MapsView | None:
        return combine_views(self.views)

    def report(self, fact: Fact) -> None:
        try:
            self.apply(fact)
        except Exception:  # a bug here must not unwind an actor mid-message
            log.exception("job state could not apply a fact", extra={"job_id": self.job_id})
        self.changed.set()

    # -- derived ----------------------------------------------------------------------------------

    @property
    def wants_pagespeed(self) -> bool:
        return self.spec.pagespeed.enabled

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(self.spec.pagespeed.strategies)

    @property
    def needs_enrichment(self) -> bool:
        return bool(self.to_enrich or self.enriching)

    @property
    def wants_site(self) -> bool:
        return self.read_sites and self.spec.site.enabled

    @property
    def needs_site(self) -> bool:
        return bool(self.to_read_site or self.reading_site)

    @property
    def complete(self) -> bool:
        return (
            self.scrape_done and not self.needs_enrichment and not self.needs_site and not self.unwritten
            and not self.outbox and not self.verdicts.any_due()
        )

    def counters(self) -> dict[str, int]:
        return {
            "found": len(self.found),
            "qualified": sum(1 for ok in self.qualified.values() if ok),
            "enriched": len(self.enriched),
            "written": len(self.written),
            "failed": len(self.failed) + self.malformed,
        }

    def scrape_message(self) -> ScrapeJob:
        return ScrapeJob(self.handle)

    def next_enrichment(self) -> EnrichLead | None:
        """The next lead for the enricher, now counted as in it."""
        listing = _take(self.to_enrich, self.enriching)
        return None if listing is None else EnrichLead(self.handle, listing)

    def next_site_read(self) -> ReadSite | None:
        """The next lead for the site actor, now counted as in it."""
        listing = _take(self.to_read_site, self.reading_site)
        return None if listing is None else ReadSite(self.handle, listing)

    @property
    def all_written(self) -> bool:
        """Nothing of this job is left on its way to the store (rows, lead failures)."""
        return not self.unwritten and not self.outbox

    @property
    def rows_in_flight(self) -> bool:
        """Rows handed to the writer and not yet durable (what a resumed run of the job waits for)."""
        return bool(self.unwritten)

    def unwritten_count(self) -> int:
        return len(self.unwritten) + len(self.outbox)

    def enrichments_outstanding(self) -> int:
        return len(self.to_enrich) + len(self.enriching)

    def waits_for_enrichment(self) -> bool:
        """Leads queued for the enricher (not yet in it): what a spent daily quota holds up."""
        return bool(self.to_enrich)

    def next_status(self) -> WriteLeadStatus | None:
        """The oldest lead failure not yet handed to the writer (it stays until :meth:`status_sent`)."""
        return self.outbox[0] if self.outbox else None

    def status_sent(self) -> None:
        self.outbox.popleft()

    def plan_to_save(self) -> bool:
        """A newer durable area plan waits to be saved: the driver saves it at once."""
        return self.plan_unsaved

    def take_plan(self) -> dict[str, Any] | None:
        """The plan to save now (the newest whose cells' leads are all settled), now counted as saved."""
        self.plan_unsaved = False
        return self.durable_plan

    def plan_not_saved(self, plan: dict[str, Any] | None) -> None:
        """The save of :meth:`take_plan`'s plan failed: it waits to be saved again."""
        self.plan_unsaved = self.plan_unsaved or plan is not None

    # -- changes ----------------------------------------------------------------------------------

    def attach(self, dead_letters: Callable[[DeadLetter], None], *, read_sites: bool) -> None:
        """The driver's wiring: where lead dead letters go, and whether the pipeline reads sites."""
        self.dead_letters = dead_letters
        self.read_sites = read_sites

    def stop(self, reason: StopReason, error: str | None = None) -> None:
        """Stop the run (the first reason wins): its scrape and enrichments end, its driver finishes it."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.error = error
            self._stopped.set()
        self.changed.set()

    def resume_plan(self, progress: dict[str, Any]) -> None:
        """An area job's plan and counters as its last run persisted them (its job's progress)."""
        plan = progress.get("area_plan")
        if isinstance(plan, dict):
            self.plan = self.durable_plan = plan
        view = progress.get("maps_view")
        if view in ("full", "limited", "mixed"):
            self.views.add(view)
        area = progress.get("area")
        if isinstance(area, dict):
            self.area_progress = {k: int(v) for k, v in area.items() if isinstance(v, int)}

    def resume_from(self, rows: list[dict[str, Any]]) -> None:
        """What the store already holds for this job: counted, enriched again where incomplete, and
        judged (from the stored facts) once that is done, or now if it never was."""
        for row in rows:
            place_id = row["place_id"]
            assert isinstance(place_id, str)
            facts = facts_of_row(row)
            listing = facts[0]
            awaited: list[FactKind] = []
            self.found.add(place_id)
            self.written.add(place_id)
            if row.get("qualified") is not None:
                self.qualified[place_id] = bool(row["qualified"])
            tested = [s for s in self.strategies if row.get(f"{s}_tested_at") is not None]
            if len(tested) == len(self.strategies):
                self.enriched.add(place_id)
            elif self.wants_pagespeed and row.get("website"):
                self.to_enrich.append(listing)
                awaited.append("pagespeed")
            if row.get("site_status") is not None:
                self.sites_read.add(place_id)  # read already (for this job or another: sites are shared)
            elif self.wants_site and row.get("website"):
                self.to_read_site.append(listing)
                awaited.append("site")
            self.verdicts.resume(place_id, facts, awaited, judged=row.get("qualified") is not None)

    def verdicts_written(self, verdicts: list[Verdict]) -> None:
        """These verdicts are durable: the job's qualified count follows them."""
        self.verdicts.written(verdicts)
        for verdict in verdicts:
            self.qualified[verdict.place_id] = verdict.qualification.qualified
        self.changed.set()

    def apply(self, fact: Fact) -> None:
        match fact:
            case LeadScraped(listing=listing):
                place_id = listing.place_id
                if place_id is None:
                    return
                self.found.add(place_id)
                if fact.limited_view:
                    self.limited_ids.add(place_id)
                    if listing.review_count is None and self.spec.min_reviews is not None:
                        self.hidden_ids.add(place_id)
                self.unwritten.add(("lead", place_id))
                awaited: list[FactKind] = []
                if self.wants_pagespeed and listing.website and place_id not in self.enriched:
                    self.to_enrich.append(listing)
                    awaited.append("pagespeed")
                if self.wants_site and listing.website and place_id not in self.sites_read:
                    self.to_read_site.append(listing)
                    awaited.append("site")
                self.verdicts.expect(place_id, listing, awaited)
            case AreaCellDone():
                self.plan = fact.plan
                self.area_progress = {
                    "cells_done": fact.cells_done, "cells_pending": fact.cells_pending, "found": fact.found
                }
                self._plans.append((fact.plan, frozenset(fact.added)))
                self._settle_plans()
            case ScrapeEnded(outcome=outcome):
                self.outcome = outcome
                self.malformed = outcome.malformed
                self.scrape_done = True
            case MapsViewSeen(view=view):
                self.views.add(view)
            case AddressSkipped(place_id=place_id):
                self.addresses_skipped.add(place_id)
            case ScrapeFailed(reason=reason):
                self.stop("failed", f"the search could not be read: {reason}")
            case LeadEnriched(place_id=place_id, handed_to_writer=handed):
                self.enriching.discard(place_id)
                if handed:
                    self.unwritten.add(("pagespeed", place_id))
                else:
                    self.verdicts.will_not_come(place_id, "pagespeed")  # nothing to test
            case EnrichmentReturned(listing=listing):
                if listing.place_id is not None:
                    self.enriching.discard(listing.place_id)
                if self.active:
                    self.to_enrich.append(listing)
            case LeadSiteRead(place_id=place_id, report=report):
                self.reading_site.discard(place_id)
                if report is None:
                    self.sites_read.add(place_id)
                    self.verdicts.will_not_come(place_id, "site")  # no website: nothing was read
                else:
                    self.site_reports[place_id] = report
                    self.unwritten.add(("site", place_id))
            case SiteReturned(listing=listing):
                if listing.place_id is not None:
                    self.reading_site.discard(listing.place_id)
                if self.active:
                    self.to_read_site.append(listing)
            case LeadFailed():
                self._lead_failed(fact)
            case RowsCommitted():
                self._committed(fact)
            case GaveUp():
                self._gave_up(fact)

    def _committed(self, fact: RowsCommitted) -> None:
        for place_id in fact.leads:
            self.written.add(place_id)
            self.unwritten.discard(("lead", place_id))
            self.verdicts.lead_durable(place_id)
        for place_id, results in fact.enrichments:
            self.verdicts.results_durable(place_id, results)
            self.enriched.add(place_id)
            self.unwritten.discard(("pagespeed", place_id))
            # A lead enriched after a failure (a replay) has failed no longer.
            self.failed.pop(place_id, None)
        for place_id in fact.statuses:
            self.unwritten.discard(("status", place_id))
        for place_id in fact.sites:
            self.sites_read.add(place_id)
            self.unwritten.discard(("site", place_id))
            report = self.site_reports.get(place_id)
            if report is not None:
                self.verdicts.site_durable(place_id, report)
        self._settle_plans()

    def _settle_plans(self) -> None:
        while self._plans and all(p in self.written or p in self.failed for p in self._plans[0][1]):
            self.durable_plan = self._plans.popleft()[0]
            self.plan_unsaved = True

    def _lead_failed(self, fact: LeadFailed) -> None:
        place_id = fact.place_id
        self.enriching.discard(place_id)
        self.reading_site.discard(place_id)
        # The facts of that stage will not come in this run (a store refusal: whichever was refused).
        if fact.stage in ("pagespeed", "site"):
            self.verdicts.will_not_come(place_id, fact.stage)
        elif fact.stage == "store":
            self.verdicts.will_not_come(place_id, "pagespeed", "site")
        if fact.stage == "store":
            self.unwritten.discard(("lead", place_id))
            self.unwritten.discard(("pagespeed", place_id))
            self.unwritten.discard(("site", place_id))
        if place_id in self.failed:
            return  # one failure per lead is recorded and dead-lettered, however often it is reported
        # "pagespeed: gave up after 2 attempts (…)": said once, whoever prefixed it.
        reason = redact(fact.reason).removeprefix(f"{fact.stage}: ")
        self.failed[place_id] = f"{fact.stage}: {reason}"
        self._settle_plans()
        log.warning(
            "lead failed; the job goes on",
            extra={"job_id": self.job_id, "place_id": place_id, "stage": fact.stage, "reason": reason},
        )
        if self.dead_letters is not None:
            payload = {"job_id": self.job_id, "place_id": place_id, "stage": fact.stage, **fact.payload}
            self.dead_letters(DeadLetter("lead", payload, reason, 1, fact.stage))
        if fact.stage != "store" and place_id in self.found:
            # Its row exists (or is on its way): the failure is recorded on it.
            self.outbox.append(WriteLeadStatus(self.handle, place_id, f"{fact.stage}: {reason}"))
            self.unwritten.add(("status", place_id))

    def _gave_up(self, fact: GaveUp) -> None:
        message = fact.message
        reason = f"{fact.actor} failed {fact.attempts} times: {fact.reason}"
        if isinstance(message, ScrapeJob):
            # The same search crashed the scraper every time (the browser, the parser): retrying the
            # job would do the same. An outage never gets here: the scraper waits those out.
            if self.dead_letters is not None:
                self.dead_letters(DeadLetter("job", message.to_dict(), fact.reason, fact.attempts, fact.actor))
            self.stop("failed", reason)
        elif isinstance(message, EnrichLead):
            place_id = message.listing.place_id
            if place_id is not None:
                self._lead_failed(LeadFailed(place_id, "pagespeed", reason, message.to_dict()))
        elif isinstance(message, ReadSite):
            place_id = message.listing.place_id
            if place_id is not None:
                self._lead_failed(LeadFailed(place_id, "site", reason, message.to_dict()))
        elif isinstance(message, WriteLead | WriteEnrichment | WriteSite):
            place_id = message.listing.place_id
            if place_id is not None:
                self._lead_failed(LeadFailed(place_id, "store", reason, message.to_dict()))
        elif isinstance(message, WriteLeadStatus):
            self.unwritten.discard(("status", message.place_id))
