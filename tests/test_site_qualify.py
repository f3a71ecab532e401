"""The job spec's ``site`` filters: parsed strictly, each unmet one a reason, set from CLI flags."""

from __future__ import annotations

import pytest

from leadlawk_daemon import control
from leadlawk_daemon.cli import _parser, _site_filters
from leadlawk_daemon.jobspec import JobSpecError, SiteSpec, parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.qualify import Filters, qualify
from leadlawk_daemon.sites.report import SiteReport, SiteStatus

LEAD = Listing(name="Acme Roofing", place_id="ChIJacme", website="http://acme.example/")


def _site(**facts: object) -> SiteReport:
    base: dict[str, object] = {
        "site": "acme.example", "url": "http://acme.example/", "status": SiteStatus.OK, "emails": ["info@acme.example"],
        "cms": "wix", "copyright_year": 2015, "https": False, "mobile_viewport": False,
    }
    return SiteReport(**(base | facts))  # type: ignore[arg-type]


def _filters(**site: object) -> Filters:
    spec = parse_job_spec({"query": "roofers", "site": site}, 65_536)
    return Filters.from_spec(spec.to_dict())


def test_site_spec_round_trips_and_stays_out_of_plain_specs() -> None:
    spec = parse_job_spec({"query": "x", "site": {"status": ["dead", "parked"], "older_than_year": 2018}}, 65_536)
    assert spec.site == SiteSpec(status=("dead", "parked"), older_than_year=2018)
    assert parse_job_spec(spec.to_dict(), 65_536) == spec
    assert "site" not in parse_job_spec({"query": "x"}, 65_536).to_dict()


def test_bad_site_filters_are_each_named() -> None:
    with pytest.raises(JobSpecError) as raised:
        parse_job_spec({"query": "x", "site": {"built_with": ["joomlah"], "older_than_year": 1200, "x": 1}}, 65_536)
    problems = raised.value.problems
    assert problems[0] == "site.x: unknown field"
    assert problems[1].startswith("site.built_with[0]: must be a technology the fingerprints know")
    assert problems[2].startswith("site.older_than_year: must be between 1990 and 2100")


@pytest.mark.parametrize(
    ("filters", "site", "reason"),
    [
        ({"require_email": True}, _site(emails=[]), "no email address found on the website"),
        ({"status": ["dead", "parked"]}, _site(), "site is ok, wanted dead or parked"),
        ({"built_with": ["wordpress"]}, _site(), "site built with wix, wanted wordpress"),
        ({"older_than_year": 2015}, _site(), "site updated 2015, wanted before 2015"),
        ({"older_than_year": 2018}, _site(copyright_year=2012, last_modified="2019-03-01"),
         "site updated 2019, wanted before 2018"),
        ({"older_than_year": 2018}, _site(copyright_year=None),
         "site age unknown (no copyright year, no Last-Modified), wanted before 2018"),
        ({"no_https": True}, _site(https=True), "site has https"),
        ({"no_mobile_viewport": True}, _site(mobile_viewport=True), "site has a mobile viewport"),
        ({"no_mobile_viewport": True}, _site(status=SiteStatus.DEAD, mobile_viewport=None), "site's viewport unknown"),
        ({"require_email": True}, None, "website not read yet (site filters set)"),
    ],
)
def test_each_unmet_site_filter_is_a_reason(filters: dict[str, object], site: SiteReport | None, reason: str) -> None:
    verdict = qualify(LEAD, [], _filters(**filters), site)
    assert (verdict.qualified, verdict.reasons) == (False, (reason,))


def test_a_site_meeting_every_filter_qualifies() -> None:
    filters = _filters(require_email=True, status=["ok"], built_with=["wix", "godaddy"], older_than_year=2016,
                       no_https=True, no_mobile_viewport=True)
    assert qualify(LEAD, [], filters, _site()).qualified
    no_site = Listing(name="Bob's", place_id="ChIJbob", website=None)
    assert qualify(no_site, [], filters, None).reasons == ("no website to read (site filters set)",)
    assert qualify(no_site, [], Filters(), None).qualified  # no site filter, nothing asked of the site


def test_cli_flags_make_the_site_object() -> None:
    args = _parser().parse_args(["collect", "roofers", "--require-email", "--site-status", "dead",
                                 "--site-status", "parked", "--built-with", "wix", "--older-than", "2018",
                                 "--no-https", "--no-viewport"])
    site = _site_filters(args)
    spec = control.spec_from_options("roofers", site=site)
    assert spec.site == SiteSpec(require_email=True, status=("dead", "parked"), built_with=("wix",),
                                 older_than_year=2018, no_https=True, no_mobile_viewport=True)
    assert _site_filters(_parser().parse_args(["collect", "roofers"])) is None
    with pytest.raises(control.ControlError, match=r"site\.built_with\[0\]"):
        control.spec_from_options("roofers", site={"built_with": ["joomlah"]})
