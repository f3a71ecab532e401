"""What one HTML page says about its business: contacts, builder, age, mobile-readiness, parking.

Pure and synchronous (no I/O): the client runs it off the event loop. The page is untrusted: any
markup, however broken, yields a :class:`PageFacts`, never an exception, in time linear in the
page's size (every pattern here is, by construction: docs/linear-parsing.md says why for each),
with at most CONTACTS_PER_PAGE contacts of each kind.

Parser: selectolax's Lexbor engine (a C HTML5 parser). Parsing a page and walking its links,
metas and text takes 0.03 ms against html.parser's 0.15 ms on the replica's small pages, and
21 ms against 146 ms on a 600 KB page; and it builds a real HTML5 tree (implicit closes,
entities) where ``html.parser`` only tokenises, so the extraction reads as CSS selectors.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from leadlawk_daemon.sites.emails import (
    EmailFinds,
    EmailSource,
    decode_cfemail,
    emails_in_text,
    mailto_addresses,
    registrable_domain,
)
from leadlawk_daemon.sites.nesting import cap_nesting
from leadlawk_daemon.sites.tech import HTML_HEAD, PageSignals, cms_of, fingerprints

__all__ = ["CONTACTS_PER_PAGE", "SOCIAL_NETWORKS", "PageFacts", "extract_page", "page_signals", "site_key"]

# At most this many of each kind of contact (emails, rejected emails, phones) are listed per page;
# the rest are counted in PageFacts.capped. A real business lists a handful; a page of 20,000 is a
# trap or a directory, and reading it whole must not cost the daemon (or the report) 20,000 of them.
# Socials need no cap: one profile per network is kept, six networks at most.
CONTACTS_PER_PAGE = 50

SOCIAL_NETWORKS = ("facebook", "instagram", "linkedin", "x", "youtube", "tiktok")

_SOCIAL_HOSTS = {
    "facebook.com": "facebook", "fb.com": "facebook", "fb.me": "facebook",
    "instagram.com": "instagram", "instagr.am": "instagram",
    "linkedin.com": "linkedin",
    "twitter.com": "x", "x.com": "x",
    "youtube.com": "youtube", "youtu.be": "youtube",
    "tiktok.com": "tiktok",
}
# Share buttons, login walls and the networks' own pages are not the business's profile.
_NOT_A_PROFILE = re.compile(
    r"^/(?:sharer|share|intent|home\b|login|dialog|plugins|tr\b|shareArticle|embed|watch\?|hashtag|"
    r"privacy|legal|policies|help|about/?$|feeds?/)",
    re.IGNORECASE,
)
_CONTACT_WORDS = re.compile(r"contact|kontakt|contacto|get[-_ ]in[-_ ]touch|reach[-_ ]us|email[-_ ]us", re.I)
_IMPRESSUM_WORDS = re.compile(r"impressum|imprint|legal[-_ ]notice|mentions[-_ ]legales", re.I)
_ABOUT_WORDS = re.compile(r"about|über[-_ ]uns|uber[-_ ]uns|our[-_ ]story|who[-_ ]we[-_ ]are|team", re.I)
_FILE_SUFFIX = re.compile(r"\.(?:pdf|jpe?g|png|gif|svg|webp|zip|docx?|xlsx?|mp4|mp3)$", re.I)

# The patterns run over a whole page's text are matched against its lower-cased copy, written in
# lower case and compiled without re.IGNORECASE: then an alternation of literals lets the engine
# skip every position whose character starts none of them (a case-insensitive one tries each
# alternative at every position). On 600 KB of text the parking phrases took 66 ms, now 3 ms.
_COPYRIGHT = re.compile(
    r"(?:©|\(c\)|copyright)\s*(?:by\s*)?(?:\d{4}\s*(?:-|–|—|to)\s*)?((?:19|20)\d{2})(?!\d)"
    r"(?:\s*(?:-|–|—|to)\s*((?:19|20)\d{2})(?!\d))?",
)
_PARKING = re.compile(
    r"this domain (?:name )?(?:is|may be) for sale|buy this domain|domain is parked|parked free|"
    r"this domain has been registered|domain parking|sedoparking|parkingcrew|bodis\.com|"
    r"hugedomains|is available for purchase|the domain owner|related searches",
)
_COMING_SOON = re.compile(
    r"coming soon|under construction|site is being built|launching soon|website is under maintenance",
)
_COMING_SOON_MAX_WORDS = 120  # a real site can announce "new menu coming soon"; a placeholder says little else

def site_key(host: str) -> str:
    """The origin a site's leads share: the host, lower-case, without ``www.`` and a trailing dot."""
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


@dataclass(slots=True)
class PageFacts:
    emails: EmailFinds = field(default_factory=lambda: EmailFinds(cap=CONTACTS_PER_PAGE))
    phones: list[str] = field(default_factory=list)
    socials: dict[str, str] = field(default_factory=dict)
    contact_form: bool = False
    mobile_viewport: bool = False
    generator: str | None = None
    cms: str | None = None  # site_cms: the CMS, builder or shop (tech.cms_of), else other or handwritten
    tech: list[str] = field(default_factory=list)  # site_tech: every technology recognised (tech.py slugs)
    copyright_year: int | None = None
    parked: str | None = None  # "parked" or "coming soon" when the page is a placeholder
    words: int = 0  # counted up to a little past what a placeholder page has
    internal_links: int = 0  # links to other pages of the site: a placeholder has next to none
    candidate_pages: list[str] = field(default_factory=list)  # contact first, then impressum, then about
    # Kinds past CONTACTS_PER_PAGE ("emails", "rejected_emails", "phones") → how many were found in all.
    capped: dict[str, int] = field(default_factory=dict)


def _attr(node: LexborNode, name: str) -> str:
    value = node.attributes.get(name)
    return value if isinstance(value, str) else ""


def _phone(href: str) -> str | None:
    number = unquote(href.strip()[4:]).split("?", 1)[0].split(";", 1)[0]
    digits = re.sub(r"[^\d+]", "", number)
    plus = digits.startswith("+")
    digits = digits.replace("+", "")
    if not 5 <= len(digits) <= 16:
        return None
    return ("+" if plus else "") + digits


def _social(url: str) -> tuple[str, str] | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname or ""
    host = host[4:] if host.startswith("www.") else host
    host = host[2:] if host.startswith("m.") else host
    network = _SOCIAL_HOSTS.get(host)
    if network is None or parts.scheme not in ("http", "https"):
        return None
    path = parts.path or "/"
    if path in ("", "/") or _NOT_A_PROFILE.match(path + (f"?{parts.query}" if parts.query else "")):
        return None
    return network, f"https://{host}{path.rstrip('/')}"


def _same_site(url: str, key: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and site_key(host) == key


def _candidate_rank(href: str, text: str) -> int | None:
    path = unquote(urlsplit(href).path)
    if _FILE_SUFFIX.search(path):
        return None
    haystack = f"{path} {text}"
    if _CONTACT_WORDS.search(haystack):
        return 0
    if _IMPRESSUM_WORDS.search(haystack):
        return 1
    if _ABOUT_WORDS.search(haystack):
        return 2
    return None


_WORD = re.compile(r"\S+")


def _count_words(text: str, enough: int) -> int:
    """Words in ``text``, counted up to ``enough`` (a 2 MB page's words are not listed in memory)."""
    count = 0
    for _ in _WORD.finditer(text):
        count += 1
        if count >= enough:
            break
    return count


def _copyright_year(text: str, newest: int) -> int | None:
    years = []
    for match in _COPYRIGHT.finditer(text):
        year = int(match.group(2) or match.group(1))
        if 1990 <= year <= newest:
            years.append(year)
    return max(years) if years else None


def _form_is_contact(form: LexborNode) -> bool:
    if _attr(form, "role") == "search":
        return False
    if form.css_first("textarea") is not None:
        return True
    # A reachable-by form asks who you are and how to answer; a newsletter box asks one address.
    reach, fields = False, 0
    for field_node in form.css("input, select"):
        kind = _attr(field_node, "type").lower()
        if kind in ("hidden", "submit", "button", "image", "reset", "search", "checkbox", "radio"):
            continue
        fields += 1
        name = (_attr(field_node, "name") + " " + _attr(field_node, "id")).lower()
        reach = reach or kind in ("email", "tel") or "email" in name or "phone" in name
    return reach and fields >= 3


_FORM_EMBEDS = re.compile(r"jotform|typeform|docs\.google\.com/forms|formstack|hsforms|wufoo|cognitoforms", re.I)


def extract_page(
    html: str, url: str, *, newest_year: int, headers: Sequence[tuple[str, str]] = ()
) -> PageFacts:
    """Everything :class:`PageFacts` holds, read from one page fetched from ``url`` with the
    response ``headers`` (name, value; the technology fingerprints read some)."""
    facts = PageFacts()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        host = ""
    key = site_key(host) if host else ""
    own_domain = registrable_domain(key) if key else None
    tree = LexborHTMLParser(cap_nesting(html))
    if not url.startswith(("http://", "https://")):
        # A saved page: the site is the one the page names as itself, else the one it links most.
        url = _own_url(tree) or url
        key = site_key(urlsplit(url).hostname or "") if url.startswith("http") else key
        own_domain = registrable_domain(key) if key else None
    _links(tree, url, key, own_domain, facts)
    for meta in tree.css("meta[name]"):
        name = _attr(meta, "name").lower()
        content = _attr(meta, "content")
        if name == "viewport" and content.strip():
            facts.mobile_viewport = True
        elif name == "generator" and content.strip() and facts.generator is None:
            facts.generator = " ".join(content.split())[:200]
    facts.contact_form = any(_form_is_contact(f) for f in tree.css("form")) or any(
        _FORM_EMBEDS.search(_attr(frame, "src")) for frame in tree.css("iframe[src]")
    )
    for node in tree.css("[data-cfemail]"):
        decoded = decode_cfemail(_attr(node, "data-cfemail"))
        if decoded:
            facts.emails.add(decoded, EmailSource.CFEMAIL, own_domain)
    signals = page_signals(tree, html, url, headers)
    found = fingerprints().detect(signals)
    facts.tech = [t.slug for t in found]
    facts.cms = cms_of(found, facts.generator)
    for script in tree.css("script"):
        body = script.text() or ""
        kind = _attr(script, "type").lower()
        if kind == "application/ld+json":
            for email in _structured_emails(body):
                facts.emails.add(email, EmailSource.STRUCTURED, own_domain)
        else:
            for email in emails_in_text(body):
                facts.emails.add(email, EmailSource.SCRIPT, own_domain)
    # Children before their parents (reverse document order): a removed subtree is freed.
    for embed in reversed(tree.css("script, style, noscript, template, iframe, svg, [data-widget]")):
        if embed.tag == "iframe" or embed.attributes.get("data-widget") is not None:
            for email in emails_in_text(embed.text() or ""):
                facts.emails.add(email, EmailSource.SCRIPT, own_domain)
        embed.decompose()
    root = tree.body or tree.root
    text = root.text(separator=" ") if root is not None else ""
    for email in emails_in_text(text):
        facts.emails.add(email, EmailSource.TEXT, own_domain)
    facts.words = _count_words(text, _COMING_SOON_MAX_WORDS + 1)
    lowered = text.lower()
    facts.copyright_year = _copyright_year(lowered, newest_year)
    if _PARKING.search(lowered) or _PARKING.search((facts.generator or "").lower()):
        facts.parked = "parked"
    elif facts.words <= _COMING_SOON_MAX_WORDS and facts.internal_links <= 3 and _COMING_SOON.search(lowered):
        facts.parked = "coming soon"
    facts.capped.update(facts.emails.capped())
    return facts


def _links(tree: LexborHTMLParser, url: str, key: str, own_domain: str | None, facts: PageFacts) -> None:
    candidates: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    phones: set[str] = set()
    for index, anchor in enumerate(tree.css("a[href]")):
        href = _attr(anchor, "href").strip()
        lowered = href.lower()
        if lowered.startswith("mailto:"):
            for address in mailto_addresses(href):
                facts.emails.add(address, EmailSource.MAILTO, own_domain)
            continue
        if lowered.startswith("tel:"):
            phone = _phone(href)
            if phone is not None and phone not in phones:
                phones.add(phone)
                if len(facts.phones) < CONTACTS_PER_PAGE:
                    facts.phones.append(phone)
            continue
        if "/cdn-cgi/l/email-protection#" in lowered:
            decoded = decode_cfemail(href.rsplit("#", 1)[1])
            if decoded:
                facts.emails.add(decoded, EmailSource.CFEMAIL, own_domain)
            continue
        try:
            absolute = urljoin(url, href).split("#", 1)[0]
        except ValueError:
            continue
        social = _social(absolute)
        if social is not None:
            facts.socials.setdefault(*social)
            continue
        if not key or absolute in seen or not absolute.startswith(("http://", "https://")):
            continue
        if not _same_site(absolute, key):
            continue
        if absolute.rstrip("/") != url.rstrip("/"):
            facts.internal_links += 1
        rank = _candidate_rank(absolute, anchor.text(deep=True)[:200])
        if rank is not None and absolute.rstrip("/") != url.rstrip("/"):
            seen.add(absolute)
            candidates.append((rank, index, absolute))
    if len(phones) > len(facts.phones):
        facts.capped["phones"] = len(phones)
    # The client reads only the first few (sites.max_pages): the best CONTACTS_PER_PAGE are plenty,
    # and are not a contact to report as capped.
    facts.candidate_pages = [link for _, _, link in heapq.nsmallest(CONTACTS_PER_PAGE, candidates)]


def _own_url(tree: LexborHTMLParser) -> str | None:
    for selector, name in (('link[rel="canonical"]', "href"), ('meta[property="og:url"]', "content")):
        node = tree.css_first(selector)
        value = _attr(node, name).strip() if node is not None else ""
        if value.startswith(("http://", "https://")):
            return value
    hosts: dict[str, int] = {}
    for anchor in tree.css("a[href]"):
        href = _attr(anchor, "href")
        if href.startswith(("http://", "https://")):
            try:
                host = urlsplit(href).hostname
            except ValueError:
                continue
            if host and _social("https://" + host + "/x") is None:
                hosts[host] = hosts.get(host, 0) + 1
    if not hosts:
        return None
    return f"https://{max(hosts, key=lambda h: hosts[h])}/"


def _structured_emails(body: str) -> list[str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return emails_in_text(body)
    found: list[str] = []
    stack = [data]
    while stack and len(found) < 50:
        item = stack.pop()
        if isinstance(item, dict):
            for name, value in item.items():
                if name.lower() == "email" and isinstance(value, str):
                    found.extend(emails_in_text(value.removeprefix("mailto:")))
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def page_signals(tree: LexborHTMLParser, html: str, url: str, headers: Sequence[tuple[str, str]]) -> PageSignals:
    """What the technology fingerprints read of one page (tech.py bounds each part)."""
    signals = PageSignals(html=html, url=url)
    for script in tree.css("script[src]")[:200]:
        signals.script_srcs.append(_attr(script, "src"))
    for meta in tree.css("meta[name], meta[property]")[:200]:
        name = (_attr(meta, "name") or _attr(meta, "property")).lower()
        contents = signals.metas.setdefault(name, []) if name else None
        if contents is not None and len(contents) < 5:  # a page that repeats a meta says no more
            contents.append(_attr(meta, "content"))
    for name, value in headers[:200]:
        name = name.lower()
        if name == "set-cookie":
            signals.cookies.add(value.split("=", 1)[0].strip().lower())
        signals.headers.setdefault(name, []).append(value)
    # A dom selector walks the whole tree only when its longest name occurs in the page's head
    # (tech.Fingerprints.dom_hits): one more linear pass, no second parse of a part of the page.
    signals.dom = fingerprints().dom_hits(tree, html[:HTML_HEAD])
    return signals
