"""Lead qualification: does a lead meet a job's filters, and if not, why not.

Qualification only labels: a lead that does not qualify is still stored, with its reasons
(the old system deleted leads whose score was too good; we never delete).

Choices, documented in the README:
- ``pagespeed.max_score`` reads the *mobile* performance score, as the job spec says.
- A website Lighthouse could not load (``error`` set) qualifies for ``max_score``: a broken site
  is the strongest lead a web agency can get.
- A lead without a website is not held to ``max_score`` (there is nothing to measure); the
  ``website`` filter alone decides about it.
- A lead whose website has no mobile result yet (enrichment failed or did not run) does not
  qualify while ``max_score`` is set, with the reason saying so; it can qualify on a later run.
- An unknown rating or review count does not meet a minimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.pagespeed.result import PageSpeedResult

__all__ = ["Filters", "Qualification", "qualify"]

WebsiteRule = Literal["any", "required", "none"]


@dataclass(frozen=True, slots=True)
class Filters:
    min_rating: float | None = None
    min_reviews: int | None = None
    website: WebsiteRule = "any"
    max_score: int | None = None

    def __post_init__(self) -> None:
        if self.website not in ("any", "required", "none"):
            raise ValueError(f"website: expected any, required or none (got {self.website!r})")
        if self.max_score is not None and not 0 <= self.max_score <= 100:
            raise ValueError(f"pagespeed.max_score: expected 0 to 100 (got {self.max_score!r})")
        if self.min_rating is not None and not 0 <= self.min_rating <= 5:
            raise ValueError(f"min_rating: expected 0 to 5 (got {self.min_rating!r})")
        if self.min_reviews is not None and self.min_reviews < 0:
            raise ValueError(f"min_reviews: expected 0 or more (got {self.min_reviews!r})")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Filters:
        """The filters of a job spec (already validated by the job spec parser)."""
        pagespeed = spec.get("pagespeed") or {}
        max_score = pagespeed.get("max_score") if isinstance(pagespeed, Mapping) else None
        if isinstance(pagespeed, Mapping) and pagespeed.get("enabled") is False:
            max_score = None
        return cls(
            min_rating=spec.get("min_rating"),
            min_reviews=spec.get("min_reviews"),
            website=spec.get("website") or "any",
            max_score=max_score,
        )


@dataclass(frozen=True, slots=True)
class Qualification:
    qualified: bool
    reasons: tuple[str, ...]
    """Why not, one readable line per unmet filter; empty when qualified."""


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def qualify(listing: Listing, results: Sequence[PageSpeedResult], filters: Filters) -> Qualification:
    reasons: list[str] = []
    if filters.min_rating is not None:
        if listing.rating is None:
            reasons.append(f"rating unknown, minimum {_fmt(filters.min_rating)}")
        elif listing.rating < filters.min_rating:
            reasons.append(f"rating {_fmt(listing.rating)} below {_fmt(filters.min_rating)}")
    if filters.min_reviews is not None:
        if listing.review_count is None:
            reasons.append(f"review count unknown, minimum {filters.min_reviews}")
        elif listing.review_count < filters.min_reviews:
            reasons.append(f"{listing.review_count} reviews, fewer than {filters.min_reviews}")
    if filters.website == "required" and not listing.website:
        reasons.append("no website (website required)")
    elif filters.website == "none" and listing.website:
        reasons.append("has a website (only leads without one wanted)")
    if filters.max_score is not None and listing.website:
        mobile = next((r for r in results if r.strategy == "mobile"), None)
        if mobile is None:
            reasons.append("no mobile PageSpeed result")
        elif mobile.site_broken:
            pass  # A site Lighthouse could not load is a broken site: it qualifies.
        elif mobile.performance is None:
            reasons.append("mobile performance score missing")
        elif mobile.performance > filters.max_score:
            reasons.append(f"mobile performance {mobile.performance} above {filters.max_score}")
    return Qualification(not reasons, tuple(reasons))
