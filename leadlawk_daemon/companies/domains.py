"""A website's registrable domain (public-suffix aware), and the hosts that never make a company.

The registrable domain is the site reader's (:func:`leadlawk_daemon.sites.emails.registrable_domain`,
the Public Suffix List as the ``publicsuffixlist`` package ships it, private section included):
``www.acme.co.uk`` → ``acme.co.uk``, and a builder that lists itself there (``acme.wixsite.com``,
``foo.square.site``) gives each customer its own.

Shared hosts: website builders, link pages, social pages and directories whose one domain serves
many unrelated businesses. A lead whose website is on one of them is never grouped by its domain
(its phone may still group it). The list is documented in docs/chains.md; a host matches when it
is a listed name or under one.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from leadlawk_daemon.sites.emails import domain_under, registrable_domain

__all__ = ["SHARED_HOSTS", "company_domain"]

# fmt: off
SHARED_HOSTS: frozenset[str] = frozenset({
    # Site builders and hosted shops: one domain, many customers.
    "wixsite.com", "wix.com", "editorx.io", "wixstudio.io", "business.site", "square.site", "squareup.com",
    "godaddysites.com", "godaddy.com", "squarespace.com", "weebly.com", "weeblysite.com", "wordpress.com",
    "blogspot.com", "blogger.com", "sites.google.com", "google.com", "business.google.com", "g.page",
    "jimdosite.com", "jimdo.com", "jimdofree.com", "strikingly.com", "mystrikingly.com", "webflow.io",
    "carrd.co", "myshopify.com", "shopify.com", "ueniweb.com", "yolasite.com", "site123.me", "wixstudio.com",
    "mysimplestore.com", "ecwid.com", "webnode.page", "webnode.com", "hubspotpagebuilder.com", "hs-sites.com",
    "netlify.app", "vercel.app", "pages.dev", "github.io", "herokuapp.com", "firebaseapp.com", "web.app",
    # Link pages and short links.
    "linktr.ee", "linkin.bio", "beacons.ai", "bio.link", "bit.ly", "goo.gl", "tinyurl.com", "msha.ke",
    # Social pages.
    "facebook.com", "fb.com", "fb.me", "instagram.com", "twitter.com", "x.com", "linkedin.com", "tiktok.com",
    "youtube.com", "pinterest.com", "nextdoor.com", "threads.net",
    # Directories, booking and ordering platforms.
    "yelp.com", "yellowpages.com", "angi.com", "homeadvisor.com", "thumbtack.com", "houzz.com", "bbb.org",
    "tripadvisor.com", "booksy.com", "vagaro.com", "fresha.com", "schedulicity.com", "setmore.com",
    "square.com", "toasttab.com", "doordash.com", "ubereats.com", "grubhub.com", "opentable.com",
    "zocdoc.com", "healthgrades.com", "calendly.com", "acuityscheduling.com",
})
# fmt: on
# A URL longer than this is not a business's website; it is not read at all.
_URL_MAX = 2048


def _host(url: str) -> str | None:
    text = url.strip()
    if not text or len(text) > _URL_MAX:
        return None
    if "://" not in text:
        text = "http://" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".").lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


@lru_cache(maxsize=65_536)  # a chain's branches share one website: each is read once
def company_domain(website: str | None) -> str | None:
    """The domain that makes leads one company: the website's registrable domain, or ``None``
    when there is none or the site is on a shared host (a builder, a link page, a social page)."""
    if not website:
        return None
    host = _host(website)
    if host is None or "." not in host or domain_under(host, SHARED_HOSTS):
        return None
    return registrable_domain(host)
