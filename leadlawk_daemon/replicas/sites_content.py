"""The websites the sites replica serves: each one derived from its host name and the seed alone.

``profile(host, seed)`` decides what a site is (a WordPress plumber with a contact page, a Wix
salon behind https, a parked domain, a dead server, a 3 MB page…); ``render(profile, path)``
writes its pages; ``answers(profile)`` is the ground truth a correct client reports for it.
Random choices come from a SHA-256 of (seed, host), never Python's salted ``hash()``.

Hosts whose first label starts with ``t-<kind>-`` are forced to that kind (tests name the case
they need): ``t-ok-``, ``t-dns-``, ``t-refused-``, ``t-500-``, ``t-404-``, ``t-badcert-``,
``t-parked-``, ``t-soon-``, ``t-forbidden-``, ``t-robots-``, ``t-huge-``, ``t-hang-``,
``t-slow-``, ``t-loop-``, ``t-endless-``, and the builder forced with ``t-<cms>-``.
"""

from __future__ import annotations

import hashlib
import html
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from leadlawk_daemon.sites.emails import encode_cfemail

__all__ = ["Email", "Response", "SiteProfile", "answers", "endless_stream", "profile", "render", "seeded_random"]

KINDS = ("ok", "dns", "refused", "500", "404", "badcert", "parked", "soon", "forbidden", "robots", "huge",
         "hang", "slow", "loop", "endless")
CMS = ("wordpress", "wix", "squarespace", "godaddy", "weebly", "shopify", "handwritten")
STYLES = ("text", "mailto", "brackets", "parens", "entities", "cfemail", "jsonld")
HUGE_BYTES = 3 * 1024 * 1024
YEAR_NOW = 2026

_FIRST = ("mike", "dave", "rosa", "jim", "ana", "tom", "linh", "sam", "grace", "omar", "kate", "luis")
_SOCIAL_BASES = {
    "facebook": "https://www.facebook.com/",
    "instagram": "https://www.instagram.com/",
    "linkedin": "https://www.linkedin.com/company/",
    "x": "https://twitter.com/",
    "youtube": "https://www.youtube.com/@",
    "tiktok": "https://www.tiktok.com/@",
}
_PATHS = {
    "wordpress": ("/contact-us/", "/about-us/"),
    "wix": ("/contact", "/about"),
    "squarespace": ("/contact", "/about"),
    "godaddy": ("/contact-us", "/about-us"),
    "weebly": ("/contact.html", "/about.html"),
    "shopify": ("/pages/contact", "/pages/about"),
    "handwritten": ("/contact.html", "/about.html"),
}


@dataclass(frozen=True, slots=True)
class Email:
    address: str
    style: str
    page: str  # "home" or "contact"


@dataclass(frozen=True, slots=True)
class SiteProfile:
    host: str  # without www.
    kind: str
    cms: str
    https: bool  # http:// redirects to https://
    www: bool  # ...to https://www.<host>/
    cert: str  # "valid", "self-signed", "mismatch" (only with https)
    viewport: bool
    generator: bool
    copyright: int | None
    copyright_form: int
    emails: tuple[Email, ...]
    decoys: tuple[tuple[str, str], ...]  # (text placed on the home page, the junk rule it should meet)
    phones: tuple[str, ...]
    socials: tuple[tuple[str, str], ...]
    contact_form: bool
    impressum: bool
    contact_disallowed: bool  # robots.txt forbids our bot the contact page
    robots_missing: bool
    latin1: bool
    last_modified: str | None
    slow_s: float
    name: str = field(default="")

    @property
    def contact_path(self) -> str:
        return _PATHS[self.cms][0]

    @property
    def about_path(self) -> str:
        return _PATHS[self.cms][1]

    @property
    def serves_https(self) -> bool:
        return self.https

    def home_url(self) -> str:
        if not self.https:
            return f"http://{self.host}/"
        return f"https://{'www.' if self.www else ''}{self.host}/"


def seeded_random(seed: int, host: str, what: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x1f{host}\x1f{what}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _forced(host: str) -> tuple[str | None, str | None]:
    label = host.split(".", 1)[0]
    if not label.startswith("t-"):
        return None, None
    parts = label[2:].split("-")
    kind = next((p for p in parts if p in KINDS), None)
    cms = next((p for p in parts if p in CMS), None)
    return kind, cms


def _kind(rng: random.Random) -> str:
    roll = rng.random()
    for kind, upto in (("dns", 0.03), ("refused", 0.05), ("500", 0.08), ("404", 0.09), ("badcert", 0.11),
                       ("parked", 0.15), ("soon", 0.17), ("forbidden", 0.19), ("robots", 0.20), ("huge", 0.22)):
        if roll < upto:
            return kind
    return "ok"


def _cms(rng: random.Random) -> str:
    roll = rng.random()
    for cms, upto in (("wordpress", 0.40), ("wix", 0.55), ("squarespace", 0.65), ("godaddy", 0.73),
                      ("weebly", 0.78), ("shopify", 0.83)):
        if roll < upto:
            return cms
    return "handwritten"


# Addresses at consumer and throwaway providers, for the email verdicts (replicas/dns.py serves
# their domains). A stream of their own, so every other fact of a site is as it was before them.
FREE_MAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "gmx.de")
DISPOSABLE_DOMAINS = ("mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com", "trashmail.com")


def _mailbox_emails(host: str, seed: int, slug: str) -> list[Email]:
    rng = seeded_random(seed, host, "mailboxes")
    roll = rng.random()
    if roll < 0.15:
        domain = rng.choice(FREE_MAIL_DOMAINS)
    elif roll < 0.21:
        domain = rng.choice(DISPOSABLE_DOMAINS)
    else:
        return []
    local = slug.replace("-", ".")[:30].strip(".") + rng.choice(("", ".office", ".info", ".owner"))
    return [Email(f"{local}@{domain}", "mailto", "home")]


def profile(host: str, seed: int) -> SiteProfile:
    """What the site at ``host`` is, the same on every run for the same seed."""
    host = host.lower().rstrip(".")
    host = host[4:] if host.startswith("www.") else host
    rng = seeded_random(seed, host, "site")
    forced_kind, forced_cms = _forced(host)
    kind = forced_kind or _kind(rng)
    cms = forced_cms or _cms(rng)
    https_roll = rng.random()
    https = kind == "badcert" or (https_roll < 0.6 and kind != "endless")
    www = https and rng.random() < 0.2
    cert = rng.choice(("self-signed", "mismatch")) if kind == "badcert" else "valid"
    modern = cms in ("wix", "squarespace", "shopify")
    viewport = modern or rng.random() < 0.7
    copyright_roll = rng.random()
    copyright = None if copyright_roll < 0.15 else (YEAR_NOW if copyright_roll < 0.35 else rng.randrange(2006, 2026))
    slug = host.split(".", 1)[0]
    count = rng.choices((0, 1, 2, 3), weights=(15, 55, 25, 5))[0]
    locals_ = ["info", "office", rng.choice(_FIRST), "contact", "hello"]
    rng.shuffle(locals_)
    emails = []
    for i in range(count):
        domain = host if rng.random() < 0.8 else "mailbox.example"
        local = locals_[i] if domain == host else f"{slug[:20]}.{locals_[i]}"
        emails.append(Email(f"{local}@{domain}", rng.choice(STYLES), rng.choice(("home", "contact"))))
    emails.extend(_mailbox_emails(host, seed, slug))
    decoys = []
    if rng.random() < 0.5:
        decoys.append((f"hero-banner@{rng.choice((2, 3))}x.{rng.choice(('png', 'jpg', 'webp'))}", "image_filename"))
    if rng.random() < 0.4:
        decoys.append(("you@example.com", "example_domain"))
    if cms == "wix" or rng.random() < 0.2:
        key = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        decoys.append((f"{key}@sentry.wixpress.com", "platform_internal"))
    if rng.random() < 0.3:
        decoys.append((f"support@{rng.choice(('chatvendor', 'bookingwidget', 'reviewhub'))}.example",
                       "third_party_widget"))
    phones = tuple(f"+1402555{rng.randrange(100, 10000):04d}" for _ in range(rng.choices((0, 1, 2), (3, 6, 1))[0]))
    networks = [n for n in _SOCIAL_BASES if rng.random() < 0.35]
    robots_missing = rng.random() < 0.3
    socials = tuple((n, f"{_SOCIAL_BASES[n]}{slug.replace('-', '')[:30]}") for n in networks)
    return SiteProfile(
        host=host, kind=kind, cms=cms, https=https, www=www, cert=cert, viewport=viewport,
        generator=rng.random() < 0.75, copyright=copyright, copyright_form=rng.randrange(5),
        emails=tuple(emails), decoys=tuple(decoys), phones=phones, socials=socials,
        contact_form=rng.random() < 0.6, impressum=rng.random() < 0.1,
        contact_disallowed=kind == "ok" and not robots_missing and rng.random() < 0.07,
        robots_missing=robots_missing,
        latin1=cms == "handwritten" and rng.random() < 0.4,
        last_modified=(f"Tue, {rng.randrange(10, 28)} Mar {rng.randrange(2009, 2024)} 10:00:00 GMT"
                       if cms in ("handwritten", "godaddy") and rng.random() < 0.7 else None),
        slow_s=2.0 if kind == "slow" else 0.0,
        name=" ".join(w.capitalize() for w in slug.split("-") if w and w != "t"),
    )


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: Iterator[bytes] | None = None  # a body sent chunk by chunk (huge or endless)
    hang: bool = False
    delay: float = 0.0  # seconds before the head is sent (a slow server)
    pace: float = 0.0  # seconds between the stream's chunks (a dripping server)


def _disguise(email: Email, rng: random.Random) -> str:
    address = email.address
    local, _, domain = address.partition("@")
    if email.style == "mailto":
        return f'<a href="mailto:{address}?subject=Quote%20request">Email us</a>'
    if email.style == "brackets":
        return f"<span>{local} [at] {domain.replace('.', ' [dot] ')}</span>"
    if email.style == "parens":
        return f"<span>{local}(at){domain.replace('.', '(dot)')}</span>"
    if email.style == "entities":
        return "<span>" + "".join(f"&#{ord(c)};" for c in address) + "</span>"
    if email.style == "cfemail":
        code = encode_cfemail(address, rng.randrange(1, 256))
        return (f'<a href="/cdn-cgi/l/email-protection#{code}"><span class="__cf_email__" '
                f'data-cfemail="{code}">[email&#160;protected]</span></a>')
    if email.style == "jsonld":
        return ('<script type="application/ld+json">{"@context":"https://schema.org","@type":"LocalBusiness",'
                f'"email":"mailto:{address}"}}</script>')
    return f"<p>Email: {address}</p>"


def _copyright(p: SiteProfile) -> str:
    if p.copyright is None:
        return ""
    year = p.copyright
    forms = (f"© {year} {p.name}. All rights reserved.", f"Copyright &copy; {year - 3}-{year} {p.name}",
             f"&copy; {year} {p.name}", f"(c) {year} {p.name}", f"Copyright {year}. {p.name}")
    return forms[p.copyright_form]


def _head(p: SiteProfile, title: str) -> str:
    parts = ['<meta charset="utf-8">' if not p.latin1 else
             '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">']
    if p.viewport:
        parts.append('<meta name="viewport" content="width=device-width, initial-scale=1">')
    if p.cms == "wordpress":
        if p.generator:
            parts.append('<meta name="generator" content="WordPress 6.4.3">')
        parts.append(f'<link rel="stylesheet" href="http://{p.host}/wp-content/themes/astra/style.min.css?ver=4.6">')
        parts.append(f'<script src="http://{p.host}/wp-includes/js/jquery/jquery.min.js"></script>')
    elif p.cms == "wix":
        parts.append('<meta name="generator" content="Wix.com Website Builder">')
        parts.append('<link rel="preload" href="https://static.parastorage.com/services/wix-thunderbolt/dist/main.js">')
    elif p.cms == "squarespace":
        parts.append("<!-- This is Squarespace. -->")
        parts.append('<link rel="stylesheet" href="https://static1.squarespace.com/static/versioned-site-css/a.css">')
    elif p.cms == "godaddy":
        if p.generator:
            parts.append('<meta name="generator" content="Starfield Technologies; Go Daddy Website Builder 8.0.0000">')
        parts.append('<link rel="preconnect" href="https://img1.wsimg.com">')
    elif p.cms == "weebly":
        parts.append('<script src="//cdn2.editmysite.com/js/site/main.js"></script>')
    elif p.cms == "shopify":
        parts.append('<link rel="stylesheet" href="//cdn.shopify.com/s/files/1/0001/t/1/assets/theme.css">')
    return f"<!DOCTYPE html><html lang=\"en\"><head>{''.join(parts)}<title>{html.escape(title)}</title></head>"


def _nav(p: SiteProfile) -> str:
    links = ['<a href="/">Home</a>', f'<a href="{p.contact_path}">Contact Us</a>',
             f'<a href="{p.about_path}">About</a>', '<a href="/services/">Services</a>']
    if p.impressum:
        links.append('<a href="/impressum">Impressum</a>')
    return "<nav>" + " | ".join(links) + "</nav>"


def _footer(p: SiteProfile, rng: random.Random) -> str:
    bits = ["<footer>"]
    for phone in p.phones:
        bits.append(f'<a href="tel:{phone}">Call {phone[2:5]}-{phone[5:8]}-{phone[8:]}</a>')
    for _, url in p.socials:
        bits.append(f'<a href="{url}" target="_blank" rel="noopener">follow</a>')
    bits.append(f'<a href="https://www.facebook.com/sharer/sharer.php?u=http://{p.host}/">Share</a>')
    bits.append(f"<p>{_copyright(p)}</p></footer>")
    return "".join(bits)


def _decoys(p: SiteProfile) -> str:
    bits = []
    for text, rule in p.decoys:
        if rule == "image_filename":
            bits.append(f'<script>window.__assets={{"hero":"/media/{text}"}};</script>')
        elif rule == "example_domain":
            bits.append(f"<p class=\"hint\">Enter your email, e.g. {text}</p>")
        elif rule == "platform_internal":
            bits.append(f'<script>var sentryDsn="https://{text}/1234567";</script>')
        else:
            bits.append(f'<script>window.chatWidget={{support:"{text}",position:"right"}};</script>')
    return "".join(bits)


def _emails_on(p: SiteProfile, page: str, rng: random.Random) -> str:
    return "".join(_disguise(e, rng) for e in p.emails if e.page == page)


def _page(p: SiteProfile, title: str, body: str, rng: random.Random) -> str:
    return (f"{_head(p, title)}<body class=\"{p.cms}\">{_nav(p)}<main><h1>{html.escape(title)}</h1>{body}</main>"
            f"{_footer(p, rng)}</body></html>")


def _home(p: SiteProfile, rng: random.Random) -> str:
    about = (f"<p>{p.name} has served the area for years. Family owned, licensed and insured. "
             "Call us today for a free estimate; same-day appointments available.</p>")
    if rng.random() < 0.3:
        about += "<p>Our second location is coming soon! Watch this space for our new showroom.</p>" * 8
    return _page(p, p.name or p.host, about + _emails_on(p, "home", rng) + _decoys(p), rng)


def _contact(p: SiteProfile, rng: random.Random) -> str:
    form = ""
    if p.contact_form:
        form = ('<form method="post" action="/contact-form"><input type="text" name="your-name">'
                '<input type="email" name="your-email" placeholder="you@example.com">'
                '<textarea name="message"></textarea><button>Send</button></form>')
    return _page(p, "Contact Us", "<p>We would love to hear from you.</p>" + _emails_on(p, "contact", rng) + form, rng)


_PARKED = ("<!DOCTYPE html><html><head><title>{host}</title></head><body><h1>{host}</h1>"
           "<p>This domain may be for sale. Buy this domain today!</p><p>Related searches: "
           "plumbing, roofing, insurance</p><script src=\"https://www.sedoparking.com/js/park.js\"></script>"
           "</body></html>")
_SOON = ("<!DOCTYPE html><html><head><meta name=\"viewport\" content=\"width=device-width\"><title>{name}</title>"
         "</head><body><h1>{name}</h1><p>Our new website is coming soon.</p></body></html>")


def _headers(p: SiteProfile, content_type: str = "text/html; charset=utf-8") -> list[tuple[str, str]]:
    headers = [("Content-Type", "text/html; charset=iso-8859-1" if p.latin1 else content_type)]
    server = {"wix": "Pepyaka", "squarespace": "Squarespace", "shopify": "cloudflare"}.get(p.cms, "Apache")
    headers.append(("Server", server))
    if p.cms == "wix":
        headers.append(("x-wix-request-id", "1700000000.123"))
    if p.cms == "shopify":
        headers.append(("x-shopid", "12345"))
    if p.last_modified:
        headers.append(("Last-Modified", p.last_modified))
    return headers


def _encode(p: SiteProfile, text: str) -> bytes:
    return text.encode("cp1252", errors="xmlcharrefreplace") if p.latin1 else text.encode()


def _robots(p: SiteProfile) -> Response:
    if p.kind == "robots":
        return Response(200, [("Content-Type", "text/plain")], b"User-agent: *\nDisallow: /\n")
    if p.robots_missing:
        return Response(404, [("Content-Type", "text/html")], b"<h1>Not Found</h1>")
    lines = ["User-agent: *", "Disallow: /wp-admin/", "Allow: /wp-admin/admin-ajax.php", ""]
    if p.contact_disallowed:
        lines += ["User-agent: LeadLawkBot", f"Disallow: {p.contact_path}", ""]
    return Response(200, [("Content-Type", "text/plain")], "\n".join(lines).encode())


def _huge_stream(head: bytes, tail: bytes) -> Iterator[bytes]:
    yield head
    chunk = b"<script>window.__data=\"" + b"x" * 65_000 + b"\";</script>\n"
    sent = len(head)
    while sent < HUGE_BYTES:
        yield chunk
        sent += len(chunk)
    yield tail


def endless_stream() -> Iterator[bytes]:
    yield b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>"
    chunk = b"<p>" + b"more " * 13_000 + b"</p>\n"
    while True:
        yield chunk


def render(p: SiteProfile, scheme: str, host: str, path: str, seed: int) -> Response:
    """The answer of site ``p`` to ``GET scheme://host/path`` (faults aside)."""
    rng = seeded_random(seed, p.host, "page:" + path)
    bare = path.split("?", 1)[0]
    if p.kind == "hang":
        return Response(200, [], hang=True)
    if p.kind == "loop":
        return Response(302, [("Location", "/loop-b" if bare != "/loop-b" else "/loop-a")])
    if p.kind == "endless" and bare == "/":
        return Response(200, _headers(p), stream=endless_stream())
    if bare == "/robots.txt":
        return _robots(p)
    if p.https and (scheme == "http" or (p.www and not host.startswith("www."))):
        target = f"https://{'www.' if p.www else ''}{p.host}{path}"
        return Response(301, [("Location", target), ("Server", "Apache")])
    if p.kind == "500":
        return Response(503, [("Content-Type", "text/html")], b"<h1>Service Unavailable</h1>")
    if p.kind == "forbidden":
        return Response(403, [("Content-Type", "text/html"), ("Server", "cloudflare")],
                        b"<title>Attention Required!</title><h1>Sorry, you have been blocked</h1>")
    if p.kind == "404" and bare == "/":
        return Response(404, [("Content-Type", "text/html")], b"<h1>Not Found</h1>")
    if p.kind == "parked":
        return Response(200, [("Content-Type", "text/html")], _PARKED.format(host=p.host).encode())
    if p.kind == "soon":
        return Response(200, _headers(p), _SOON.format(name=html.escape(p.name)).encode())
    if bare == "/":
        page = _encode(p, _home(p, rng))
        if p.kind == "huge":
            cut = page.rindex(b"</body>")
            return Response(200, _headers(p), stream=_huge_stream(page[:cut], page[cut:]))
        return Response(200, _headers(p), page)
    if bare == p.contact_path:
        return Response(200, _headers(p), _encode(p, _contact(p, rng)))
    if bare in (p.about_path, "/services/") or (bare == "/impressum" and p.impressum):
        title = {"/services/": "Services", "/impressum": "Impressum"}.get(bare, "About Us")
        return Response(200, _headers(p), _encode(p, _page(p, title, "<p>Quality work since day one.</p>", rng)))
    return Response(404, [("Content-Type", "text/html")], b"<h1>Not Found</h1>")


def answers(p: SiteProfile) -> dict[str, Any]:
    """What a correct client reports for ``p`` (with the default limits: 3 extra pages, 2 MB)."""
    status, reason = {
        "dns": ("dead", "unreachable"), "refused": ("dead", "unreachable"), "500": ("dead", "HTTP 503"),
        "404": ("dead", "HTTP 404"), "badcert": ("dead", "invalid certificate"), "parked": ("parked", "parking page"),
        "soon": ("parked", "coming-soon page"), "forbidden": ("blocked", "HTTP 403"),
        "robots": ("blocked", "robots.txt disallows /"), "hang": ("dead", "timed out"),
        "loop": ("dead", "redirect loop"), "slow": ("ok", None),
    }.get(p.kind, ("ok", None))
    readable = p.kind in ("ok", "huge", "badcert", "slow")  # an endless body is cut: nothing promised
    emails: list[str] = []
    if readable:
        for email in p.emails:
            if email.page == "home" or not p.contact_disallowed:
                emails.append(email.address)
    reachable = p.kind not in ("dns", "refused", "hang", "loop", "robots")
    return {
        "site": p.host,
        "kind": p.kind,
        "status": status,
        "reason": reason,
        "cms": p.cms if readable else None,
        "https": p.https if reachable and p.kind != "robots" else None,
        "cert_valid": (p.cert == "valid") if p.https and reachable else None,
        "http_to_https": p.https if reachable else None,
        "mobile_viewport": p.viewport if readable else None,
        "copyright_year": p.copyright if readable else None,
        "emails": sorted(emails),
        "junk": {text: rule for text, rule in p.decoys} if readable else {},
        "phones": list(p.phones) if readable else [],
        "socials": dict(p.socials) if readable else {},
        "contact_form": (p.contact_form and not p.contact_disallowed) if readable else None,
        "home_url": p.home_url(),
    }
