"""Site technology: each chosen system recognised on a page built from the markers its fingerprint
documents (the shipped Wappalyzer data: docs/site-enrichment.md, "Site technology"), what
``handwritten`` and ``other`` mean, the ``built_with`` filter, and the matcher's linear time.

A page is built from a fingerprint, not written by hand: every pattern of the system (its HTML,
script sources, meta tags, headers, cookies and URL) is turned into the shortest text it matches
(:func:`example`), and the page carries them all, as the system's own pages would.
"""

from __future__ import annotations

import html as html_lib
import re
import time
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest

from leadlawk_daemon.jobspec import JobSpecError, SiteSpec, parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.qualify import site_reasons
from leadlawk_daemon.sites.extract import extract_page
from leadlawk_daemon.sites.report import SiteReport, SiteStatus, known_site_tech
from leadlawk_daemon.sites.tech import fingerprint_data, fingerprints
from leadlawk_daemon.sites.tech_patterns import PatternSet, compile_one, parse_pattern
from leadlawk_daemon.store import JobLead, Store
from leadlawk_daemon.store.sites import SITE_EXPORT_COLUMNS
from tests import test_store
from tests.linearity import assert_linear

# The store tests' fixtures (PostgreSQL and SQLite), for the stored and exported column.
db_url, clock, store = test_store.db_url, test_store.clock, test_store.store

YEAR = 2027

# fmt: off
# Fifty-nine systems a small business's site is built, sold, measured or booked with.
CHOSEN = (
    # CMS, blogs, site builders
    "WordPress", "Joomla", "Drupal", "Wix", "Squarespace", "Weebly", "GoDaddy Website Builder", "Jimdo",
    "Webflow", "Ghost", "TYPO3 CMS", "Contao", "Yola", "Blogger", "Hugo", "Craft CMS", "Umbraco", "DNN",
    "Strikingly", "Tilda", "Zyro", "HubSpot CMS Hub", "Concrete CMS", "Gatsby",
    # shops
    "Shopify", "WooCommerce", "Magento", "PrestaShop", "BigCommerce", "OpenCart", "Ecwid", "Shopware",
    "Squarespace Commerce", "GoDaddy Online Store", "Volusion", "Lightspeed eCom", "Gambio",
    # page builders
    "Elementor", "Divi", "Thrive Architect", "SiteOrigin Page Builder", "Visual Composer", "Oxygen",
    # analytics
    "Google Analytics", "Google Tag Manager", "Matomo Analytics", "Hotjar", "Plausible", "Microsoft Clarity",
    "Facebook Pixel", "HubSpot Analytics", "Mixpanel", "Piwik PRO Core",
    # booking
    "Calendly", "Acuity Scheduling", "Bookeo", "Setmore", "OpenTable", "Booksy",
)
# fmt: on
CATEGORIES = {"\\d": "1", "\\w": "a", "\\s": " "}


def example(regex: str) -> str | None:
    """The shortest text ``regex`` matches (one of them), or None for a construct not handled here.
    Built from Python's own parse of the pattern; RE2 then confirms the text matches."""
    try:
        tree = sre_parse.parse(regex)
    except re.error:
        return None
    try:
        text = _walk(tree)
    except ValueError:
        return None
    compiled = compile_one(regex)
    return text if compiled is not None and compiled.search(text) else None


def _walk(items: Any) -> str:
    out: list[str] = []
    for op, arg in items:
        if op is sre_constants.LITERAL:
            out.append(chr(arg))
        elif op is sre_constants.NOT_LITERAL:
            out.append("a" if chr(arg) != "a" else "b")
        elif op is sre_constants.ANY:
            out.append("a")
        elif op is sre_constants.IN:
            out.append(_one_of(arg))
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
            low, _, sub = arg
            out.append(_walk(sub) * max(low, 0))
        elif op is sre_constants.SUBPATTERN:
            out.append(_walk(arg[-1]))
        elif op is sre_constants.ATOMIC_GROUP:
            out.append(_walk(arg))
        elif op is sre_constants.BRANCH:
            out.append(_walk(arg[1][0]))
        elif op is sre_constants.AT:
            continue  # anchors and word boundaries: the page puts each example where they hold
        else:
            raise ValueError(op)
    return "".join(out)


def _one_of(items: Any) -> str:
    negate = any(op is sre_constants.NEGATE for op, _ in items)
    if negate:  # anything not excluded: a letter or a digit not listed
        excluded = {chr(a) for op, a in items if op is sre_constants.LITERAL}
        return next(c for c in "ax1" if c not in excluded)
    op, arg = items[0]
    if op is sre_constants.LITERAL:
        return chr(arg)
    if op is sre_constants.RANGE:
        return chr(arg[0])
    if op is sre_constants.CATEGORY:
        return {"CATEGORY_DIGIT": "1", "CATEGORY_WORD": "a", "CATEGORY_SPACE": " "}.get(str(arg), "a")
    raise ValueError(op)


_SELECTOR = re.compile(r"^([a-z][a-z0-9-]*)?((?:[#.][\w-]+|\[[\w-]+(?:[*^$~|]?=['\"]?[^'\"\]]*['\"]?)?\])*)$")
_PART = re.compile(r"([#.])([\w-]+)|\[([\w-]+)(?:[*^$~|]?=['\"]?([^'\"\]]*)['\"]?)?\]")


def _selectors(dom: Any) -> list[str]:
    """The dom selectors of a fingerprint (a string, a list, or an object keyed by selector)."""
    selectors = list(dom) if isinstance(dom, dict) else _patterns(dom)
    return [s.split(",")[0].strip() for s in selectors]


def element(selector: str) -> str:
    """An element the simple ``selector`` finds (tag, #id, .class, [attr], [attr*=value] …); an
    empty string for a selector with combinators, which a test page does not need."""
    shape = _SELECTOR.match(selector)
    if shape is None:
        return ""
    tag = shape.group(1) or "div"
    classes, attributes = [], {}
    for kind, name, attribute, value in _PART.findall(shape.group(2)):
        if kind == "#":
            attributes["id"] = name
        elif kind == ".":
            classes.append(name)
        else:
            attributes[attribute] = value or "1"
    if classes:
        attributes["class"] = " ".join(classes)
    attrs = "".join(f' {k}="{html_lib.escape(v)}"' for k, v in attributes.items())
    return f"<{tag}{attrs}></{tag}>" if tag not in ("meta", "link", "img", "input") else f"<{tag}{attrs}>"


def _patterns(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def page_of(name: str, technologies: dict[str, dict[str, Any]]) -> tuple[str, str, list[tuple[str, str]]]:
    """The page (HTML, URL, headers) that carries every marker of ``name``'s fingerprint, and of
    the systems it requires (a WordPress plugin's page is a WordPress page)."""
    head: list[str] = []
    body: list[str] = []
    headers: list[tuple[str, str]] = []
    url = "https://business.example/"
    for tech_name in [name, *_patterns(technologies[name].get("requires"))]:
        tech = technologies.get(tech_name, {})
        for raw in _patterns(tech.get("html")):
            found = example(parse_pattern(raw).regex)
            if found is not None:
                body.append(found)
        for raw in _patterns(tech.get("scriptSrc")):
            found = example(parse_pattern(raw).regex)
            if found is not None:
                head.append(f'<script src="{html_lib.escape(found)}"></script>')
        for meta, raw in (tech.get("meta") or {}).items():
            for one in _patterns(raw) or [""]:
                found = example(parse_pattern(one).regex) if parse_pattern(one).regex else "x"
                if found is not None:
                    head.append(f'<meta name="{html_lib.escape(meta)}" content="{html_lib.escape(found or "x")}">')
        for header, raw in (tech.get("headers") or {}).items():
            for one in _patterns(raw) or [""]:
                found = example(parse_pattern(one).regex) if parse_pattern(one).regex else "1"
                if found is not None:
                    headers.append((header, found or "1"))
        for cookie in tech.get("cookies") or {}:
            headers.append(("set-cookie", f"{cookie[:-1] + 'x' if cookie.endswith('*') else cookie}=1; Path=/"))
        body.extend(element(selector) for selector in _selectors(tech.get("dom")))
        for raw in _patterns(tech.get("url")):
            found = example(parse_pattern(raw).regex)
            if found is not None and tech_name == name:
                url = found if found.startswith("http") else f"https://business.example/{found}"
    page = f"<!doctype html><html><head>{''.join(head)}</head><body><p>Open daily.</p>{''.join(body)}</body></html>"
    return page, url, headers


@pytest.fixture(scope="module")
def technologies() -> dict[str, dict[str, Any]]:
    return fingerprint_data()[0]


def test_at_least_forty_of_the_chosen_systems_are_in_the_fingerprints(technologies: dict[str, Any]) -> None:
    missing = [name for name in CHOSEN if name not in technologies]
    assert not missing
    assert len(CHOSEN) >= 40
    assert len(set(CHOSEN)) == len(CHOSEN)


@pytest.mark.parametrize("name", CHOSEN)
def test_each_system_is_recognised_on_a_page_built_from_its_markers(
    name: str, technologies: dict[str, dict[str, Any]]
) -> None:
    page, url, headers = page_of(name, technologies)
    facts = extract_page(page, url, newest_year=YEAR, headers=headers)
    tech = fingerprints().techs[name]
    assert tech.slug in facts.tech, (page, url, headers)
    if tech.kind == "cms":
        assert facts.cms == {"godaddy-website-builder": "godaddy"}.get(tech.slug, tech.slug)


def test_handwritten_only_without_any_fingerprint_and_without_a_generator() -> None:
    plain = "<html><head><title>Bakery</title></head><body><h1>Fresh bread</h1><p>Call us.</p></body></html>"
    facts = extract_page(plain, "https://bakery.example/", newest_year=YEAR)
    assert (facts.cms, facts.tech) == ("handwritten", [])
    unknown = plain.replace("<title>", '<meta name="generator" content="HomeMade Pages 2.1"><title>')
    facts = extract_page(unknown, "https://bakery.example/", newest_year=YEAR)
    assert (facts.cms, facts.tech, facts.generator) == ("other", [], "HomeMade Pages 2.1")
    # Analytics alone does not make a site: it stays hand-built, with its analytics listed.
    measured = plain.replace(
        "</head>", '<script src="https://www.googletagmanager.com/gtag/js?id=G-1"></script></head>'
    )
    facts = extract_page(measured, "https://bakery.example/", newest_year=YEAR)
    assert facts.cms == "handwritten"
    assert "google-analytics" in facts.tech


def test_a_shop_on_a_cms_reports_the_cms_and_both_in_its_tech() -> None:
    page = (
        '<html><head><meta name="generator" content="WordPress 6.4"><meta name="generator" content="WooCommerce 8.1">'
        '<script src="/wp-content/plugins/woocommerce/assets/js/woocommerce.min.js?ver=8.1"></script>'
        '<script src="https://assets.calendly.com/assets/external/widget.js"></script></head><body></body></html>'
    )
    facts = extract_page(page, "https://shop.example/", newest_year=YEAR)
    assert facts.cms == "wordpress"
    assert {"wordpress", "woocommerce", "calendly"} <= set(facts.tech)


def test_built_with_accepts_any_recognised_technology() -> None:
    spec = parse_job_spec({"query": "x", "site": {"built_with": ["woocommerce", "calendly"]}}, 65_536)
    assert spec.site is not None
    wanted: SiteSpec = spec.site
    lead = Listing(name="Shop", place_id="ChIJshop", website="https://shop.example/")
    on_woo = SiteReport(
        site="shop.example",
        url="https://shop.example/",
        status=SiteStatus.OK,
        cms="wordpress",
        tech=["wordpress", "woocommerce"],
    )
    assert site_reasons(lead, on_woo, wanted) == []
    plain = SiteReport(site="shop.example", url="https://shop.example/", status=SiteStatus.OK, cms="handwritten")
    assert site_reasons(lead, plain, wanted) == ["site built with handwritten, wanted woocommerce or calendly"]
    assert {"wordpress", "woocommerce", "calendly", "google-analytics", "handwritten", "other"} <= known_site_tech()
    with pytest.raises(JobSpecError, match=r"site\.built_with\[0\]: must be a technology the fingerprints know"):
        parse_job_spec({"query": "x", "site": {"built_with": ["wordpres"]}}, 65_536)


def test_a_pattern_that_needs_backtracking_is_refused_not_run() -> None:
    patterns = PatternSet([("backref", r"(a+)\1"), ("lookahead", r"foo(?=bar)"), ("fine", r"wp-content")])
    assert {key for key, _ in patterns.refused} == {"backref", "lookahead"}
    assert patterns.matches("x /WP-CONTENT/ y") == {"fine"}  # case-insensitive, as Wappalyzer's
    assert all(compile_one(p) is not None for p in (r"(?:a+)+b", r"<link[^>]+s\d+\.wp\.com"))  # RE2: linear


def test_every_shipped_pattern_compiles_and_the_set_is_large(technologies: dict[str, Any]) -> None:
    everything = fingerprints()
    assert len(everything.techs) >= 900
    assert len(everything.refused) <= len(everything.techs) // 20, everything.refused[:10]


def _hostile(n: int) -> str:
    # Runs that defeat backtracking engines on the fingerprints' shapes: "<link" with no ">",
    # "<script" runs, repeated prefixes of the builders' asset hosts.
    return "<html><head>" + ("<link rel='stylesheet' " + "a" * 40 + " s1.wp" * 3) * n + "</head></html>"


@pytest.mark.linearity
def test_matching_the_fingerprints_is_linear_in_the_page() -> None:
    everything = fingerprints()
    assert_linear(lambda text: everything.html.matches(text), _hostile, size=200, max_size=6_000, repeats=2)


def test_a_hostile_head_of_the_largest_size_read_is_matched_in_well_under_a_second() -> None:
    everything = fingerprints()
    text = _hostile(10_000)[:400_000]
    started = time.process_time()
    everything.html.matches(text)
    assert time.process_time() - started < 0.5


async def test_site_tech_is_stored_and_exported_with_each_lead(store: Store) -> None:
    await store.upsert_leads([Listing(name="Shop", place_id="ChIJshop", website="http://shop.example/")])
    await store.create_job("j1", {"query": "bakeries"})
    await store.upsert_job_leads("j1", [JobLead("ChIJshop", 0, True, [])])
    report = SiteReport(
        site="shop.example",
        url="http://shop.example/",
        status=SiteStatus.OK,
        cms="wordpress",
        tech=["wordpress", "woocommerce", "google-analytics", "calendly"],
    )
    assert await store.upsert_sites([("ChIJshop", report)]) == 1
    (row,) = await store.lead_rows_for_export("j1")
    assert row["site_cms"] == "wordpress"
    assert row["site_tech"] == "wordpress; woocommerce; google-analytics; calendly"
    assert "site_tech" in SITE_EXPORT_COLUMNS
