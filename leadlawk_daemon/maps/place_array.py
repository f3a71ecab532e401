"""A business from the place array Google embeds in place pages and search responses.

The same positional array appears in ``APP_INITIALIZATION_STATE`` (element ``[6]`` of the place
payload) and in ``search?tbm=map`` results (``[0][1][i][14]``). Positions are Google's, read
defensively: any slot may be missing or of another type, and then that field is unknown.
"""

from __future__ import annotations

import math
from typing import Any

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.address_parts import google_parts
from leadlawk_daemon.maps.field_text import field_text
from leadlawk_daemon.maps.phone import to_e164
from leadlawk_daemon.maps.place_url import parse_place_url, unwrap_redirect
from leadlawk_daemon.maps.positional import at

__all__ = ["at", "listing_from_place_array"]


def _text(value: Any) -> str | None:
    return field_text(value) if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _phone(place: list[Any]) -> tuple[str | None, str | None]:
    entry = at(place, 178, 0)
    shown = _text(at(entry, 0))
    forms = at(entry, 1)
    international = None
    if isinstance(forms, list):
        # Each form is [text, kind]; kind 2 is the international rendering.
        for form in forms:
            if at(form, 1) == 2:
                international = _text(at(form, 0))
    tel = _text(at(entry, 5, 0))
    return shown, to_e164(shown, international, _text(at(entry, 3)), tel)


def _hours(place: list[Any]) -> tuple[tuple[str, str], ...] | None:
    days = at(place, 34, 1)
    if not isinstance(days, list):
        return None
    pairs: list[tuple[str, str]] = []
    for day in days:
        name = _text(at(day, 0))
        spans = at(day, 1)
        if name is None or not isinstance(spans, list):
            continue
        shown = [text for span in spans if (text := _text(span))]
        pairs.append((name, ", ".join(shown)))
    return tuple(pairs) or None


def _address(place: list[Any], name: str) -> str | None:
    address = _text(at(place, 39))
    if address is None and (full := _text(at(place, 18))) is not None:
        # This slot repeats the name in front of the address.
        address = full.removeprefix(name).lstrip(", ") or None
    if address is None and isinstance(parts := at(place, 2), list):
        address = ", ".join(text for part in parts if (text := _text(part))) or None
    return address


def _rating(place: list[Any]) -> tuple[float | None, int | None]:
    rating = _number(at(place, 4, 7))
    if rating is not None and not 0.0 <= rating <= 5.0:
        rating = None
    count = _number(at(place, 4, 8))
    return rating, int(count) if count is not None and count >= 0 else None


def listing_from_place_array(place: Any) -> Listing | None:
    """The business in ``place``; ``None`` when it has no name (then it is not a place array)."""
    name = _text(at(place, 11))
    if name is None or not isinstance(place, list):
        return None
    place_id = _text(at(place, 78))
    maps_url = _text(at(place, 27))
    ref = parse_place_url(maps_url) if maps_url else None
    latitude = _number(at(place, 9, 2))
    longitude = _number(at(place, 9, 3))
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        latitude = ref.latitude if ref else None
        longitude = ref.longitude if ref else None
    cid = _text(at(place, 10)) or (ref.cid if ref else None)
    category = _text(at(place, 13, 0))
    website = _text(at(place, 7, 0))
    phone, phone_e164 = _phone(place)
    rating, review_count = _rating(place)
    if maps_url is None and place_id is not None:
        maps_url = f"https://www.google.com/maps/place/?q=place_id:{place_id}"
    parts = google_parts(place)
    return Listing(
        name=name,
        place_id=place_id if place_id and place_id.startswith("ChIJ") else None,
        cid=cid if cid and cid.startswith("0x") else None,
        category=category,
        address=_address(place, name),
        phone=phone,
        phone_e164=phone_e164,
        website=unwrap_redirect(website) if website else None,
        rating=rating,
        review_count=review_count,
        latitude=latitude,
        longitude=longitude,
        maps_url=maps_url,
        plus_code=_text(at(place, 183, 2, 2, 0)) or _text(at(place, 183, 2, 1, 0)),
        hours=_hours(place),
        street=parts.street if parts else None,
        locality=parts.locality if parts else None,
        region=parts.region if parts else None,
        postal_code=parts.postal_code if parts else None,
        country_code=parts.country_code if parts else None,
        # Google's country alone is no parsed address: the parts then come from the address line.
        address_source="google" if parts is not None and parts.located() else None,
    )
