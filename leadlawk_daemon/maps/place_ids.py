"""A place's ids and coordinates from wherever its page carries them.

A saved place page's URL may carry no ids at all (``/maps/place/UPPERCUTS+barbershop``); the page
itself still names its place in several spots, each kept by some captures and not others: the
``APP_INITIALIZATION_STATE`` (read by :mod:`leadlawk_daemon.maps.state`), data attributes
(``data-pid``, ``data-fid``, ``data-lat``), the head's ``<link>``/``<meta>`` (a canonical place
URL, the static map's ``center=``), and the panel's own links (reviews ``placeid=``, a share or
directions link's ``!1s<cid>``, ``!3d<lat>!4d<lng>``). Each field is taken from the first of these
that has it; the caller has cut the other businesses' links out of the elements first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import unquote

from leadlawk_daemon.maps.dom import Element
from leadlawk_daemon.maps.place_url import PlaceRef

__all__ = ["ids_from_elements", "merge_refs"]

_PLACE_ID = re.compile(r"(?:!19s|place_?id[:=]|query_place_id=|^)(ChIJ[A-Za-z0-9_-]{10,200})")
_CID = re.compile(r"(?:!1s|ftid=|^)(0x[0-9a-fA-F]{1,16}:0x[0-9a-fA-F]{1,16})")
_COORDS = re.compile(r"(?:!3d|center=|[?&]ll=|[?&]q=)(-?\d{1,3}(?:\.\d{1,15})?)(?:!4d|,)(-?\d{1,3}(?:\.\d{1,15})?)")
_NUMBER = re.compile(r"^-?\d{1,3}(?:\.\d{1,15})?$")
# Longer attribute values are no id or link Google writes: not read (bounded work per element).
_MAX_VALUE = 4096

_ID_ATTRS = ("data-pid", "data-place-id", "data-placeid", "data-cid", "data-fid", "data-ftid", "data-feature-id")
_LAT_ATTRS = ("data-lat", "data-latitude")
_LNG_ATTRS = ("data-lng", "data-lon", "data-longitude")
_LINK_ATTRS = ("href", "content", "data-url", "data-href")


@dataclass(frozen=True, slots=True)
class _Found:
    place_id: str | None = None
    cid: str | None = None
    latitude: float | None = None
    longitude: float | None = None


def _coordinate(text: str, bound: float) -> float | None:
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) and -bound <= value <= bound else None


def _read(text: str, found: _Found) -> _Found:
    text = unquote(text[:_MAX_VALUE])
    if found.place_id is None and (match := _PLACE_ID.search(text)) is not None:
        found = replace(found, place_id=match.group(1))
    if found.cid is None and (match := _CID.search(text)) is not None:
        found = replace(found, cid=match.group(1).lower())
    if found.latitude is None and (match := _COORDS.search(text)) is not None:
        latitude, longitude = _coordinate(match.group(1), 90.0), _coordinate(match.group(2), 180.0)
        if latitude is not None and longitude is not None:
            found = replace(found, latitude=latitude, longitude=longitude)
    return found


def _attributes(element: Element, found: _Found) -> _Found:
    for name in _ID_ATTRS:
        if (value := element.get(name)) is not None:
            found = _read(value.strip(), found)
    if found.latitude is None:
        lat = next((v for n in _LAT_ATTRS if (v := element.get(n)) is not None), None)
        lng = next((v for n in _LNG_ATTRS if (v := element.get(n)) is not None), None)
        if lat is not None and lng is not None:
            latitude, longitude = _coordinate(lat.strip(), 90.0), _coordinate(lng.strip(), 180.0)
            if latitude is not None and longitude is not None:
                found = replace(found, latitude=latitude, longitude=longitude)
    return found


def _complete(found: _Found) -> bool:
    return None not in (found.place_id, found.cid, found.latitude)


def ids_from_elements(head: Iterable[Element], own: Iterable[Element]) -> PlaceRef:
    """The ids and coordinates in data attributes (of ``own``, the page's place's elements), then
    in the ``<link>``/``<meta>`` of ``head``, then in the links among ``own``."""
    found = _Found()
    own = list(own)
    for element in own:
        found = _attributes(element, found)
        if _complete(found):
            break
    for element in head:
        if _complete(found):
            break
        if element.tag in {"link", "meta"}:
            for name in _LINK_ATTRS:
                if (value := element.get(name)) is not None:
                    found = _read(value, found)
    for element in own:
        if _complete(found):
            break
        for name in _LINK_ATTRS:
            if (value := element.get(name)) is not None and element.tag not in {"img", "script"}:
                found = _read(value, found)
    return PlaceRef(found.place_id, found.cid, found.latitude, found.longitude, None)


def merge_refs(*refs: PlaceRef | None) -> PlaceRef | None:
    """One reference with each field from the first of ``refs`` that has it."""
    present = [ref for ref in refs if ref is not None]
    if not present:
        return None

    def first(field: str) -> object:
        return next((value for ref in present if (value := getattr(ref, field)) is not None), None)

    latitude = next((r.latitude for r in present if r.latitude is not None and r.longitude is not None), None)
    longitude = next((r.longitude for r in present if r.latitude is not None and r.longitude is not None), None)
    place_id, cid, name = first("place_id"), first("cid"), first("name")
    return PlaceRef(
        place_id if isinstance(place_id, str) else None,
        cid if isinstance(cid, str) else None,
        latitude,
        longitude,
        name if isinstance(name, str) else None,
    )
