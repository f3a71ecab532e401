"""What the Maps scraper is asked for a job: its search, and the listing fields the job needs.

The translation lives here, with the scraper actor, because an adapter knows no job spec:
``maps/`` is told a :class:`ScrapeRequest` and never sees a :class:`JobSpec`.
"""

from __future__ import annotations

from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.maps.scraper import ScrapeRequest

__all__ = ["scrape_request"]


def scrape_request(spec: JobSpec) -> ScrapeRequest:
    """``spec``'s search. ``needs`` names the fields the job filters or enriches on: a listing
    lacking one gets its place page fetched."""
    if spec.query is None:
        raise ValueError(f"job {spec.id}: a batch is scraped through its children, not as one search")
    needs: set[str] = set()
    if spec.website != "any" or spec.pagespeed.enabled:
        needs.add("website")
    if spec.min_rating is not None:
        needs.add("rating")
    if spec.min_reviews is not None:
        needs.add("review_count")
    return ScrapeRequest(
        spec.query, spec.location, spec.limit, frozenset(needs), spec.id, keep_addresses=spec.include_addresses
    )
