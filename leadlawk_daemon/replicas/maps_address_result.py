"""A search naming a street address ("plumbers near 5024 S 110th St"): Google lists the address
itself among the results, as a card with the address for a name, its locality where a business's
category would be, and no rating, phone or website. A scraper must not take it for a business
(docs/addresses.md#results-that-are-not-businesses)."""

from __future__ import annotations

import re

__all__ = ["address_in_query"]

# "near 5024 S 110th St", "at 12 Main Street": a house number, then a few words ending in a street type.
_NEAR_ADDRESS = re.compile(
    r"\b(?:near|at|on)\s+(\d{1,6}(?:\s+[\w.'-]{1,30}){1,5}?\s+"
    r"(?:st|street|ave|avenue|rd|road|blvd|dr|drive|ln|lane|way|pkwy|cir|plaza))\b",
    re.IGNORECASE,
)


def address_in_query(query: str) -> str | None:
    """The street address a query names after "near", "at" or "on", if any."""
    match = _NEAR_ADDRESS.search(query[:200])
    return match.group(1) if match else None
