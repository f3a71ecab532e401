"""Lead qualification: does a lead meet a job's filters, and if not, why not.

Qualification only labels: a lead that does not qualify is still stored, with its reasons
(the old system deleted leads whose score was too good; we never delete).

Choices, documented in docs/decisions.md ("Qualification"):
- ``pagespeed.max_score`` reads the *mobile* performance score, as the job spec says.
- A website Lighthouse could not load (``error`` set) qualifies for ``max_score``: a broken site
  is the strongest lead a web agency can get.
- A lead without a website is not held to ``max_score`` (there is nothing to measure); the
  ``website`` filter alone decides about it.
- A lead whose website has no mobile result yet (enrichment failed or did not run) does not
  qualify while ``max_score`` is set, with the reason saying so; it can qualify on a later run.
- An unknown rating or review count does not meet a minimum; a review count Google's limited view
  hid (the lead was read in it) is its own reason, and ``min_reviews_when_hidden: accept`` lets
  such a lead through on that filter.
- ``site`` filters read the lead's site report (``leadlawk_daemon.sites``): a lead whose website
  was not read yet, or that has no website, does not meet a site filter; an unknown fact (no
  copyright year, a dead site's viewport) does not meet the filter that asks for it.
  ``older_than_year`` compares the newest of the copyright year and ``Last-Modified``'s year.
- ``independent_only`` and ``max_branches`` read the lead's company size (docs/chains.md), known
  once the job's leads are grouped when it ends: until then a lead does not meet them ("company not
  grouped yet"), and the job's final verdicts judge every lead by its company.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from leadlawk_daemon.jobspec import SiteSpec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.sites.report import SiteReport

__all__ = [
    "HIDDEN_REVIEW_COUNT",
    "NOT_GROUPED",
    "Filters",
    "Qualification",
    "company_reasons",
    "qualify",
    "site_reasons",
]

# The reason a minimum review count could not be applied, word for word (collect and submit count it).
HIDDEN_REVIEW_COUNT = "review_count hidden by Google's limited view"
# The reason a chain filter could not be applied yet: the lead's company is known when the job ends.
NOT_GROUPED = "company not grouped yet (chain filters apply when the job ends)"

WebsiteRule = Literal["any", "required", "none"]


@dataclass(frozen=True, slots=True)
class Filters:
    min_rating: float | None = None
    min_reviews: int | None = None
    website: WebsiteRule = "any"
    max_score: int | None = None
    site: SiteSpec = field(default_factory=SiteSpec)
    min_reviews_when_hidden: Literal["reject", "accept"] = "reject"
    independent_only: bool = False
    max_branches: int | None = None

    @property
    def chains(self) -> bool:
        """Whether a chain filter is set: the lead's company size decides."""
        return self.independent_only or self.max_branches is not None

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
    def from_spec(cls, spec: Mapping[str, Any], when_hidden: Literal["reject", "accept"] = "reject") -> Filters:
        """The filters of a job spec (already validated by the job spec parser); ``when_hidden``: the
        configuration's ``min_reviews_when_hidden``, for a spec that does not say."""
        pagespeed = spec.get("pagespeed") or {}
        max_score = pagespeed.get("max_score") if isinstance(pagespeed, Mapping) else None
        if isinstance(pagespeed, Mapping) and pagespeed.get("enabled") is False:
            max_score = None
        site = spec.get("site")
        return cls(
            min_rating=spec.get("min_rating"),
            min_reviews=spec.get("min_reviews"),
            website=spec.get("website") or "any",
            max_score=max_score,
            site=_site_spec(site) if isinstance(site, Mapping) else SiteSpec(),
            min_reviews_when_hidden="accept" if spec.get("min_reviews_when_hidden", when_hidden) == "accept"
            else "reject",
            independent_only=spec.get("independent_only") is True,
            max_branches=spec.get("max_branches"),
        )


@dataclass(frozen=True, slots=True)
class Qualification:
    qualified: bool
    reasons: tuple[str, ...]
    """Why not, one readable line per unmet filter; empty when qualified."""


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _site_spec(raw: Mapping[str, Any]) -> SiteSpec:
    year = raw.get("older_than_year")
    return SiteSpec(
        enabled=raw.get("enabled") is not False,
        require_email=raw.get("require_email") is True,
        status=tuple(raw.get("status") or ()),
        built_with=tuple(raw.get("built_with") or ()),
        older_than_year=year if isinstance(year, int) else None,
        no_https=raw.get("no_https") is True,
        no_mobile_viewport=raw.get("no_mobile_viewport") is True,
        email=raw["email"] if raw.get("email") in ("any", "deliverable") else None,
        exclude_free_mail=raw.get("exclude_free_mail") is True,
    )


def _email_reasons(site: SiteReport, wanted: SiteSpec) -> list[str]:
    """The email-verdict filters (docs/email-verdicts.md): ``email: "deliverable"`` wants an address
    at a domain that accepts mail; ``exclude_free_mail`` counts no free-mail address for it, and
    alone refuses a lead whose addresses are all free mail."""
    if not (wanted.email == "deliverable" or wanted.exclude_free_mail):
        return []
    if site.emails and not site.email_verdicts:
        return ["its email addresses were not judged (emails.enabled is false)"]
    verdicts = site.email_verdicts
    free = sorted({str(v.get("email", "")).rpartition("@")[2] for v in verdicts if v.get("free_mail")})
    if wanted.email == "deliverable":
        deliverable = [v for v in verdicts if v.get("status") == "deliverable_domain"]
        if not deliverable:
            return ["no email address at a domain that accepts mail"]
        if wanted.exclude_free_mail and all(v.get("free_mail") for v in deliverable):
            return [f"no deliverable email address but free mail ({', '.join(free)})"]
        return []
    if verdicts and all(v.get("free_mail") for v in verdicts):
        return [f"its email is free mail ({', '.join(free)})"]
    return []


def site_reasons(listing: Listing, site: SiteReport | None, wanted: SiteSpec) -> list[str]:
    """Why ``site`` does not meet the job's site filters, one line per unmet filter."""
    if not wanted.filtering:
        return []
    if not listing.website:
        return ["no website to read (site filters set)"]
    if site is None:
        return ["website not read yet (site filters set)"]
    reasons: list[str] = []
    if (wanted.require_email or wanted.email == "any") and not site.emails:
        reasons.append("no email address found on the website")
    reasons += _email_reasons(site, wanted)
    if wanted.status and site.status.value not in wanted.status:
        reasons.append(f"site is {site.status.value}, wanted {' or '.join(wanted.status)}")
    if wanted.built_with and site.cms not in wanted.built_with and not set(site.tech) & set(wanted.built_with):
        shown = ", ".join(dict.fromkeys([site.cms or "unknown", *site.tech]))
        reasons.append(f"site built with {shown}, wanted {' or '.join(wanted.built_with)}")
    if wanted.older_than_year is not None:
        years = [y for y in (site.copyright_year, _year(site.last_modified)) if y is not None]
        if not years:
            reasons.append(f"site age unknown (no copyright year, no Last-Modified), "
                           f"wanted before {wanted.older_than_year}")
        elif max(years) >= wanted.older_than_year:
            reasons.append(f"site updated {max(years)}, wanted before {wanted.older_than_year}")
    if wanted.no_https and site.https is not False:
        reasons.append("site has https" if site.https else "site's https unknown")
    if wanted.no_mobile_viewport and site.mobile_viewport is not False:
        reasons.append("site has a mobile viewport" if site.mobile_viewport else "site's viewport unknown")
    return reasons


def company_reasons(company_size: int | None, filters: Filters) -> list[str]:
    """Why the lead's company does not meet the chain filters (``company_size``: its branches found;
    ``None``: not grouped yet)."""
    if not filters.chains:
        return []
    if company_size is None:
        return [NOT_GROUPED]
    reasons = []
    if filters.independent_only and company_size > 1:
        reasons.append(f"part of a chain of {company_size} branches (independent only)")
    if filters.max_branches is not None and company_size > filters.max_branches:
        reasons.append(f"chain of {company_size} branches, more than {filters.max_branches}")
    return reasons


def _year(iso_date: str | None) -> int | None:
    if iso_date and len(iso_date) >= 4 and iso_date[:4].isdigit():
        return int(iso_date[:4])
    return None


def qualify(
    listing: Listing,
    results: Sequence[PageSpeedResult],
    filters: Filters,
    site: SiteReport | None = None,
    *,
    limited_view: bool = False,
    company_size: int | None = None,
) -> Qualification:
    """``site``: the lead's site report, when its website was read (``filters.site``);
    ``limited_view``: the lead was read in Google's limited view (what it lacks may be hidden);
    ``company_size``: its company's branches found, once grouped (the chain filters)."""
    reasons: list[str] = []
    if filters.min_rating is not None:
        if listing.rating is None:
            reasons.append(f"rating unknown, minimum {_fmt(filters.min_rating)}")
        elif listing.rating < filters.min_rating:
            reasons.append(f"rating {_fmt(listing.rating)} below {_fmt(filters.min_rating)}")
    if filters.min_reviews is not None:
        if listing.review_count is None and limited_view:
            if filters.min_reviews_when_hidden == "reject":
                reasons.append(HIDDEN_REVIEW_COUNT)
        elif listing.review_count is None:
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
    reasons.extend(site_reasons(listing, site, filters.site))
    reasons.extend(company_reasons(company_size, filters))
    return Qualification(not reasons, tuple(reasons))
