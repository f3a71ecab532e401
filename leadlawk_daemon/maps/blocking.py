"""Signs that Google Maps is pushing back, and the error that says so.

Google answers a scraper it distrusts with its ``/sorry/`` page (a captcha form), with the
consent interstitial over and over, or with a results feed that stays empty. Each is a
:class:`BlockedError`: it feeds the Google Maps circuit breaker, so that we back off instead of
digging the hole deeper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from leadlawk_daemon.maps.consent import CONSENT_SELECTOR

__all__ = [
    "CAPTCHA_SELECTOR",
    "CONSENT_LOOP",
    "CONSENT_SELECTOR",
    "PROBE_JS",
    "BlockedError",
    "PageProbe",
    "block_signal",
    "html_block_signal",
]

CAPTCHA_SELECTOR = 'form#captcha-form, #captcha-form, .g-recaptcha, #recaptcha, form[action*="/sorry/"]'
# The reason of the block when Google serves its consent page again after it was answered (the
# answer not kept: Google distrusts this exit). The egress pool opens that exit on it, as on /sorry/.
CONSENT_LOOP = "a consent loop"
_CAPTCHA_MARKUP = re.compile(
    r"""id=["']?captcha-form|class=["'][^"']*\bg-recaptcha\b|action=["'][^"']*/sorry/""", re.IGNORECASE
)

# What the scraper needs to know about the page it is on, in one round trip.
PROBE_JS = f"""() => ({{
  url: location.href,
  captcha: !!document.querySelector({CAPTCHA_SELECTOR!r}),
  consent: location.hostname.startsWith("consent.") || location.pathname.startsWith("/consent")
    || !!document.querySelector({CONSENT_SELECTOR!r}),
  feed: !!document.querySelector('div[role="feed"]'),
  place: location.pathname.includes("/maps/place/"),
}})"""


class BlockedError(Exception):
    """Google refused us (``reason`` says how, ``url`` where): back off, do not retry at once."""

    def __init__(self, reason: str, url: str) -> None:
        super().__init__(f"Google Maps blocked the scraper: {reason} ({url})")
        self.reason = reason
        self.url = url


@dataclass(frozen=True, slots=True)
class PageProbe:
    url: str
    captcha: bool
    consent: bool
    feed: bool
    place: bool

    @classmethod
    def from_js(cls, raw: Any) -> PageProbe:
        if not isinstance(raw, dict):
            raise ValueError(f"page probe: expected an object, got {type(raw).__name__}")
        return cls(
            url=str(raw.get("url", "")),
            captcha=bool(raw.get("captcha")),
            consent=bool(raw.get("consent")),
            feed=bool(raw.get("feed")),
            place=bool(raw.get("place")),
        )


def _is_sorry(url: str) -> bool:
    try:
        return urlsplit(url).path.startswith("/sorry/")
    except ValueError:
        return "/sorry/" in url


def block_signal(probe: PageProbe) -> str | None:
    """The reason a rendered page is a block, or None."""
    if _is_sorry(probe.url):
        return "the /sorry/ page"
    if probe.captcha:
        return "a captcha form"
    return None


def html_block_signal(url: str, html: str) -> str | None:
    """The same judgement for a page fetched without rendering (a place page)."""
    if _is_sorry(url):
        return "the /sorry/ page"
    if _CAPTCHA_MARKUP.search(html):
        return "a captcha form"
    return None
