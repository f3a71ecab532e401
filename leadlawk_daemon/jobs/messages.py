"""What the pipeline's actors send each other. Each carries its :class:`JobRun`, so a message for
a run that was stopped (cancelled, handed back) is recognised and dropped by whoever takes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadlawk_daemon.jobs.run import JobRun
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.pagespeed.result import PageSpeedResult

__all__ = ["EnrichLead", "LeadEnriched", "LeadFound", "ScrapeJob", "WriterMessage"]


@dataclass(frozen=True, slots=True, eq=False)
class ScrapeJob:
    run: JobRun
    already_emitted: frozenset[str]

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.run.job_id, "query": self.run.spec.query, "location": self.run.spec.location}


@dataclass(frozen=True, slots=True, eq=False)
class EnrichLead:
    run: JobRun
    listing: Listing

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.run.job_id, "place_id": self.listing.place_id, "website": self.listing.website}


@dataclass(frozen=True, slots=True, eq=False)
class LeadFound:
    """A listing as scraped, with its rank in the job's results."""

    run: JobRun
    listing: Listing
    rank: int

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.run.job_id, "rank": self.rank, "listing": self.listing.to_dict()}


@dataclass(frozen=True, slots=True, eq=False)
class LeadEnriched:
    """PageSpeed results for a lead (a broken site's included): rows, and qualification again."""

    run: JobRun
    listing: Listing
    results: tuple[PageSpeedResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.run.job_id,
            "place_id": self.listing.place_id,
            "strategies": [r.strategy for r in self.results],
        }


WriterMessage = LeadFound | LeadEnriched
