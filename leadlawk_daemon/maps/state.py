"""A place page's ``APP_INITIALIZATION_STATE``: the business as Google's own script receives it."""

from __future__ import annotations

import json
import re
from typing import Any

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.payload import XSSI_PREFIX, decode_payload
from leadlawk_daemon.maps.place_array import at, listing_from_place_array

__all__ = ["find_state_payloads", "find_states", "parse_place_state"]

_ASSIGNMENT = re.compile(r"APP_INITIALIZATION_STATE\s*=\s*")
# The place payload is a string nested a few levels down ([3][6] today); a bounded walk finds it
# wherever Google moves it next.
_MAX_DEPTH = 4


def _guarded_strings(value: Any, depth: int = 0) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith(XSSI_PREFIX) else []
    if isinstance(value, list) and depth < _MAX_DEPTH:
        found: list[str] = []
        for item in value:
            found.extend(_guarded_strings(item, depth + 1))
        return found
    return []


def find_states(text: str) -> list[Any]:
    """The value of every ``APP_INITIALIZATION_STATE=…`` assignment of a page, decoded."""
    decoder = json.JSONDecoder()
    states: list[Any] = []
    for match in _ASSIGNMENT.finditer(text):
        try:
            state, _ = decoder.raw_decode(text, match.end())
        except (ValueError, RecursionError):
            # RecursionError: arrays nested past the interpreter's depth, which no real page has.
            continue
        states.append(state)
    return states


def find_state_payloads(text: str) -> list[Any]:
    """The decoded payloads embedded in every ``APP_INITIALIZATION_STATE=…`` assignment of a page."""
    payloads: list[Any] = []
    for state in find_states(text):
        for guarded in _guarded_strings(state):
            try:
                payloads.append(decode_payload(guarded))
            except ValueError:
                continue
    return payloads


def _from_payload(payload: Any) -> Listing | None:
    # The place array is element [6] of the payload; a bare place array is accepted too.
    return listing_from_place_array(at(payload, 6)) or listing_from_place_array(payload)


def parse_place_state(text: str) -> Listing | None:
    """The business in a place payload (with or without its ``)]}'`` prefix) or in a page's script
    text holding ``window.APP_INITIALIZATION_STATE=…``; ``None`` when there is none."""
    if _ASSIGNMENT.search(text):
        for payload in find_state_payloads(text):
            if (listing := _from_payload(payload)) is not None:
                return listing
        return None
    try:
        payload = decode_payload(text)
    except ValueError:
        return None
    return _from_payload(payload)
