"""A site's technology as the field identifies it: the Wappalyzer fingerprints, matched statically.

``fingerprints/technologies.json`` is the Wappalyzer data (MIT, ``scripts/refresh-fingerprints``)
for the kinds a lead's report names: ``cms`` (CMS, blogs, static site generators), ``builder``
(page builders), ``shop``, ``analytics`` (and tag managers) and ``booking`` (appointments,
reservations, tickets). ``fingerprints/local.json`` adds, in the same format, the markers the
replica and the old hand-written list knew that the data lacks in static form (Squarespace's
asset hosts, say: Wappalyzer finds it from a JavaScript global, which a static read never sees).

What is read, all bounded: the first :data:`HTML_HEAD` characters of the HTML, the script
sources, the meta tags, the response headers and cookie names, the page URL, and CSS selectors
over the parsed tree (``dom``). Not read: ``js`` (globals of a running page), ``xhr``, ``dns``,
``robots``, ``certIssuer``. Every regex runs on RE2 (:mod:`.tech_patterns`): linear time whatever
the page. A technology counts when its matches add up to :data:`MIN_CONFIDENCE` (each pattern
carries its confidence, 100 unless the fingerprint says less); ``implies`` adds, ``requires``
and ``excludes`` remove, as Wappalyzer's own driver does.

Pure and synchronous: it runs in the extraction worker (``extract_pool.py``), under its budget.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2
from selectolax.lexbor import LexborHTMLParser

from leadlawk_daemon.sites.report import tech_slug as slug
from leadlawk_daemon.sites.tech_patterns import LazyPattern, PatternSet, parse_pattern, vet

__all__ = [
    "HTML_HEAD",
    "KINDS",
    "MIN_CONFIDENCE",
    "Fingerprints",
    "PageSignals",
    "Tech",
    "cms_of",
    "fingerprint_data",
    "fingerprints",
    "header_names",
    "slug",
]

DATA = Path(__file__).with_name("fingerprints")
KINDS = ("cms", "builder", "shop", "analytics", "booking")
# Where a site's builder shows: the head and the first assets, as the old list read it. A 2 MB
# page's tail is its content, not its platform.
HTML_HEAD = 400_000
MIN_CONFIDENCE = 50
# Bounds on what one page hands the matcher (a page of 20,000 scripts is a trap, not a site).
_MAX_SCRIPTS = 200
_MAX_VALUE = 2_000
_DOM_NODES = 5  # attribute patterns are tried on the first few nodes a selector finds
# Older reports and job specs name these builders by a shorter name; site_cms keeps it.
LEGACY_NAMES = {"godaddy-website-builder": "godaddy"}
# The kind that decides site_cms when a page shows several: a CMS over the shop running on it.
_CMS_ORDER = ("cms", "builder", "shop")


@dataclass(frozen=True, slots=True)
class Tech:
    name: str  # Wappalyzer's name: "Google Analytics"
    slug: str  # "google-analytics"
    kind: str  # one of KINDS


@dataclass(slots=True)
class PageSignals:
    """What one fetched page shows of its making (each bounded by :meth:`Fingerprints.detect`)."""

    html: str = ""
    url: str = ""
    script_srcs: list[str] = field(default_factory=list)
    metas: dict[str, list[str]] = field(default_factory=dict)  # lower-case name or property → contents
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-case name → values
    cookies: set[str] = field(default_factory=set)  # names, lower case
    dom: dict[str, int] = field(default_factory=dict)  # technology → confidence, from the tree


def _patterns(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _names(value: Any) -> list[str]:
    return [v.split("\\;", 1)[0] for v in _patterns(value)]


class _Named:
    """Patterns on named values (meta tags, headers, cookies): name → (technology, regex or None)."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[tuple[str, Any, int]]] = {}
        self.refused: list[tuple[str, str]] = []

    def add(self, tech: str, name: str, raw: Any) -> None:
        for one in _patterns(raw) or [""]:
            pattern = parse_pattern(one)
            if pattern.regex and not vet(pattern.regex):
                self.refused.append((tech, pattern.regex))
                continue
            lazy = LazyPattern(pattern.regex) if pattern.regex else None
            self.by_name.setdefault(name.lower(), []).append((tech, lazy, pattern.confidence))

    def hits(self, values: Mapping[str, Iterable[str]]) -> Iterable[tuple[str, int]]:
        for name, entries in self.by_name.items():
            found = values.get(name)
            if found is None:
                continue
            found = [v[:_MAX_VALUE] for v in found]
            for tech, compiled, confidence in entries:
                if compiled is None or any(compiled.search(v) for v in found):
                    yield tech, confidence


_NAMES = re.compile(r"[\w-]{4,}")


def _needle(selector: str) -> str | None:
    """The longest name in a selector that its node's markup must spell out (a class, an id, an
    attribute's quoted value); None when a selector has no such name or is a list (a, b)."""
    if "," in selector:
        return None
    names = [n for n in _NAMES.findall(selector.split("[", 1)[-1] if "=" in selector else selector)]
    quoted = re.findall(r"=['\"]([^'\"]{4,})['\"]", selector)
    candidates = [*quoted, *(n for n in names if not n.startswith("-"))]
    return max(candidates, key=len) if candidates else None


class Fingerprints:
    """The fingerprints compiled once per process (:func:`fingerprints`)."""

    def __init__(self, technologies: Mapping[str, Mapping[str, Any]], kinds: Mapping[int, str]) -> None:
        self.techs: dict[str, Tech] = {}
        html: list[tuple[tuple[str, int], str]] = []
        scripts: list[tuple[tuple[str, int], str]] = []
        urls: list[tuple[tuple[str, int], str]] = []
        self.metas, self.headers, self.cookies = _Named(), _Named(), _Named()
        self.cookie_prefixes: list[tuple[str, str]] = []
        self.dom: list[tuple[str, str, Any, int]] = []  # technology, selector, attribute check, confidence
        self.implies: dict[str, list[str]] = {}
        self.requires: dict[str, list[str]] = {}
        self.excludes: dict[str, list[str]] = {}
        for name, tech in technologies.items():
            tech_kinds = [kinds[c] for c in tech.get("cats", ()) if c in kinds]
            if not tech_kinds:
                continue
            self.techs[name] = Tech(name, slug(name), next(k for k in KINDS if k in tech_kinds))
            for field_name, into in (("html", html), ("scriptSrc", scripts), ("url", urls)):
                for raw in _patterns(tech.get(field_name)):
                    pattern = parse_pattern(raw)
                    into.append(((name, pattern.confidence), pattern.regex))
            for meta, raw in (tech.get("meta") or {}).items():
                self.metas.add(name, meta, raw)
            for header, raw in (tech.get("headers") or {}).items():
                self.headers.add(name, header, raw)
            for cookie, raw in (tech.get("cookies") or {}).items():
                if cookie.endswith("*"):
                    self.cookie_prefixes.append((name, cookie[:-1].lower()))
                else:
                    self.cookies.add(name, cookie, raw)
            self._add_dom(name, tech.get("dom"))
            for relation, into_map in (
                ("implies", self.implies),
                ("requires", self.requires),
                ("excludes", self.excludes),
            ):
                if relation in tech:
                    into_map[name] = _names(tech[relation])
        self.html = PatternSet(html)
        needles = [(i, _needle(selector)) for i, (_, selector, _, _) in enumerate(self.dom)]
        self._dom_needles = PatternSet((i, re2.escape(n)) for i, n in needles if n)
        self._dom_needed = {i for i, n in needles if n}
        self.scripts = PatternSet(scripts)
        self.urls = PatternSet(urls)
        self.refused = [
            *((key[0], regex) for key, regex in [*self.html.refused, *self.scripts.refused, *self.urls.refused]),
            *self.metas.refused,
            *self.headers.refused,
            *self.cookies.refused,
        ]
        self.by_slug = {tech.slug: tech for tech in self.techs.values()}

    def _add_dom(self, name: str, dom: Any) -> None:
        if isinstance(dom, dict):
            for selector, check in dom.items():
                attributes = check.get("attributes") if isinstance(check, dict) else None
                if isinstance(attributes, dict) and attributes:
                    attribute, raw = next(iter(attributes.items()))
                    pattern = parse_pattern(raw if isinstance(raw, str) else "")
                    if pattern.regex and not vet(pattern.regex):
                        continue
                    lazy = LazyPattern(pattern.regex) if pattern.regex else None
                    self.dom.append((name, selector, (attribute, lazy), pattern.confidence))
                elif isinstance(check, dict) and ("exists" in check or not check):
                    self.dom.append((name, selector, None, parse_pattern(str(check.get("exists", ""))).confidence))
        else:
            for selector in _patterns(dom):
                self.dom.append((name, selector, None, 100))

    def dom_hits(self, tree: LexborHTMLParser, html: str) -> dict[str, int]:
        """Technologies whose ``dom`` selectors find a node in the parsed page (Lexbor's CSS
        engine; a selector it cannot parse finds nothing). A selector is walked over the tree only
        when its longest name (a class, an id, a quoted attribute value) is in ``html``, the text
        the tree was parsed from: one RE2 pass finds those, instead of one tree walk per selector."""
        found: dict[str, int] = {}
        present = self._dom_needles.matches(html)
        for index, (tech, selector, check, confidence) in enumerate(self.dom):
            if index in self._dom_needed and index not in present:
                continue
            try:
                nodes = tree.css(selector) if check is not None else [tree.css_first(selector)]
            except Exception:  # an outside author's selector Lexbor rejects
                continue
            nodes = [n for n in nodes[:_DOM_NODES] if n is not None]
            if not nodes:
                continue
            if check is not None:
                attribute, compiled = check
                values = [n.attributes.get(attribute) for n in nodes]
                texts = [v[:_MAX_VALUE] for v in values if isinstance(v, str)]
                if not texts or (compiled is not None and not any(compiled.search(v) for v in texts)):
                    continue
            found[tech] = min(100, found.get(tech, 0) + confidence)
        return found

    def detect(self, page: PageSignals) -> list[Tech]:
        """The technologies ``page`` shows at :data:`MIN_CONFIDENCE` or more, by kind then name."""
        score: dict[str, int] = dict(page.dom)

        def hit(tech: str, confidence: int) -> None:
            score[tech] = min(100, score.get(tech, 0) + confidence)

        for tech, confidence in self.html.matches(page.html[:HTML_HEAD]):
            hit(tech, confidence)
        for src in page.script_srcs[:_MAX_SCRIPTS]:
            for tech, confidence in self.scripts.matches(src[:_MAX_VALUE]):
                hit(tech, confidence)
        for tech, confidence in self.urls.matches(page.url[:_MAX_VALUE]):
            hit(tech, confidence)
        for named, values in (
            (self.metas, page.metas),
            (self.headers, page.headers),
            (self.cookies, {name: [""] for name in page.cookies}),
        ):
            for tech, confidence in named.hits(values):
                hit(tech, confidence)
        for tech, prefix in self.cookie_prefixes:
            if any(name.startswith(prefix) for name in page.cookies):
                hit(tech, 100)
        found = {tech for tech, total in score.items() if total >= MIN_CONFIDENCE}
        pending = list(found)
        while pending:  # implied technologies, transitively (only those this set knows)
            for implied in self.implies.get(pending.pop(), ()):
                if implied in self.techs and implied not in found:
                    found.add(implied)
                    pending.append(implied)
        found = {t for t in found if all(r in found for r in self.requires.get(t, ()) if r in self.techs)}
        found -= {excluded for t in found for excluded in self.excludes.get(t, ())}
        return sorted((self.techs[t] for t in found), key=lambda t: (KINDS.index(t.kind), t.slug))


def cms_of(found: Sequence[Tech], generator: str | None) -> str:
    """``site_cms``: the CMS, builder or shop system that made the site; ``other`` when none is
    recognised but the page names a generator; ``handwritten`` when neither."""
    for kind in _CMS_ORDER:
        for tech in found:
            if tech.kind == kind:
                return LEGACY_NAMES.get(tech.slug, tech.slug)
    return "other" if generator else "handwritten"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def fingerprint_data() -> tuple[dict[str, dict[str, Any]], dict[int, str]]:
    """The shipped fingerprints with the local additions merged in, and the kind of each category."""
    data = _load(DATA / "technologies.json")
    technologies: dict[str, dict[str, Any]] = {name: dict(tech) for name, tech in data["technologies"].items()}
    for name, extra in _load(DATA / "local.json")["technologies"].items():
        tech = technologies.setdefault(name, {"cats": extra.get("cats", [])})
        for key, value in extra.items():
            if key == "cats":
                continue
            if isinstance(value, dict):
                mine = dict(tech.get(key) or {})
                for item, pattern in value.items():
                    mine[item] = [*_patterns(mine[item]), *_patterns(pattern)] if item in mine else pattern
                tech[key] = mine
            else:
                tech[key] = [*_patterns(tech.get(key)), *_patterns(value)]
    return technologies, {int(k): v for k, v in data["kinds"].items()}


@functools.cache
def fingerprints() -> Fingerprints:
    """The fingerprints, compiled on first use in this process (an extraction worker compiles
    them once, as it starts: ``extract_pool`` preloads this module)."""
    return Fingerprints(*fingerprint_data())


@functools.cache
def header_names() -> frozenset[str]:
    """Every response header a fingerprint reads (the fetcher keeps these), without compiling."""
    technologies, _ = fingerprint_data()
    return frozenset(h.lower() for tech in technologies.values() for h in (tech.get("headers") or {}))
