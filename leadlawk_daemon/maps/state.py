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
# How many of a payload's elements are looked at for a place array Google moved (it has ~30).
_MAX_SLOTS = 64


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


def _identified(place: Any) -> bool:
    """A place array names its place by an id (``[78]`` ChIJ…, ``[10]`` 0x…:0x…) or coordinates."""
    place_id, cid = at(place, 78), at(place, 10)
    return (
        (isinstance(place_id, str) and place_id.startswith("ChIJ"))
        or (isinstance(cid, str) and cid.startswith("0x"))
        or isinstance(at(place, 9, 2), float)
    )


def _from_payload(payload: Any) -> Listing | None:
    # The place array is element [6] of the payload; a bare place array is accepted too; and,
    # should Google move it, any element of the payload that is a place array with ids.
    found = listing_from_place_array(at(payload, 6)) or listing_from_place_array(payload)
    if found is not None or not isinstance(payload, list):
        return found
    for item in payload[:_MAX_SLOTS]:
        if _identified(item) and (listing := listing_from_place_array(item)) is not None:
            return listing
    return None


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
