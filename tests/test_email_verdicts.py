"""Email verdicts without DNS: a hostile domain refused before any lookup, the flags read from the
address and the website, the primary address chosen as a sales team would, the filters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadlawk_daemon.emails import EmailStatus, EmailVerdict, MailDomain, judge, primary_email
from leadlawk_daemon.emails.domain_name import mail_domain, valid_domain
from leadlawk_daemon.emails.verdict import needs_lookup
from leadlawk_daemon.jobspec import JobSpecError, parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.qualify import Filters, site_reasons
from leadlawk_daemon.settings import ConfigError, load_settings, parse_dns_server
from leadlawk_daemon.sites.emails import registrable_domain
from leadlawk_daemon.sites.report import SiteReport, SiteStatus
from tests.linearity import FUZZ_EXAMPLES

DELIVERABLE, NO_MAIL = MailDomain.DELIVERABLE, MailDomain.NO_MAIL


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("info@Acme-Roofing.com.", "acme-roofing.com"),
        ("owner@bücher.de", "xn--bcher-kva.de"),
        ("a@localhost", None),  # one label
        ("a@10.0.0.1", None),  # an address, not a domain
        ("a@-acme.com", None),
        ("a@acme-.com", None),
        ("a@acme..com", None),
        ("a@" + "a" * 64 + ".com", None),  # a label past 63
        ("a@" + ".".join(["abcdefghi"] * 30) + ".com", None),  # past 254 in all
        ("a@acme_roofing.com", None),
        ("no-at-sign.com", None),
        ("@acme.com", None),
        ("a@acme.com\x00.evil", None),
    ],
)
def test_a_hostile_domain_is_refused_before_any_lookup(address: str, domain: str | None) -> None:
    assert mail_domain(address) == domain


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.text(max_size=300) | st.from_regex(r"[a-z0-9.-]{1,70}@[A-Za-z0-9.\-\u00e0-\u00ff]{0,300}", fullmatch=True))
def test_any_text_gives_a_domain_dns_could_hold_or_none(address: str) -> None:
    domain = mail_domain(address)
    if domain is not None:
        labels = domain.split(".")
        assert len(domain) <= 253
        assert len(labels) >= 2
        assert all(1 <= len(label) <= 63 and label.strip("-") == label for label in labels)
        assert domain.isascii()
        assert domain == domain.lower()


def test_domain_checks_are_linear_on_long_input() -> None:
    # A megabyte of dots and labels is refused at once, by its length, never split.
    assert valid_domain("a." * 500_000 + "com") is None
    assert mail_domain("x" * 1_000_000 + "@acme.com") is None


@pytest.mark.parametrize(
    ("address", "website", "expected"),
    [
        ("info@acme.com", "acme.com", (EmailStatus.DELIVERABLE_DOMAIN, True, False, True)),
        ("mike@shop.acme.co.uk", "www.acme.co.uk", (EmailStatus.DELIVERABLE_DOMAIN, False, False, True)),
        ("acme.roofing@gmail.com", "acme.com", (EmailStatus.DELIVERABLE_DOMAIN, False, True, False)),
        ("front-desk@acme.com", "acme.com", (EmailStatus.DELIVERABLE_DOMAIN, True, False, True)),
        ("sales+web@acme.com", "acme.com", (EmailStatus.DELIVERABLE_DOMAIN, True, False, True)),
        ("me@mailinator.com", "acme.com", (EmailStatus.DISPOSABLE, False, False, False)),  # not also free
        ("me@foo.mailinator.com", "acme.com", (EmailStatus.DISPOSABLE, False, False, False)),
        ("bob@acme.wixsite.com", "other.wixsite.com", (EmailStatus.DELIVERABLE_DOMAIN, False, False, False)),
    ],
)
def test_flags_come_from_the_address_and_the_website(
    address: str, website: str, expected: tuple[EmailStatus, bool, bool, bool]
) -> None:
    verdict = judge(address, website, DELIVERABLE)
    assert (verdict.status, verdict.role, verdict.free_mail, verdict.matches_website) == expected


def test_dns_decides_status_and_disposable_needs_no_lookup() -> None:
    assert judge("a@acme.com", "acme.com", NO_MAIL).status is EmailStatus.NO_MAIL_DOMAIN
    assert judge("a@acme.com", "acme.com", None).status is EmailStatus.UNKNOWN  # not answered: no verdict
    assert judge("a@a..com", "acme.com", None).status is EmailStatus.NO_MAIL_DOMAIN  # no domain DNS could hold
    assert needs_lookup("a@mailinator.com") is None
    assert needs_lookup("a@a..com") is None
    assert needs_lookup("a@Acme.com") == "acme.com"


def test_registrable_domain_follows_the_public_suffix_list() -> None:
    assert registrable_domain("www.shop.acme.com") == "acme.com"
    assert registrable_domain("shop.acme.com.br") == "acme.com.br"
    assert registrable_domain("acme.wixsite.com") == "acme.wixsite.com"  # a private suffix: one site each
    assert registrable_domain("com") == "com"


def _v(email: str, status: EmailStatus = EmailStatus.DELIVERABLE_DOMAIN, **flags: bool) -> EmailVerdict:
    return EmailVerdict(
        email, status, flags.get("role", False), flags.get("free_mail", False), flags.get("matches_website", False)
    )


def test_primary_is_a_person_on_the_website_domain_and_always_deliverable() -> None:
    info = _v("info@acme.com", role=True, matches_website=True)
    mike = _v("mike@acme.com", matches_website=True)
    gmail = _v("acme@gmail.com", free_mail=True)
    dead = _v("rosa@acme.com", EmailStatus.NO_MAIL_DOMAIN, matches_website=True)
    assert primary_email([info, gmail, mike, dead]) == mike
    assert primary_email([info, gmail]) == info  # no person there: the website's role inbox
    assert primary_email([gmail, _v("x@partner.com")]) == _v("x@partner.com")  # a company before free mail
    assert primary_email([dead, _v("a@mailinator.com", EmailStatus.DISPOSABLE)]) is None
    assert primary_email([]) is None


def _site(verdicts: list[EmailVerdict]) -> SiteReport:
    primary = primary_email(verdicts)
    return SiteReport(
        site="acme.com",
        url="https://acme.com/",
        status=SiteStatus.OK,
        emails=[v.email for v in verdicts],
        email_verdicts=[v.to_dict() for v in verdicts],
        primary_email=primary.email if primary else None,
    )


def _reasons(site: SiteReport, **wanted: object) -> list[str]:
    spec = parse_job_spec({"query": "roofers", "site": wanted}, 65_536)
    filters = Filters.from_spec(spec.to_dict())
    return site_reasons(Listing(name="Acme", place_id="p1", website="https://acme.com/"), site, filters.site)


def test_the_deliverable_and_free_mail_filters() -> None:
    person = _site([_v("mike@acme.com", matches_website=True)])
    free_only = _site([_v("acme@gmail.com", free_mail=True)])
    dead = _site([_v("info@acme.com", EmailStatus.NO_MAIL_DOMAIN, role=True, matches_website=True)])
    none = _site([])
    assert _reasons(person, email="deliverable", exclude_free_mail=True) == []
    assert _reasons(free_only, email="deliverable") == []
    assert _reasons(free_only, email="deliverable", exclude_free_mail=True) == [
        "no deliverable email address but free mail (gmail.com)"
    ]
    assert _reasons(dead, email="deliverable") == ["no email address at a domain that accepts mail"]
    assert _reasons(none, email="deliverable") == ["no email address at a domain that accepts mail"]
    assert _reasons(free_only, exclude_free_mail=True) == ["its email is free mail (gmail.com)"]
    assert _reasons(none, exclude_free_mail=True) == []  # nothing to exclude
    assert _reasons(person, email="any") == []


def test_the_filters_are_validated_and_round_trip() -> None:
    spec = parse_job_spec({"query": "q", "site": {"email": "deliverable", "exclude_free_mail": True}}, 65_536)
    assert spec.to_dict()["site"] == {"enabled": True, "email": "deliverable", "exclude_free_mail": True}
    with pytest.raises(JobSpecError) as bad:
        parse_job_spec({"query": "q", "site": {"email": "verified", "exclude_free_mail": "yes"}}, 65_536)
    assert bad.value.problems == [
        'site.exclude_free_mail: must be true or false, not string (got "yes")',
        "site.email: must be one of 'any', 'deliverable' (got \"verified\")",
    ]


def test_dns_servers_are_addresses_never_names() -> None:
    assert parse_dns_server("192.0.2.53") == ("192.0.2.53", 53)
    assert parse_dns_server("[2001:db8::53]:5353") == ("2001:db8::53", 5353)
    with pytest.raises(ConfigError) as bad:
        load_settings(environ={"LEADLAWK__EMAILS__DNS_SERVERS": '["dns.google"]'})
    assert "emails.dns_servers.0" in str(bad.value)
    assert "smtp_probe" not in load_settings().emails.model_dump()  # no SMTP probing exists


def test_the_cli_flags_make_the_spec_filters() -> None:
    from leadlawk_daemon.cli import _parser, _site_filters

    args = _parser().parse_args(["submit", "roofers", "--email-deliverable", "--exclude-free-mail"])
    site = _site_filters(args)
    assert site == {"email": "deliverable", "exclude_free_mail": True}
    spec = parse_job_spec({"query": "roofers", "site": site}, 65_536)
    assert (spec.site.email, spec.site.exclude_free_mail) == ("deliverable", True)


def test_the_console_form_makes_the_spec_filters() -> None:
    from leadlawk_daemon.console.forms import spec_from_form

    form = {"query": "roofers", "email_deliverable": "on", "exclude_free_mail": "on"}
    result = spec_from_form(form, {}, max_bytes=65_536, max_area_km2=10_000)
    assert result.spec is not None, result.errors
    assert (result.spec.site.email, result.spec.site.exclude_free_mail) == ("deliverable", True)
