"""Site extraction offline: business pages written in the shapes real ones have (tests/data/sites),
each disguise of an email, each junk rule by name, robots.txt rules, charsets, and bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadlawk_daemon.cli import main
from leadlawk_daemon.sites.client import report_from_html
from leadlawk_daemon.sites.decode import decode_body
from leadlawk_daemon.sites.emails import EmailSource, decode_cfemail, emails_in_text, encode_cfemail, junk_rule
from leadlawk_daemon.sites.extract import extract_page
from leadlawk_daemon.sites.robots import parse_robots
from tests.linearity import examples

DATA = Path(__file__).parent / "data" / "sites"
YEAR = 2027


def _page(name: str, url: str) -> str:
    return decode_body((DATA / name).read_bytes(), None)


def test_wordpress_plumber_page() -> None:
    facts = extract_page(_page("plumber-wordpress.html", ""), "https://riverbendplumbing.test/", newest_year=YEAR)
    # mailto, JSON-LD and an entity-encoded address in a footer widget (WordPress sidebars are "widget"s)
    assert facts.emails.kept == [
        "office@riverbendplumbing.test", "service@riverbendplumbing.test", "billing@riverbendplumbing.test",
    ]
    assert facts.emails.rejected == {}
    assert facts.phones == ["+17125550148"]
    assert facts.socials == {
        "facebook": "https://facebook.com/RiverbendPlumbingCB",
        "instagram": "https://instagram.com/riverbend_plumbing",
        "youtube": "https://youtube.com/channel/UC123abc",
    }  # the share button is not a profile
    assert facts.cms == "wordpress"
    assert facts.generator == "WordPress 6.2.2"
    assert facts.mobile_viewport is True
    assert facts.copyright_year == 2017  # "2009–2017": the latest year
    assert facts.contact_form is False  # a search box is not a contact form
    assert facts.parked is None  # "coming soon" in a real site's news is not a placeholder
    assert facts.candidate_pages == [
        "https://riverbendplumbing.test/contact-us/", "https://riverbendplumbing.test/about-us/",
    ]  # contact first; the PDF is not a page


def test_wix_salon_page() -> None:
    facts = extract_page(_page("salon-wix.html", ""), "https://www.velvetandvine.test/", newest_year=YEAR)
    assert facts.emails.kept == ["appointments@velvetandvine.test"]  # behind Cloudflare's email protection
    assert facts.emails.rejected == {
        "8a2f0c4e6b1d4e7fa3c95b0d2e4f6a81@sentry-next.wixpress.com": "platform_internal",
        "help@chatly-widget.test": "third_party_widget",
        "agent@chatly-widget.test": "third_party_widget",
    }
    assert facts.cms == "wix"
    assert facts.contact_form is True
    assert facts.copyright_year == 2023
    assert facts.socials == {
        "instagram": "https://instagram.com/velvetandvine.studio",
        "tiktok": "https://tiktok.com/@velvetandvinestudio",
    }
    assert facts.candidate_pages == ["https://www.velvetandvine.test/contact"]


def test_handwritten_bakery_page_in_windows_1252() -> None:
    html = decode_body((DATA / "bakery-handwritten.html").read_bytes(), None)
    assert "Café" in html  # the meta charset read, the é decoded
    facts = extract_page(html, "http://www.mainstreetbakery.test/index.html", newest_year=YEAR)
    assert facts.emails.kept == [
        "orders@mainstreetbakery.test", "catering@mainstreetbakery.test", "rene.dupre@mailbox.test",
    ]
    assert facts.emails.rejected == {"your@email.com": "placeholder"}
    assert (facts.cms, facts.tech) == ("handwritten", [])  # no fingerprint, no generator
    assert facts.generator is None
    assert facts.mobile_viewport is False
    assert facts.copyright_year == 2008
    assert facts.phones == ["4025550173"]
    assert facts.candidate_pages == [
        "http://www.mainstreetbakery.test/contact.html",
        "http://www.mainstreetbakery.test/impressum.html",
        "http://www.mainstreetbakery.test/aboutus.html",
    ]


@pytest.mark.parametrize(("name", "verdict"), [("parked.html", "parked"), ("coming-soon.html", "coming soon")])
def test_placeholder_pages(name: str, verdict: str) -> None:
    facts = extract_page(_page(name, ""), "https://placeholder.test/", newest_year=YEAR)
    assert facts.parked == verdict
    assert facts.contact_form is False  # a newsletter box asks one address: not a contact form


def test_saved_page_report_names_its_own_site() -> None:
    report = report_from_html(_page("salon-wix.html", ""), "file://salon-wix.html", newest_year=YEAR)
    assert report.emails == ["appointments@velvetandvine.test"]
    assert report.rejected_emails["help@chatly-widget.test"] == "third_party_widget"
    assert report.cms == "wix"
    assert report.https is None
    assert report.status.value == "ok"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("write to info@acme-roofing.com today", ["info@acme-roofing.com"]),
        ("jane [at] acme [dot] co [dot] uk", ["jane@acme.co.uk"]),
        ("jane(at)acme(dot)com", ["jane@acme.com"]),
        ("jane {at} acme {dot} com", ["jane@acme.com"]),
        ("meet us at the shop. Dot your i's", []),  # a bare "at" / "dot" is English
        ("(info@acme.com).", ["info@acme.com"]),
        ("/img/logo@2x.png", ["logo@2x.png"]),
        ("ask o'brien@acme.com or 'sales@acme.com'", ["o'brien@acme.com", "'sales@acme.com"]),  # normalised later
        ("jane \u00a0 [at] \t acme\n(dot)  com", ["jane@acme.com"]),  # any whitespace around a disguise
        ("a@b.com.c@d.com, x..y@acme.com, .z@acme.com", ["a@b.com"]),  # as the old pattern: no overlap, no ".."
    ],
)
def test_emails_in_text(text: str, found: list[str]) -> None:
    assert emails_in_text(text) == found


def test_cfemail_round_trip_and_garbage() -> None:
    assert decode_cfemail(encode_cfemail("owner@shop.test", 0x3C)) == "owner@shop.test"
    for junk in ("", "zz", "abc", "ff" * 600):
        assert decode_cfemail(junk) is None


@pytest.mark.parametrize(
    ("email", "source", "rule"),
    [
        ("banner@2x.jpg", EmailSource.TEXT, "image_filename"),
        ("you@example.com", EmailSource.TEXT, "example_domain"),
        ("sales@mail.example.org", EmailSource.MAILTO, "example_domain"),
        ("name@domain.com", EmailSource.TEXT, "placeholder"),
        ("0123456789abcdef0123456789abcdef@o1.ingest.sentry.io", EmailSource.SCRIPT, "platform_internal"),
        ("support@widgetvendor.test", EmailSource.SCRIPT, "third_party_widget"),
        ("support@widgetvendor.test", EmailSource.TEXT, None),  # shown to visitors: theirs to use
        ("office@shop.test", EmailSource.SCRIPT, None),  # the site's own domain, even in a script
        ("owner.shop@gmail.com", EmailSource.MAILTO, None),
    ],
)
def test_junk_rules_are_named(email: str, source: EmailSource, rule: str | None) -> None:
    got = junk_rule(email, source, "shop.test")
    assert (got.value if got is not None else None) == rule


def test_robots_longest_match_and_our_group() -> None:
    text = "User-agent: *\nDisallow: /\nAllow: /contact\n\nUser-agent: OtherBot\nDisallow: /contact\n"
    rules = parse_robots(text, "LeadLawkBot")
    assert rules.allows("https://a.test/contact-us/")
    assert not rules.allows("https://a.test/about")
    ours = parse_robots(text + "\nUser-agent: LeadLawkBot\nDisallow: /private*.html$\n", "LeadLawkBot")
    assert ours.allows("https://a.test/about")  # our own group replaces the * group
    assert not ours.allows("https://a.test/private-2.html")
    assert ours.allows("https://a.test/private-2.html?x")
    assert parse_robots("garbage\x00\nDisallow: /\n", "LeadLawkBot").allows("https://a.test/")


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        ("naïve".encode(), "text/html; charset=utf-8", "naïve"),
        ("naïve".encode("cp1252"), "text/html; charset=ISO-8859-1", "naïve"),
        ("naïve".encode("cp1252"), None, "naïve"),  # not UTF-8: windows-1252, as browsers do
        (b'<meta charset="shift_jis">' + "日本".encode("shift_jis"), None, '<meta charset="shift_jis">日本'),
        (b"\xef\xbb\xbfbom", "text/html; charset=bogus-charset", "bom"),
    ],
)
def test_charset_decoding(body: bytes, content_type: str | None, text: str) -> None:
    assert decode_body(body, content_type) == text


@settings(max_examples=examples(150), deadline=None)
@given(st.text(max_size=400), st.sampled_from(["https://a.test/", "file://x", "http://[::1/", ""]))
def test_bad_markup_never_raises(markup: str, url: str) -> None:
    html = f"<html><body><a href='{markup}'>{markup}</a><form>{markup}<textarea></form>{markup}</body>"
    facts = extract_page(html, url, newest_year=YEAR)
    assert isinstance(facts.emails.kept, list)
    extract_page(markup, url, newest_year=YEAR)


def test_site_command_prints_one_object_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(DATA / "missing.html")
    status = main(["site", str(DATA / "plumber-wordpress.html"), missing])
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1  # one target could not be read
    assert lines[0]["cms"] == "wordpress"
    assert lines[0]["copyright_year"] == 2017
    assert lines[0]["status"] == "ok"
    assert set(lines[0]) == {"site", "emails", "phones", "socials", "contact_form", "https", "mobile_viewport",
                             "cms", "tech", "copyright_year", "status", "reason"}
    assert lines[1]["site"] == missing
    assert "cannot read" in lines[1]["error"]
