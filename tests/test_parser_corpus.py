"""The parser against every real Google Maps capture, field by field (values from the corpus README)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.parse_command import OUTPUT_FIELDS, run_parse
from leadlawk_daemon.maps.parser import (
    detect_and_parse,
    parse_feed,
    parse_place_panel,
    parse_place_state,
    parse_search_json,
)

FEED = "standard-businesses_website-nowebsite-website.html"
COMPACT = "compact-business-listing.html"
PANEL = "compact-business-listing-expanded-with-website.html"
STATE = "place-state-kipriakon.json"
SEARCH = "search-response-coffee.json"
# The URL the scraper opened for the panel (the panel markup itself carries no place id).
PANEL_URL = (
    "https://www.google.com/maps/place/UPPERCUTS+barbershop/data=!4m7!3m6!1s0x87938b0c0c1f0001:0x1d2f3e4a5b6c7d8e"
    "!8m2!3d41.1563!4d-96.0420!16s%2Fg%2F11b6!19sChIJuppercutsTESTid0000?hl=en"
)

STRAIGHT_LINE: dict[str, Any] = {
    "name": "Straight Line Painting Omaha",
    "place_id": "ChIJ_9zB9W_zk4cRYK1fxz_bCyo",
    "cid": "0x8793f36ff5c1dcff:0x2a0bdb3fc75fad60",
    "latitude": 41.2083492,
    "longitude": -96.0847927,
    "rating": 5.0,
    "review_count": 25,
    "category": "Painter",
    "address": "5024 S 110th St",
    "phone": "(402) 715-0110",
    "phone_e164": "+14027150110",
    "website": "https://slpaintingomaha.com/",
}
PERCEPTIVE: dict[str, Any] = {
    "name": "Perceptive Painting LLC",
    "place_id": "ChIJM2qQbvCtRaERWbY8OlXKPig",
    "latitude": 41.250634,
    "longitude": -95.812667,
    "rating": 5.0,
    "review_count": 18,
    "category": "Painter",
    "address": None,
    "phone": "(402) 812-9182",
    "website": None,
}
ROSY_CLAY: dict[str, Any] = {
    "name": "The Rosy Clay Co.",
    "place_id": "ChIJG5J5xviLk4cROaAFYHOT3vM",
    "latitude": 41.157167,
    "longitude": -96.043109,
    "rating": 5.0,
    "review_count": 14,
    "category": "Pottery classes",
    "address": "138 N Washington St Suite 101",
    "phone": "(531) 466-2633",
    "website": "https://therosyclayco.com/",
}
PAPILLION: dict[str, Any] = {
    "name": "Papillion Barbers",
    "place_id": "ChIJlf83wOaKk4cRffVjfEnoMaw",
    "latitude": 41.1566151,
    "longitude": -96.0427488,
    "rating": 4.8,
    "review_count": 114,
    "category": "Barber shop",
    "address": "103 N Washington St",
    "phone": None,
    "website": None,
}
UPPERCUTS: dict[str, Any] = {
    "name": "UPPERCUTS barbershop",
    "rating": 4.7,
    "review_count": 145,
    "category": "Barber shop",
    "address": "110 Cedardale Rd, Papillion, NE 68046",
    "phone": "(402) 505-3884",
    "phone_e164": "+14025053884",
    "website": "https://www.uppercutsbarbershops.com/home",
    "plus_code": "4XV5+G5 Papillion, Nebraska",
}
KIPRIAKON: dict[str, Any] = {
    "name": "Kipriakon",
    "place_id": "ChIJDdnwdv0y5xQRRytw1ihZQeU",
    "cid": "0x14e732fd76f0d90d:0xe5415928d6702b47",
    "latitude": 34.6705954,
    "longitude": 33.0424567,
    "rating": 4.2,
    "review_count": 396,
    "category": "Restaurant",
    "address": "Old port, Limassol 3042",
    "phone": "25 101555",
    "phone_e164": "+35725101555",
    "website": None,
}


def assert_fields(listing: Listing | None, expected: dict[str, Any]) -> None:
    assert listing is not None
    for name, value in expected.items():
        got = getattr(listing, name)
        if isinstance(value, float):
            assert got == pytest.approx(value, abs=1e-6), name
        else:
            assert got == value, name


def read(corpus: Path, name: str) -> str:
    return (corpus / name).read_text(encoding="utf-8")


def test_feed_capture_gives_three_businesses_once_each_in_feed_order(corpus: Path) -> None:
    result = parse_feed(read(corpus, FEED))
    assert [listing.name for listing in result.listings] == [
        "Straight Line Painting Omaha",
        "Perceptive Painting LLC",
        "The Rosy Clay Co.",
    ]
    assert result.malformed == 0
    assert result.end_of_list is False
    for listing, expected in zip(result.listings, (STRAIGHT_LINE, PERCEPTIVE, ROSY_CLAY), strict=True):
        assert_fields(listing, expected)
        assert listing.maps_url is not None
        assert expected["place_id"] in listing.maps_url


def test_compact_card_has_no_phone_or_website_and_drops_the_visited_link_suffix(corpus: Path) -> None:
    result = parse_feed(read(corpus, COMPACT))
    assert len(result.listings) == 1
    assert_fields(result.listings[0], PAPILLION)
    assert result.listings[0].cid == "0x87938ae6c037ff95:0xac31e8497c63f57d"


def test_panel_reads_its_own_business_and_takes_identity_from_the_url(corpus: Path) -> None:
    listing = parse_place_panel(read(corpus, PANEL), PANEL_URL)
    assert_fields(listing, UPPERCUTS)
    assert listing is not None
    assert listing.place_id == "ChIJuppercutsTESTid0000"
    assert listing.cid == "0x87938b0c0c1f0001:0x1d2f3e4a5b6c7d8e"
    assert listing.latitude == pytest.approx(41.1563)
    assert listing.maps_url == PANEL_URL


def test_panel_without_url_has_unknown_place_id_and_no_booking_link(corpus: Path) -> None:
    listing = parse_place_panel(read(corpus, PANEL))
    assert_fields(listing, {**UPPERCUTS, "place_id": None, "latitude": None})
    assert listing is not None
    assert "visibook" not in (listing.website or "")


def test_place_state_capture(corpus: Path) -> None:
    listing = parse_place_state(read(corpus, STATE))
    assert_fields(listing, KIPRIAKON)
    assert listing is not None
    assert listing.hours is not None
    assert listing.hours[0][0] == "Monday"


def test_search_response_gives_twenty_businesses(corpus: Path) -> None:
    listings = parse_search_json(read(corpus, SEARCH))
    assert len(listings) == 20
    assert len({listing.place_id for listing in listings}) == 20
    assert_fields(
        listings[0],
        {
            "name": "Dream Coffee",
            "place_id": "ChIJoRVrMS-joRQRkzrMbbRUnBY",
            "rating": 4.8,
            "review_count": 48,
        },
    )
    busiest = max(listings, key=lambda listing: listing.review_count or 0)
    assert (busiest.name, busiest.review_count) == ("NooK", 1670)
    assert all(listing.latitude is not None and listing.longitude is not None for listing in listings)


@pytest.mark.parametrize(
    ("name", "count", "first"),
    [
        (FEED, 3, "Straight Line Painting Omaha"),
        (COMPACT, 1, "Papillion Barbers"),
        (PANEL, 1, "UPPERCUTS barbershop"),
        (STATE, 1, "Kipriakon"),
        (SEARCH, 20, "Dream Coffee"),
    ],
)
def test_sniffer_recognises_every_capture(corpus: Path, name: str, count: int, first: str) -> None:
    listings = detect_and_parse(read(corpus, name))
    assert len(listings) == count
    assert listings[0].name == first


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (FEED, [STRAIGHT_LINE, PERCEPTIVE, ROSY_CLAY]),
        (COMPACT, [PAPILLION]),
        (PANEL, [{**UPPERCUTS, "place_id": None}]),
        (STATE, [KIPRIAKON]),
        (SEARCH, [{"name": "Dream Coffee", "rating": 4.8, "review_count": 48}]),
    ],
)
def test_parse_command_prints_one_json_object_per_listing(
    corpus: Path, name: str, expected: list[dict[str, Any]]
) -> None:
    out, err = io.StringIO(), io.StringIO()
    path = str(corpus / name)
    assert run_parse([path], out, err) == 0
    assert err.getvalue() == ""
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert records
    for record in records:
        assert list(record) == [*OUTPUT_FIELDS, "source"]
        assert record["source"] == path
    for record, fields in zip(records, expected, strict=False):
        for key, value in fields.items():
            if key in OUTPUT_FIELDS:
                assert record[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_parse_command_names_unreadable_and_unparsable_files_and_still_prints_the_rest(
    corpus: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.html"
    garbage.write_text("<html><body><p>nothing here</p></body></html>")
    missing = tmp_path / "missing.json"
    broken = tmp_path / "broken.json"
    broken.write_text(")]}'\n[[1, 2")
    out, err = io.StringIO(), io.StringIO()
    status = run_parse([str(missing), str(corpus / COMPACT), str(garbage), str(broken)], out, err)
    assert status == 1
    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{missing}: cannot read")
    assert lines[1].startswith(f"{garbage}: cannot parse")
    assert lines[2].startswith(f"{broken}: cannot parse")
    assert [orjson.loads(line)["name"] for line in out.getvalue().splitlines()] == ["Papillion Barbers"]


def test_largest_capture_parses_in_well_under_a_second(corpus: Path) -> None:
    """A regression guard on cost (the figure measured is ~50 ms; the bound leaves room for a busy CI)."""
    html = read(corpus, PANEL)
    assert len(html) > 500_000
    started = time.process_time()  # the parse's own cost: wall time would count waiting for a busy core
    parse_place_panel(html, PANEL_URL)
    parse_feed(html)
    assert time.process_time() - started < 1.0
