"""The Google Maps parser: every shape Google serves, read into listings, plus a sniffer.

Shapes: a results feed (``parse_feed``), a place page's panel (``parse_place_panel``), a place
page's ``APP_INITIALIZATION_STATE`` (``parse_place_state``) and a ``search?tbm=map`` response
(``parse_search_json``). All are pure functions of their text; none raises on bad markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.feed import FeedParse, parse_feed
from leadlawk_daemon.maps.panel import parse_place_panel
from leadlawk_daemon.maps.payload import decode_payload
from leadlawk_daemon.maps.place_array import at
from leadlawk_daemon.maps.search_json import parse_search_json
from leadlawk_daemon.maps.state import parse_place_state

__all__ = [
    "Detection",
    "FeedParse",
    "UnrecognizedPage",
    "detect",
    "detect_and_parse",
    "parse_feed",
    "parse_place_panel",
    "parse_place_state",
    "parse_search_json",
]

# The information rows only a place panel has.
_PANEL_MARKS = (
    'data-item-id="address"', 'data-item-id="authority"', 'data-item-id="phone:', 'data-item-id="oloc"',
)


class UnrecognizedPage(ValueError):
    """The text is none of the shapes Google serves (or Google changed one beyond recognition)."""


@dataclass(frozen=True, slots=True)
class Detection:
    """Which shape a text is, and what it holds."""

    shape: str  # "feed" | "panel" | "place_state" | "search_json"
    listings: list[Listing] = field(default_factory=list)
    malformed: int = 0


def _is_search(payload: Any) -> bool:
    results = at(payload, 0, 1)
    return isinstance(results, list) and any(isinstance(at(r, 14), list) for r in results[1:])


def _detect_json(text: str) -> Detection:
    try:
        payload = decode_payload(text)
    except ValueError as exc:
        raise UnrecognizedPage(f"looks like JSON but is {exc}") from None
    if _is_search(payload):
        return Detection("search_json", parse_search_json(text))
    if (listing := parse_place_state(text)) is not None:
        return Detection("place_state", [listing])
    raise UnrecognizedPage("JSON, but neither a search?tbm=map response nor a place-state payload")


def detect(text: str, url: str | None = None) -> Detection:
    """The shape of ``text`` and its listings; raises ``UnrecognizedPage`` saying what it saw when
    the text is no shape the parser knows."""
    body = text.lstrip("\ufeff \t\r\n")
    if body.startswith((")]}'", "[", "{")):
        return _detect_json(body)
    if "<" not in body:
        raise UnrecognizedPage("neither HTML nor JSON")
    if any(mark in body for mark in _PANEL_MARKS) and (panel := parse_place_panel(body, url)) is not None:
        return Detection("panel", [panel])
    feed = parse_feed(body)
    if feed.listings or feed.malformed or feed.end_of_list:
        return Detection("feed", feed.listings, feed.malformed)
    if "APP_INITIALIZATION_STATE" in body and (state := parse_place_state(body)) is not None:
        return Detection("place_state", [state])
    if (panel := parse_place_panel(body, url)) is not None and 'role="main"' in body:
        return Detection("panel", [panel])
    raise UnrecognizedPage("HTML without result cards, a place panel or an APP_INITIALIZATION_STATE script")


def detect_and_parse(text: str, url: str | None = None) -> list[Listing]:
    """The listings in ``text``, whichever shape it is; raises ``UnrecognizedPage`` when it is none."""
    return detect(text, url).listings
