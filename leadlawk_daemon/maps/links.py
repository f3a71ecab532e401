"""Which of a business's links is its website: booking, ordering and reservation links are not."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from leadlawk_daemon.maps.dom import Element
from leadlawk_daemon.maps.place_url import unwrap_redirect

__all__ = ["is_booking_link", "website_of"]

# Third-party booking and ordering services Google shows beside (not as) a business's website.
_BOOKING_HOSTS = (
    "visibook.com", "getsquire.com", "booksy.com", "fresha.com", "vagaro.com", "styleseat.com",
    "schedulicity.com", "setmore.com", "calendly.com", "mindbodyonline.com", "opentable.com",
    "resy.com", "exploretock.com", "sevenrooms.com", "doordash.com", "ubereats.com", "grubhub.com",
    "seamless.com", "postmates.com", "toasttab.com", "chownow.com", "slicelife.com", "order.online",
    "square.site", "squareup.com", "zocdoc.com", "thefork.com", "quandoo.com", "wolt.com",
    "deliveroo.com", "just-eat.com", "efood.gr",
)
_BOOKING_WORDS = re.compile(r"\b(book|booking|order|reserv|appointment|menu|schedul)", re.IGNORECASE)
# Bounded repeat on a bounded host (_MAX_HOST): each "google." scans at most to the end of a name.
_GOOGLE_HOST = re.compile(r"(^|\.)google\.[a-z.]{1,253}$|(^|\.)(gstatic|googleusercontent|googleapis)\.com$")
# DNS's limit on a name: a longer "host" is no website, and keeps every match on it short.
_MAX_HOST = 253


def _host(url: str) -> str:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
    return host if len(host) <= _MAX_HOST else ""


def is_booking_link(anchor: Element) -> bool:
    """Whether ``anchor`` books, orders or reserves rather than showing the business's own site."""
    item_id = anchor.get("data-item-id") or ""
    if item_id.startswith(("action:", "menu", "reserve", "order")):
        return True
    # Not aria-label: it carries the business's name, which may well contain "Book" or "Order".
    words = " ".join(anchor.get(name) or "" for name in ("data-value", "data-tooltip"))
    if _BOOKING_WORDS.search(words):
        return True
    host = _host(unwrap_redirect(anchor.get("href") or ""))
    return any(host == h or host.endswith("." + h) for h in _BOOKING_HOSTS)


def _external(href: str) -> str | None:
    url = unwrap_redirect(href)
    host = _host(url)
    if not url.startswith(("http://", "https://")) or not host or _GOOGLE_HOST.search(host):
        return None
    return url


def website_of(anchors: list[Element], *, allow_unmarked: bool) -> str | None:
    """The website among ``anchors`` (in document order): the link Google marks as the website
    (``data-item-id="authority"``, ``data-value="Website"``), else a link labelled as one, else
    (with ``allow_unmarked``) the first external link that is not a booking link."""
    marked: list[Element] = []
    labelled: list[Element] = []
    other: list[Element] = []
    for anchor in anchors:
        if anchor.get("data-item-id") == "authority" or (anchor.get("data-value") or "").lower() == "website":
            marked.append(anchor)
        elif is_booking_link(anchor):
            continue
        elif "website" in (anchor.get("aria-label") or "").lower():
            labelled.append(anchor)
        elif allow_unmarked:
            other.append(anchor)
    for anchor in (*marked, *labelled, *other):
        if (url := _external(anchor.get("href") or "")) is not None:
            return url
    return None
