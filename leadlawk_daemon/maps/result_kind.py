"""Whether a result is a business or a place that is only an address or a locality.

A search can answer with a street address ("5024 S 110th St") or a town ("Papillion"): Google
shows it as a result like any other, but it has no category of a business (its locality, or a
place type such as "City", stands where the category would), no rating, no phone and no website,
and its name is an address. Such a result is ``kind: "address"``, kept out of a job's leads.
"""

from __future__ import annotations

import re

from leadlawk_daemon.listing import Listing

__all__ = ["result_kind"]

# Google's categories for places that are not businesses.
_PLACE_TYPES = frozenset(
    {
        "city",
        "town",
        "village",
        "hamlet",
        "neighborhood",
        "neighbourhood",
        "suburb",
        "borough",
        "district",
        "county",
        "state",
        "province",
        "region",
        "country",
        "street",
        "route",
        "road",
        "postal code",
        "zip code",
        "locality",
        "address",
        "building",
        "premise",
        "intersection",
    }
)
# "City in Nebraska", "Town in Bavaria", "Neighborhood in Omaha".
_TYPE_IN = re.compile(r"^(\w+)\s+in\s+\S")
# A house number before or after the street's words: "5024 S 110th St", "Hauptstraße 5",
# "R. Cecília Meireles, 1234". Bounded: the name is short, and each token is read once.
_POSTAL_CODE = re.compile(r"\d{3}")
_HOUSE_NUMBER = re.compile(r"^\d+[A-Za-z]?(?:[-/]\d+)?$")


def _address_shaped(name: str) -> bool:
    tokens = name.replace(",", " ").split()
    if len(tokens) < 2 or len(tokens) > 12:
        return False
    numbered = _HOUSE_NUMBER.match(tokens[0]) or _HOUSE_NUMBER.match(tokens[-1])
    return numbered is not None and any(any(ch.isalpha() for ch in t) for t in tokens)


def _place_type(category: str) -> bool:
    folded = category.casefold()
    if folded in _PLACE_TYPES:
        return True
    typed = _TYPE_IN.match(folded)
    return typed is not None and typed.group(1) in _PLACE_TYPES


def _locality_shaped(listing: Listing, category: str) -> bool:
    """A category that is the place's locality ("Omaha, NE", "10117 Berlin", "Papillion") rather
    than a trade: a trade's name has no comma and no postal code."""
    if "," in category or _POSTAL_CODE.search(category):
        return True
    return category in (listing.locality, listing.region) or (
        listing.address is not None and category in listing.address
    )


def result_kind(listing: Listing) -> str:
    """ "address" for a result that is only an address or a locality, else "business"."""
    if (
        listing.rating is not None
        or listing.review_count is not None
        or listing.phone is not None
        or listing.website is not None
    ):
        return "business"
    category = listing.category
    if category is not None and _place_type(category):
        return "address"
    if not _address_shaped(listing.name) and listing.name != listing.address:
        return "business"
    if category is None or _locality_shaped(listing, category):
        return "address"
    return "business"
