"""What a Google Maps place URL says about its business, and links unwrapped from Google redirects.

A place URL is the most stable signal Google serves: its ``data=`` blob carries the feature id
(``!1s0x…:0x…``), the place's own coordinates (``!3d<lat>!4d<lng>``) and the place id
(``!19sChIJ…``), whatever the page's markup looks like this month.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

__all__ = ["PlaceRef", "is_place_url", "parse_place_url", "unwrap_redirect"]

_CID = re.compile(r"!1s(0x[0-9a-fA-F]+:0x[0-9a-fA-F]+)")
_COORDS = re.compile(r"!3d(-?\d+(?:\.\d+)?)!4d(-?\d+(?:\.\d+)?)")
_VIEWPORT = re.compile(r"/@(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)")
_PLACE_ID = re.compile(r"(?:!19s|place_id[:=]|query_place_id=)(ChIJ[A-Za-z0-9_-]+)")
_NAME = re.compile(r"/maps/place/([^/?#@]+)")


@dataclass(frozen=True, slots=True)
class PlaceRef:
    """The identity and position a place URL carries; ``None`` where the URL does not say."""

    place_id: str | None
    cid: str | None
    latitude: float | None
    longitude: float | None
    name: str | None


def is_place_url(url: str) -> bool:
    return "/maps/place/" in url or "!19sChIJ" in url


def _coordinate(text: str, bound: float) -> float | None:
    value = float(text)
    return value if math.isfinite(value) and -bound <= value <= bound else None


def parse_place_url(url: str) -> PlaceRef:
    """The ids and coordinates in ``url`` (percent-encoded or not)."""
    text = unquote(url)
    cid = _CID.search(text)
    place_id = _PLACE_ID.search(text)
    coords = _COORDS.search(text)
    if coords is None:
        # The viewport centre is only a stand-in when the place's own coordinates are absent.
        coords = _VIEWPORT.search(text)
    latitude = longitude = None
    if coords is not None:
        latitude = _coordinate(coords.group(1), 90.0)
        longitude = _coordinate(coords.group(2), 180.0)
        if latitude is None or longitude is None:
            latitude = longitude = None
    name_match = _NAME.search(url)
    name = (unquote_plus(name_match.group(1)).strip() or None) if name_match else None
    return PlaceRef(
        place_id=place_id.group(1) if place_id else None,
        cid=cid.group(1).lower() if cid else None,
        latitude=latitude,
        longitude=longitude,
        name=name,
    )


def unwrap_redirect(href: str) -> str:
    """The destination of a Google ``/url?q=…`` redirect; any other link unchanged."""
    try:
        parts = urlsplit(href.strip())
    except ValueError:  # "Invalid IPv6 URL" and the like: not a redirect we can read
        return href.strip()
    if parts.path.endswith("/url"):
        query = parse_qs(parts.query)
        for key in ("q", "url"):
            for value in query.get(key, ()):
                if value.startswith(("http://", "https://")):
                    return value
    return href.strip()
