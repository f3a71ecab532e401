"""A business found on Google Maps: the unit every stage passes on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LISTING_FIELDS", "Listing"]


@dataclass(frozen=True, slots=True)
class Listing:
    """One business. ``None`` means unknown (not shown where it was read), never "empty".

    ``place_id`` is Google's ``ChIJ…`` id, the business's identity everywhere in LeadLawk;
    ``cid`` is the ``0x…:0x…`` feature id from the place URL.
    """

    name: str
    place_id: str | None = None
    cid: str | None = None
    category: str | None = None
    address: str | None = None
    phone: str | None = None
    phone_e164: str | None = None
    website: str | None = None
    rating: float | None = None
    review_count: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    maps_url: str | None = None
    plus_code: str | None = None
    hours: tuple[tuple[str, str], ...] | None = field(default=None)
    # The address in parts (docs/addresses.md): from Google's structured data where the page
    # carries it (``address_source`` "google"), else parsed from ``address`` by the country's
    # format ("parsed"). ``country_code`` is ISO 3166-1 alpha-2.
    street: str | None = None
    locality: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    address_source: str | None = None
    # "business", or "address": a result Google shows for a street address or a locality.
    kind: str = "business"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.hours is not None:
            out["hours"] = [list(pair) for pair in self.hours]
        return out

    def merged(self, other: Listing) -> Listing:
        """This listing with every field it lacks taken from ``other`` (same business, richer view)."""
        values = {name: getattr(self, name) for name in LISTING_FIELDS}
        for name in LISTING_FIELDS:
            if values[name] is None:
                values[name] = getattr(other, name)
        return Listing(**values)


LISTING_FIELDS: tuple[str, ...] = tuple(Listing.__dataclass_fields__)
