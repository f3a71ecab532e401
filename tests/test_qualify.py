"""Lead qualification: each filter, its reason, and the broken-site rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.qualify import Filters, qualify

NOW = datetime(2025, 5, 1, tzinfo=UTC)


def listing(
    rating: float | None = 4.5, reviews: int | None = 30, website: str | None = "https://a.example/"
) -> Listing:
    return Listing(name="A", place_id="ChIJa", rating=rating, review_count=reviews, website=website)


def mobile(performance: int | None, error: str | None = None, strategy: str = "mobile") -> PageSpeedResult:
    return PageSpeedResult("ChIJa", strategy, "https://a.example/", NOW, performance=performance, error=error)


def test_a_lead_meeting_every_filter_qualifies() -> None:
    filters = Filters(min_rating=4.0, min_reviews=10, website="required", max_score=50)
    result = qualify(listing(), [mobile(35)], filters)
    assert result.qualified
    assert result.reasons == ()


def test_each_unmet_filter_gives_a_readable_reason() -> None:
    filters = Filters(min_rating=4.0, min_reviews=10, max_score=50)
    result = qualify(listing(rating=3.9, reviews=4), [mobile(87)], filters)
    assert not result.qualified
    assert result.reasons == (
        "rating 3.9 below 4.0",
        "4 reviews, fewer than 10",
        "mobile performance 87 above 50",
    )


def test_max_score_reads_the_mobile_score_only() -> None:
    filters = Filters(max_score=50)
    assert qualify(listing(), [mobile(20, strategy="desktop"), mobile(50)], filters).qualified
    result = qualify(listing(), [mobile(20, strategy="desktop")], filters)
    assert result.reasons == ("no mobile PageSpeed result",)


def test_a_site_lighthouse_could_not_load_qualifies() -> None:
    result = qualify(listing(), [mobile(None, error="FAILED_DOCUMENT_REQUEST")], Filters(max_score=10))
    assert result.qualified


@pytest.mark.parametrize(
    ("rule", "website", "reason"),
    [
        ("required", None, "no website (website required)"),
        ("none", "https://a.example/", "has a website (only leads without one wanted)"),
    ],
)
def test_website_rule(rule: str, website: str | None, reason: str) -> None:
    result = qualify(listing(website=website), [], Filters(website=rule))  # type: ignore[arg-type]
    assert result.reasons == (reason,)
    assert qualify(listing(website=website), [], Filters(website="any")).qualified


def test_no_website_is_not_held_to_max_score_and_unknowns_do_not_meet_minimums() -> None:
    assert qualify(listing(website=None), [], Filters(max_score=50)).qualified
    result = qualify(listing(rating=None, reviews=None), [mobile(10)], Filters(min_rating=4, min_reviews=1))
    assert result.reasons == ("rating unknown, minimum 4.0", "review count unknown, minimum 1")


def test_filters_from_a_job_spec() -> None:
    spec = {"query": "plumbers", "min_rating": 4.0, "min_reviews": 3, "website": "any",
            "pagespeed": {"enabled": True, "strategies": ["mobile"], "max_score": 50}}  # fmt: skip
    assert Filters.from_spec(spec) == Filters(min_rating=4.0, min_reviews=3, website="any", max_score=50)
    spec["pagespeed"] = {"enabled": False, "max_score": 50}
    assert Filters.from_spec(spec).max_score is None
    with pytest.raises(ValueError, match="max_score"):
        Filters(max_score=101)
