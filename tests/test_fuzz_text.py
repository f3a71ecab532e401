"""Every reader of outside text that is not a site's page: no crash on any input, and time linear in
the input's size on the shapes that make a backtracking pattern or a rescanning loop blow up.

Covered: the log redactor and ``config show``'s masking (one function), spreadsheet neutralisation,
the job-spec parser, the console's form parser, the Maps parsers (feed, place panel, place state,
search payload, the sniffer) and PageSpeed answers. Each shape is a long run of what a repeat and
its neighbour both accept, or of a construct left open; ``assert_linear`` doubles it and compares.
"""

from __future__ import annotations

import contextlib
import gc
import json
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadlawk_daemon.console.forms import field_of, spec_from_form
from leadlawk_daemon.jobspec import JobSpecError, parse_job_spec
from leadlawk_daemon.logs import redact
from leadlawk_daemon.maps.parser import parse_feed, parse_place_panel, parse_place_state, parse_search_json
from leadlawk_daemon.pagespeed.result import MalformedResponseError, lighthouse_error_in, parse_response
from leadlawk_daemon.settings import load_settings, masked
from leadlawk_daemon.store.export import FORMULA_PREFIXES, spreadsheet_safe
from tests.linearity import FUZZ_EXAMPLES, assert_linear
from tests.maps_samples import Biz, panel
from tests.test_parser_fuzz import check_all, edits, json_values, mutate

FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPEC_BYTES = 64 * 1024 * 1024
# Each shape's smallest size: large enough that a quadratic term outweighs a parser's fixed costs.
START = 4_000
TESTED_AT = datetime(2026, 12, 7, tzinfo=UTC)
# The corpus pages small enough to parse dozens of times a test (the largest is measured elsewhere).
CORPUS_PAGES = (
    "compact-business-listing.html",
    "standard-businesses_website-nowebsite-website.html",
    "place-state-kipriakon.json",
    "search-response-coffee.json",
)
# Text a URL, a query string or a mapping may hold around a credential.
URLISH = st.lists(st.sampled_from([*"aZ09:/?#@&=;., \"'\n%+-_\\", "://", "key=", "token"]), max_size=40).map("".join)
SECRET_CHARS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#@\"'<>\\&;"),
    min_size=1,
    max_size=30,
)


def _spec(raw: str) -> object:
    with contextlib.suppress(JobSpecError):
        return parse_job_spec(raw, SPEC_BYTES)
    return None


def _form(fields: dict[str, str]) -> object:
    return spec_from_form(fields, {}, max_bytes=SPEC_BYTES, max_area_km2=10_000.0)


def _pagespeed(body: Any) -> object:
    with contextlib.suppress(MalformedResponseError):
        return parse_response(body, place_id="p", strategy="mobile", url="https://x.example/", tested_at=TESTED_AT)
    return None


def _without_gc(parse: Callable[[str], object]) -> Callable[[str], object]:
    """``parse`` with the cyclic garbage collector paused. A tree as deep as its input, built in this
    test process's large heap, sets off a full collection on whichever run first crosses the
    threshold: a step in time that is the process's, not the parser's shape."""

    def paused(text: str) -> object:
        gc.disable()
        try:
            return parse(text)
        finally:
            gc.enable()

    return paused


def _maps(text: str) -> object:
    check_all(text)
    return None


# (what, parse, make(n)): each a shape that a quadratic or backtracking reader pays for per character.
SHAPES: list[tuple[str, Callable[[Any], object], Callable[[int], Any]]] = [
    # A scheme-looking word at every "." once made every position rescan the rest of the text.
    ("redact: dotted words", redact, lambda n: "a." * n),
    ("redact: colons", redact, lambda n: "a:" * n),
    ("redact: bare scheme separators", redact, lambda n: "://" * n),
    ("redact: open userinfo", redact, lambda n: "x://" + "a:" * n),
    ("redact: credential names", redact, lambda n: " key password" * n),
    ("redact: an unclosed quoted value", redact, lambda n: "token='" + "a" * n),
    ("redact: an unclosed JSON value", redact, lambda n: '"token": "' + "\\a" * n),
    ("redact: header names", redact, lambda n: " set-cookie Authorization Bearer" * n),
    ("spreadsheet: leading blanks", spreadsheet_safe, lambda n: " \t\u3000\x00" * n + "x"),
    ("job spec: a rejected value to redact", _spec, lambda n: json.dumps({"query": "q", "limit": "a." * n})),
    ("form: a long list of numbers", _form, lambda n: {"area_kind": "bbox", "bbox": "1," * n, "query": "q"}),
    ("form: a problem to place", field_of, lambda n: "query" + ":" + " " * n + "x"),
    # html.parser rescanned the rest of the page from every "<" of a construct left open.
    ("maps: open start tags", _maps, lambda n: "<a" * n),
    ("maps: open comments", _maps, lambda n: "<!-- >" * n),
    ("maps: open declarations", _maps, lambda n: "<![CDATA[ >" * n),
    ("maps: stray end tags", _without_gc(parse_feed), lambda n: "<div>" * n + "</b>" * n),
    # A count label, then its "(N)", with a run of spaces the separators and "\s" both take.
    (
        "maps: spaces in a review count",
        parse_place_panel,
        lambda n: panel(Biz("Spaced", "ChIJspaced00000", reviews="1" + " " * n + "!")),
    ),
    ("maps: a website on google.google.google…", parse_place_panel, lambda n: panel(
        Biz("Host", "ChIJhost0000000"), website_href="https://" + "google." * n + "-/")),
    ("maps: repeated state assignments", parse_place_state, lambda n: 'APP_INITIALIZATION_STATE="' * n),
    ("maps: a state of open arrays", parse_place_state, lambda n: "APP_INITIALIZATION_STATE=" + "[" * n),
    ("maps: a search payload of many results", parse_search_json, lambda n: json.dumps([["q", [None] + [[]] * n]])),
    ("pagespeed: an error message of codes", lighthouse_error_in, lambda n: "A" + "_A" * n + "a"),
    ("pagespeed: many warnings", _pagespeed, lambda n: {"lighthouseResult": {"categories": {}, "runWarnings": [
        "w" * 20] * n, "runtimeError": {"code": "X_Y", "message": "NO_FCP " * n}}}),
]


@pytest.mark.linearity
@pytest.mark.parametrize(("what", "parse", "make"), SHAPES, ids=[shape[0] for shape in SHAPES])
def test_each_adversarial_shape_takes_linear_time(
    what: str, parse: Callable[[Any], object], make: Callable[[int], Any]
) -> None:
    # Once at the larger size first: the first run to need that much memory pays the page faults
    # of growing the heap, a cost of the process and not of the parser's shape.
    parse(make(2 * START))
    found = assert_linear(parse, make, size=START, max_size=400_000, floor_s=0.01)
    print(f"{what}: {found.size} -> {found.small_s * 1000:.1f} ms, x2 -> {found.large_s * 1000:.1f} ms")


@FUZZ
@given(URLISH, SECRET_CHARS, URLISH)
def test_no_url_password_survives_redaction(before: str, password: str, after: str) -> None:
    # "P" is in neither the text around nor a mask: "Pw…" shown is the password shown.
    shown = redact(f"{before} postgresql://app:Pw{password}@db.internal/leads {after}")
    assert f"Pw{password}" not in shown
    assert "***" in shown


@FUZZ
@given(URLISH, st.sampled_from(["password", "token", "key", "secret", "api_key", "Access_Token", "SAPISID"]),
       SECRET_CHARS, URLISH)
def test_no_credential_parameter_survives_redaction(before: str, name: str, value: str, after: str) -> None:
    shown = redact(f"{before} https://h.example/x?a=1&{name}=Pw{value} {after}")
    assert f"Pw{value}" not in shown
    assert "***" in shown


@FUZZ
@given(st.text())
def test_redaction_never_fails_on_any_text(text: str) -> None:
    assert isinstance(redact(text), str)


@settings(max_examples=max(10, FUZZ_EXAMPLES // 4), deadline=None)
@given(SECRET_CHARS)
def test_config_show_never_shows_a_proxy_password(password: str) -> None:
    config = load_settings(environ={"LEADLAWK__SITES__PROXY": f"http://proxyuser:Pw{password}@proxy.internal:3128"})
    assert masked(config)["sites"]["proxy"] == "http://proxyuser:***@proxy.internal:3128"


def _leading(value: str) -> str:
    """The leading blanks (whitespace, control and format characters) and the first character past them."""
    for i, char in enumerate(value):
        if not (char.isspace() or unicodedata.category(char) in ("Cc", "Cf")):
            return value[: i + 1]
    return value


@FUZZ
@given(st.text(st.sampled_from([*FORMULA_PREFIXES, " ", "\u3000", "\x00", "\u200b", "a", "'", "1"])) | st.text())
def test_a_spreadsheet_cell_never_starts_a_formula(value: str) -> None:
    cell = spreadsheet_safe(value)
    formula = any(char in FORMULA_PREFIXES for char in _leading(value))
    assert cell == ("'" + value if formula else value)


@FUZZ
@given(st.text() | json_values.map(json.dumps) | st.dictionaries(
    st.sampled_from(["query", "location", "limit", "area", "coverage", "site", "pagespeed", "id"]), json_values
).map(json.dumps))
def test_the_job_spec_parser_only_ever_refuses(text: str) -> None:
    with contextlib.suppress(JobSpecError):
        parse_job_spec(text, SPEC_BYTES)
    with contextlib.suppress(JobSpecError):
        parse_job_spec(text.encode("utf-8", "surrogatepass"), SPEC_BYTES)


FORM_FIELDS = st.sampled_from([
    "query", "location", "website", "coverage", "limit", "min_reviews", "priority", "min_rating",
    "max_runtime_s", "area_kind", "bbox", "center", "radius_km", "pagespeed", "max_score",
])


@FUZZ
@given(st.dictionaries(FORM_FIELDS, st.text(max_size=80) | st.sampled_from(["bbox", "near", "area", "on", "1,2"])),
       st.text())
def test_the_console_form_parser_never_fails(form: dict[str, str], problem: str) -> None:
    _form(form)
    field_of(problem)


# Fewer examples: each one parses a real page (tens to hundreds of KB) five ways.
@settings(FUZZ, max_examples=max(10, FUZZ_EXAMPLES // 3))
@given(st.data(), edits)
def test_mutated_corpus_pages_never_crash_the_maps_parsers(
    corpus: Path, data: st.DataObject, changes: list[tuple[float, int, str]]
) -> None:
    page = data.draw(st.sampled_from(CORPUS_PAGES))
    # check_all: the feed, both panel readings, the state, the search payload and the sniffer.
    check_all(mutate((corpus / page).read_text(encoding="utf-8"), changes))


@FUZZ
@given(json_values | st.dictionaries(st.sampled_from(["lighthouseResult", "loadingExperience"]), st.dictionaries(
    st.sampled_from(["categories", "audits", "runtimeError", "runWarnings", "finalUrl", "metrics"]), json_values
)), st.text())
def test_pagespeed_answers_only_ever_refuse(body: Any, message: str) -> None:
    _pagespeed(body)
    lighthouse_error_in(message)
