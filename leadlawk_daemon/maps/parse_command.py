"""``leadlawk parse FILE…``: what the parser reads from saved pages, so a markup change shows at once."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import orjson

from leadlawk_daemon.maps.completion import complete_listing
from leadlawk_daemon.maps.parser import UnrecognizedPage, detect

__all__ = ["OUTPUT_FIELDS", "run_parse"]

OUTPUT_FIELDS = (
    "place_id", "cid", "name", "category", "address", "phone", "website",
    "rating", "review_count", "latitude", "longitude", "maps_url",
    "phone_e164", "street", "locality", "region", "postal_code", "country_code", "address_source", "kind",
)


def run_parse(paths: Sequence[str], out: TextIO, err: TextIO | None = None) -> int:
    """Print one JSON object per listing found in each file; 1 when any file could not be read or
    parsed (each such file named on ``err`` with what was wrong), else 0."""
    errors = sys.stderr if err is None else err
    status = 0
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}", file=errors)
            status = 1
            continue
        try:
            found = detect(text)
        except UnrecognizedPage as exc:
            print(f"{path}: cannot parse: {exc}", file=errors)
            status = 1
            continue
        for listing in found.listings:
            # As a job would store it: address parts, country, E.164 phone and kind (no job's
            # location to go by here: the page's own data and the address's format decide).
            listing = complete_listing(listing)
            record = {name: getattr(listing, name) for name in OUTPUT_FIELDS}
            record["source"] = path
            out.write(orjson.dumps(record).decode() + "\n")
        if found.malformed:
            print(f"{path}: {found.malformed} malformed {found.shape} card(s) skipped", file=errors)
            status = 1
        if not found.listings:
            print(f"{path}: no listings found in this {found.shape.replace('_', ' ')}", file=errors)
            status = 1
    return status
