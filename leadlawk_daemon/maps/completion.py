"""A listing made complete once every page about it is read: its address parts, its country, its
phone in E.164 by that country, and its kind.

Runs on the merged listing (a result card with its place page), so Google's structured parts, when
any page carried them, win over a parse of the formatted address. The country is, in order:
Google's data, the country the address names, the job's location (``country_hint``), a format
distinctive enough to tell it. It is cheap (one address line of at most ``MAX_ADDRESS``
characters, linear patterns, one phone parse), so it runs where the listing is emitted, without
a trip to the parse pool that would cost more than the work.
"""

from __future__ import annotations

from dataclasses import replace

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.address_parse import parse_address
from leadlawk_daemon.maps.phone import to_e164
from leadlawk_daemon.maps.result_kind import result_kind

__all__ = ["complete_listing"]


def _has_google_parts(listing: Listing) -> bool:
    return listing.address_source == "google" and any(
        (listing.street, listing.locality, listing.region, listing.postal_code)
    )


def complete_listing(listing: Listing, country_hint: str | None = None) -> Listing:
    """``listing`` with its address parts (parsed where Google's data had none), country, E.164
    phone and kind filled in; a listing already complete is returned unchanged."""
    changes: dict[str, object] = {}
    country = listing.country_code
    if not _has_google_parts(listing):
        parsed = parse_address(listing.address, country or country_hint)
        if parsed is not None:
            country = country or parsed.country_code
            changes.update(
                street=parsed.street,
                locality=parsed.locality,
                region=parsed.region,
                postal_code=parsed.postal_code,
                address_source="parsed",
            )
    country = country or country_hint
    if country != listing.country_code:
        changes["country_code"] = country
    if (
        listing.phone_e164 is None
        and listing.phone is not None
        and country is not None
        and (e164 := to_e164(listing.phone, country=country)) is not None
    ):
        changes["phone_e164"] = e164
    completed = replace(listing, **changes) if changes else listing  # type: ignore[arg-type]
    kind = result_kind(completed)
    return completed if kind == completed.kind else replace(completed, kind=kind)
