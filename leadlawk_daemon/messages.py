"""The pipeline's vocabulary: work for the actors, and the facts they report about a job.

Actors see a job only through a :class:`JobHandle`: they read its id and spec, race their work
against its ``stopped`` event, and :meth:`~JobHandle.report` what happened as a :data:`Fact`.
They change no counter and decide nothing about the job, not even a lead's verdict: its owner
(one per job, ``leadlawk_daemon.jobs.state.JobState``, driven by ``jobs.driver.JobDriver``)
applies every fact, classifies failures, judges leads and finishes it. What actors hold is a
narrow handle (``JobState.handle``), not the state itself.
This module sits below both layers, so that actors import nothing of ``jobs/``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.outcomes import ScrapeOutcome
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.sites.report import SiteReport

__all__ = [
    "AddressSkipped",
    "AreaCellDone",
    "EnrichLead",
    "EnrichmentReturned",
    "Fact",
    "GaveUp",
    "JobHandle",
    "LeadEnriched",
    "LeadFailed",
    "LeadScraped",
    "LeadSiteRead",
    "MapsViewSeen",
    "ReadSite",
    "RowsCommitted",
    "ScrapeEnded",
    "ScrapeFailed",
    "ScrapeJob",
    "SiteReturned",
    "Stage",
    "WorkMessage",
    "WriteEnrichment",
    "WriteLead",
    "WriteLeadStatus",
    "WriteSite",
    "WriterMessage",
]

# Where a lead failed: its PageSpeed calls, its website, its row in the store.
Stage = Literal["pagespeed", "site", "store", "scrape"]


# -- facts: what actors report to a job's owner ------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadScraped:
    """A listing was read and handed to the writer, with its rank in the results."""

    listing: Listing
    rank: int
    # Read in Google's limited view: a field it lacks may be hidden rather than unknown.
    limited_view: bool = False


@dataclass(frozen=True, slots=True)
class MapsViewSeen:
    """A Google Maps page of the job's search was read in this view ("full" or "limited")."""

    view: str


@dataclass(frozen=True, slots=True)
class AddressSkipped:
    """A result of the job's search was a street address or a locality (kind "address"), kept out
    of its leads (docs/addresses.md)."""

    place_id: str


@dataclass(frozen=True, slots=True)
class ScrapeEnded:
    """The search is read to its end (or the job's limit)."""

    outcome: ScrapeOutcome


@dataclass(frozen=True, slots=True)
class AreaCellDone:
    """One cell of an area search is searched (``coverage: "area"``): the plan as it stands now
    (``CoveragePlan.to_json(with_seen=False)``) and the place ids that cell added, already handed
    to the writer. The owner persists the plan once those are durable, so that a resumed job
    searches no finished cell again and loses no lead."""

    plan: dict[str, Any]
    added: tuple[str, ...]
    cells_done: int
    cells_pending: int
    found: int


@dataclass(frozen=True, slots=True)
class ScrapeFailed:
    """The search cannot be read while Google answers: a cause that retrying does not fix."""

    reason: str


@dataclass(frozen=True, slots=True)
class LeadEnriched:
    """A lead's enrichment is done: its PageSpeed results were handed to the writer (or there was
    nothing to test, ``handed_to_writer`` false)."""

    place_id: str
    handed_to_writer: bool = True


@dataclass(frozen=True, slots=True)
class EnrichmentReturned:
    """A lead's enrichment did not run now (its job stopped, the daily quota is spent): the owner
    keeps it for later."""

    listing: Listing
    why: str


@dataclass(frozen=True, slots=True)
class LeadSiteRead:
    """A lead's website was read and its report handed to the writer (``report`` None: the lead
    has no website; nothing was read or written). A dead site is a report like any other."""

    place_id: str
    report: SiteReport | None


@dataclass(frozen=True, slots=True)
class SiteReturned:
    """A lead's website was not read now (its job stopped): the owner keeps it for later."""

    listing: Listing
    why: str


@dataclass(frozen=True, slots=True)
class LeadFailed:
    """One lead failed one stage for a reason of its own: recorded on the lead, the job goes on."""

    place_id: str
    stage: Stage
    reason: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RowsCommitted:
    """The writer made these rows durable (facts only: a lead's verdict is its job's to write)."""

    leads: tuple[str, ...]
    enrichments: tuple[tuple[str, tuple[PageSpeedResult, ...]], ...]
    statuses: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()  # leads whose site report is durable


@dataclass(frozen=True, slots=True)
class GaveUp:
    """An actor's handler crashed on a message of this job ``attempts`` times: the runtime gave up
    on it. The owner decides what that means for the job and dead-letters it once."""

    actor: str
    message: WorkMessage
    reason: str
    attempts: int


Fact = (
    LeadScraped
    | AreaCellDone
    | ScrapeEnded
    | MapsViewSeen
    | AddressSkipped
    | ScrapeFailed
    | LeadEnriched
    | EnrichmentReturned
    | LeadSiteRead
    | SiteReturned
    | LeadFailed
    | RowsCommitted
    | GaveUp
)


class JobHandle(Protocol):
    """What an actor may know of a job, and the one way it reports back."""

    @property
    def job_id(self) -> str: ...

    @property
    def spec(self) -> JobSpec: ...

    @property
    def active(self) -> bool:
        """False once the job stopped (finished, cancelled, handed back): drop its work."""
        ...

    @property
    def stopped(self) -> asyncio.Event:
        """Set when the job stops: race long work against it (``racing.unless_set``)."""
        ...

    def known_place_ids(self) -> frozenset[str]:
        """Leads of this job already handed on (or stored): a repeated scrape skips them."""
        ...

    def coverage_plan(self) -> dict[str, Any] | None:
        """An area job's latest coverage plan (without place ids), to carry on from; None at its start."""
        ...

    def report(self, fact: Fact) -> None:
        """Tell the job's owner what happened. Never blocks, never raises."""
        ...


# -- work: what actors send each other ----------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ScrapeJob:
    job: JobHandle

    def to_dict(self) -> dict[str, Any]:
        spec = self.job.spec
        return {"job_id": self.job.job_id, "query": spec.query, "location": spec.location}


@dataclass(frozen=True, slots=True, eq=False)
class EnrichLead:
    job: JobHandle
    listing: Listing

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job.job_id, "place_id": self.listing.place_id, "website": self.listing.website}


@dataclass(frozen=True, slots=True, eq=False)
class WriteLead:
    """A listing as scraped, with its rank in the job's results."""

    job: JobHandle
    listing: Listing
    rank: int

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job.job_id, "rank": self.rank, "listing": self.listing.to_dict()}


@dataclass(frozen=True, slots=True, eq=False)
class WriteEnrichment:
    """PageSpeed results for a lead (a broken site's included): rows, and its qualification again."""

    job: JobHandle
    listing: Listing
    results: tuple[PageSpeedResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job.job_id,
            "place_id": self.listing.place_id,
            "strategies": [r.strategy for r in self.results],
        }


@dataclass(frozen=True, slots=True, eq=False)
class WriteLeadStatus:
    """A lead's own failure, recorded on its ``job_leads`` row (``status``, ``error``)."""

    job: JobHandle
    place_id: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job.job_id, "place_id": self.place_id, "error": self.error}


@dataclass(frozen=True, slots=True, eq=False)
class ReadSite:
    """Read this lead's website (the site actor)."""

    job: JobHandle
    listing: Listing

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job.job_id, "place_id": self.listing.place_id, "website": self.listing.website}


@dataclass(frozen=True, slots=True, eq=False)
class WriteSite:
    """A lead's site report: its ``sites`` row, its link, and its qualification again."""

    job: JobHandle
    listing: Listing
    report: SiteReport

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job.job_id, "place_id": self.listing.place_id, "site": self.report.site}


WriterMessage = WriteLead | WriteEnrichment | WriteSite | WriteLeadStatus
WorkMessage = ScrapeJob | EnrichLead | ReadSite | WriterMessage
