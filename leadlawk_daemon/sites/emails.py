"""Email addresses in a web page: found in every common disguise, then the junk dropped by a named rule.

Disguises undone: ``mailto:`` links (percent-encoded too), plain text, HTML entities (the
parser decodes them), ``name [at] domain [dot] com`` and its bracket variants, and Cloudflare's
email protection (``data-cfemail`` and ``/cdn-cgi/l/email-protection#…`` links).

Junk rules, each named in what is rejected so that a surprising drop can be explained:

* ``image_filename``: ``logo@2x.png`` and friends: retina asset names that look like addresses;
* ``example_domain``: example.com/.net/.org (RFC 2606 documentation addresses, form placeholders);
* ``placeholder``: ``you@domain.com``, ``name@email.com``, ``user@yourdomain.com``…;
* ``platform_internal``: error reporters and site builders' own addresses (Sentry DSNs, wixpress…);
* ``third_party_widget``: an address at another domain than the site's, seen only inside a script
  or an embed (chat, booking and review widgets carry their vendor's support address).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from urllib.parse import unquote

from publicsuffixlist import PublicSuffixList

__all__ = [
    "EmailFinds",
    "EmailSource",
    "JunkRule",
    "decode_cfemail",
    "deobfuscate",
    "domain_under",
    "emails_in_text",
    "encode_cfemail",
    "junk_rule",
    "mailto_addresses",
    "normalize_email",
    "registrable_domain",
]

# RFC 5322 allows more in a local part ("/", "{", "|"…) but no real business address uses them, and
# URLs (``https://key@sentry.io/1``, ``/img/logo@2x.png``) do: the practical set avoids gluing paths on.
# Only ever matched against a bounded string (an address candidate of at most 254 characters).
_LOCAL = r"[A-Za-z0-9_%+'-]+(?:\.[A-Za-z0-9_%+'-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
_FULL = re.compile(rf"^{_LOCAL}@{_DOMAIN}$")

# An address candidate: a run of local-part characters (the look-behind lets a match start only
# where such a run starts) of at most 64, an "@", and a look at the run of domain characters after
# it (looked at, not consumed: when no domain is there, a candidate may start right after the "@").
# Linear by construction: the look-behind fails in O(1) everywhere but at a run's first character;
# from there ``{1,64}`` reads and gives back at most 64 characters, and the look-ahead reads at most
# 256 and ends the pattern, so it is never given back. Which part of the domain run is the domain is
# decided by :func:`_domain` on those 256 characters at most, in Python, without backtracking.
_LOCAL_CHAR = r"[A-Za-z0-9._%+'-]"
_CANDIDATE = re.compile(rf"(?<!{_LOCAL_CHAR})({_LOCAL_CHAR}{{1,64}})@(?=([A-Za-z0-9.-]{{0,256}}))")
_DOMAIN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TLD = re.compile(r"[A-Za-z]{2,24}")

# "name [at] domain [dot] com", "name (at) domain (dot) com", "name {at} domain", "name [@] domain".
# No leading ``\s*``: a search would rescan a whitespace run from each of its characters (a run of
# 40,000 spaces took 26 s); the whitespace before the bracket is trimmed by :func:`_undisguise`.
_AT = re.compile(r"[\[\(\{<]\s*(?:at|@)\s*[\]\)\}>]\s*", re.IGNORECASE)
_DOT = re.compile(r"[\[\(\{<]\s*(?:dot|\.)\s*[\]\)\}>]\s*", re.IGNORECASE)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".avif", ".ico", ".bmp", ".tif", ".tiff")
_EXAMPLE_DOMAINS = frozenset({"example.com", "example.net", "example.org"})
_PLACEHOLDER_LOCALS = {"you", "your", "yourname", "your.name", "name", "user", "username", "email",
                       "youremail", "your-email", "your_email", "someone", "john.doe", "johndoe", "jane.doe"}
_PLACEHOLDER_DOMAINS = {"domain.com", "email.com", "yourdomain.com", "your-domain.com", "mydomain.com",
                        "website.com", "yourwebsite.com", "company.com", "yourcompany.com"}
_PLACEHOLDER_HOSTS = {"domain", "email", "yourdomain", "yoursite", "website", "company", "mysite"}
_PLATFORM_DOMAINS = frozenset({"sentry.io", "sentry-next.wixpress.com", "wixpress.com", "sentry.wixpress.com",
                               "ingest.sentry.io", "wix.com", "squarespace.com", "godaddy.com", "secureserver.net",
                               "shopify.com", "weebly.com", "wordpress.com", "wordpress.org", "w3.org", "schema.org"})
_HEX_LOCAL = re.compile(r"^[0-9a-f]{24,}$")
_RETINA = re.compile(r"@\d+x\.")  # logo@2x.png


class EmailSource(StrEnum):
    MAILTO = "mailto"
    TEXT = "text"
    CFEMAIL = "cfemail"
    STRUCTURED = "structured"  # JSON-LD: the site describing itself
    SCRIPT = "script"  # any other script or embed: possibly someone else's widget


class JunkRule(StrEnum):
    IMAGE_FILENAME = "image_filename"
    EXAMPLE_DOMAIN = "example_domain"
    PLACEHOLDER = "placeholder"
    PLATFORM_INTERNAL = "platform_internal"
    THIRD_PARTY_WIDGET = "third_party_widget"


@dataclass(slots=True)
class EmailFinds:
    """Addresses kept (in the order first seen) and those rejected, with the rule that dropped each.

    With a ``cap`` (one page's finds), at most ``cap`` of each are listed and the rest only counted
    (:meth:`capped`): a page of 20,000 addresses is spam, not 20,000 contacts. Membership is checked
    in sets, so adding n addresses costs O(n), not the O(n²) of ``in`` on a list.
    """

    kept: list[str] = field(default_factory=list)
    rejected: dict[str, JunkRule] = field(default_factory=dict)
    cap: int | None = None
    _kept: set[str] = field(default_factory=set, init=False, repr=False, compare=False)  # past the cap too
    _rejected: set[str] = field(default_factory=set, init=False, repr=False, compare=False)  # idem

    def add(self, address: str, source: EmailSource, site_domain: str | None) -> None:
        email = normalize_email(address)
        if email is None or email in self._kept:
            return
        rule = junk_rule(email, source, site_domain)
        if rule is None:
            self._keep(email)
        elif email not in self._rejected:
            self._reject(email, rule)

    def merge(self, other: EmailFinds) -> None:
        for email, rule in other.rejected.items():
            if email not in self._kept and email not in self._rejected:
                self._reject(email, rule)
        for email in other.kept:
            if email not in self._kept:
                self._keep(email)

    def capped(self) -> dict[str, int]:
        """How many distinct addresses of each kind were found in all, for the kinds past the cap."""
        found = {"emails": (len(self._kept), len(self.kept)),
                 "rejected_emails": (len(self._rejected), len(self.rejected))}
        return {kind: total for kind, (total, listed) in found.items() if total > listed}

    def _keep(self, email: str) -> None:
        if email in self._rejected:  # seen in a widget first, then in the page's own text
            self._rejected.discard(email)
            self.rejected.pop(email, None)
        self._kept.add(email)
        if self.cap is None or len(self.kept) < self.cap:
            self.kept.append(email)

    def _reject(self, email: str, rule: JunkRule) -> None:
        self._rejected.add(email)
        if self.cap is None or len(self.rejected) < self.cap:
            self.rejected[email] = rule


def normalize_email(raw: str) -> str | None:
    """Lower-case, trimmed of the punctuation text wraps around addresses; None if not an address."""
    email = raw.strip().strip(".,;:!?'\"()[]<>{}").lower()
    if len(email) > 254 or not _FULL.match(email):
        return None
    local = email.rpartition("@")[0]
    if len(local) > 64 or ".." in email:
        return None
    return email


@cache
def _suffixes() -> PublicSuffixList:
    # The Public Suffix List as the publicsuffixlist package ships it (no download at run time),
    # private suffixes included: ``acme.wixsite.com`` is one site, not wixsite.com. Read once per
    # process (about 0.1 s), when a domain is first asked for.
    return PublicSuffixList()


def registrable_domain(host: str) -> str:
    """The registrable domain of ``host`` by the Public Suffix List: ``www.shop.acme.com`` →
    ``acme.com``, ``shop.acme.co.uk`` → ``acme.co.uk``, ``acme.wixsite.com`` → itself. A host
    that is itself a public suffix (``com``) or has a single label is returned as it is."""
    name = host.lower().rstrip(".")
    if len(name) > 253:
        return name
    found = _suffixes().privatesuffix(name)
    return found if isinstance(found, str) else name


def domain_under(domain: str, parents: frozenset[str]) -> bool:
    """Whether ``domain`` is one of ``parents`` or under one: a set lookup per label, not a scan."""
    while True:
        if domain in parents:
            return True
        dot = domain.find(".")
        if dot < 0:
            return False
        domain = domain[dot + 1:]


def junk_rule(email: str, source: EmailSource, site_domain: str | None) -> JunkRule | None:
    """The rule that makes ``email`` junk, or None for an address worth keeping."""
    local, _, domain = email.rpartition("@")
    if domain.endswith(_IMAGE_SUFFIXES) or local.endswith(_IMAGE_SUFFIXES):
        return JunkRule.IMAGE_FILENAME
    if _RETINA.search(email):
        return JunkRule.IMAGE_FILENAME
    if domain_under(domain, _EXAMPLE_DOMAINS):
        return JunkRule.EXAMPLE_DOMAIN
    if domain in _PLACEHOLDER_DOMAINS or (local in _PLACEHOLDER_LOCALS and domain.split(".")[0] in _PLACEHOLDER_HOSTS):
        return JunkRule.PLACEHOLDER
    if domain_under(domain, _PLATFORM_DOMAINS) or _HEX_LOCAL.match(local):
        return JunkRule.PLATFORM_INTERNAL
    if source is EmailSource.SCRIPT and site_domain is not None and registrable_domain(domain) != site_domain:
        return JunkRule.THIRD_PARTY_WIDGET
    return None


def deobfuscate(text: str) -> str:
    """``name [at] domain [dot] com`` → ``name@domain.com`` (only the bracketed forms: a bare
    "at" or "dot" is ordinary English)."""
    if "[" not in text and "(" not in text and "{" not in text and "<" not in text:
        return text
    return _undisguise(_undisguise(text, _AT, "@"), _DOT, ".")


def _undisguise(text: str, pattern: re.Pattern[str], plain: str) -> str:
    """Each match of ``pattern`` and the whitespace just before it replaced by ``plain``."""
    pieces: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        pieces += (text[last:match.start()].rstrip(), plain)
        last = match.end()
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def emails_in_text(text: str) -> list[str]:
    """Every address-shaped string in ``text``, disguises undone, in order of appearance.

    Linear in ``len(text)``: see ``_CANDIDATE``, ``_AT`` and ``_DOT``."""
    if "@" not in text and _AT.search(text) is None:
        return []
    text = deobfuscate(text)
    found = []
    end = 0  # where the last address found ends: addresses do not overlap
    for match in _CANDIDATE.finditer(text):
        local, run = match.group(1), match.group(2)
        if match.start() < end or "." not in run or local[0] == "." or local[-1] == "." or ".." in local:
            continue
        after = match.end() + len(run)
        domain = _domain(run, after == len(text) or text[after] not in _DOMAIN_CHARS)
        if domain is not None:
            found.append(f"{local}@{domain}")
            end = match.end() + len(domain)
    return found


def _domain(run: str, complete: bool) -> str | None:
    """The longest ``label.….tld`` that ``run`` (the domain characters after an "@") starts with,
    the TLD a whole dot-separated part; None if there is none. ``complete``: the run ends where the
    text's domain characters end (not at the 256-character cap), so its last part is whole."""
    parts = run.split(".")
    if not complete:
        parts.pop()  # cut off mid-part: neither a label nor a TLD
    best = 0
    for index in range(len(parts) - 1):
        if not _LABEL.fullmatch(parts[index]):
            break
        if _TLD.fullmatch(parts[index + 1]):
            best = index + 1
    return ".".join(parts[: best + 1]) if best else None


def mailto_addresses(href: str) -> list[str]:
    """The recipients of a ``mailto:`` link (``mailto:a@x.com,b@x.com?subject=…``)."""
    target = href.strip()[len("mailto:"):].split("?", 1)[0]
    return [unquote(part).strip() for part in target.split(",") if part.strip()]


def decode_cfemail(encoded: str) -> str | None:
    """Cloudflare's email protection: hex bytes, the first a key XORed into each of the others."""
    encoded = encoded.strip()
    if len(encoded) < 4 or len(encoded) % 2 or len(encoded) > 1024:
        return None
    try:
        data = bytes.fromhex(encoded)
    except ValueError:
        return None
    key = data[0]
    try:
        return bytes(b ^ key for b in data[1:]).decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode_cfemail(email: str, key: int) -> str:
    """The inverse of :func:`decode_cfemail` (the sites replica uses it to disguise addresses)."""
    return f"{key:02x}" + "".join(f"{b ^ key:02x}" for b in email.encode())

