"""A ``search?tbm=map`` response: the businesses Google's own search call returns."""

from __future__ import annotations

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.payload import decode_payload
from leadlawk_daemon.maps.place_array import at, listing_from_place_array

__all__ = ["parse_search_json"]


def parse_search_json(text: str) -> list[Listing]:
    """Every business in the response, in result order, once each; raises ``ValueError`` when the
    text is not JSON."""
    results = at(decode_payload(text), 0, 1)
    if not isinstance(results, list):
        return []
    listings: list[Listing] = []
    seen: set[str] = set()
    # Element 0 describes the query itself; places start at 1.
    for result in results[1:]:
        listing = listing_from_place_array(at(result, 14))
        if listing is None:
            continue
        key = listing.place_id or listing.cid or listing.name
        if key in seen:
            continue
        seen.add(key)
        listings.append(listing)
    return listings
