"""General parser rules for pages the parser has not seen, each on pages shaped like the real captures
(the shared corpus, changed the way other captures differ from them):

* a place's ids and coordinates come from wherever the page carries them: URL, page state, data
  attributes, links;
* no field value is an icon glyph (Unicode private use) or punctuation alone;
* a result that is an address or a locality, not a business, is ``kind: "address"``.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.completion import complete_listing
from leadlawk_daemon.maps.feed import parse_feed
from leadlawk_daemon.maps.panel import parse_place_panel
from leadlawk_daemon.maps.parse_pool import parse_place_page
from leadlawk_daemon.maps.parser import detect
from leadlawk_daemon.maps.payload import decode_payload
from leadlawk_daemon.maps.result_kind import result_kind
from leadlawk_daemon.replicas.maps_business import generate_answer_set
from leadlawk_daemon.replicas.maps_locale import locale_for
from leadlawk_daemon.replicas.maps_markup import feed_card, results_page
from tests.linearity import assert_linear

PANEL = "compact-business-listing-expanded-with-website.html"
FEED = "standard-businesses_website-nowebsite-website.html"
STATE = "place-state-kipriakon.json"
# A saved place page's address: the business's name, and no data= blob with its ids.
SAVED_URL = "https://www.google.com/maps/place/UPPERCUTS+barbershop/"
OTHER_ID = "ChIJlf83wOaKk4cRffVjfEnoMaw"
GLYPH = "\ue0c8"  # Google's "place" icon in its symbol font


def _read(corpus: Path, name: str) -> str:
    return (corpus / name).read_text(encoding="utf-8")


def _with_state(html: str, payload: object) -> str:
    """The page with a place-page state script as Google writes it (the payload, XSSI-guarded, at [3][6])."""
    slot: list[object] = [None] * 7
    slot[6] = ")]}'\n" + json.dumps(payload, ensure_ascii=False)
    script = f"<script>window.APP_INITIALIZATION_STATE={json.dumps([[], [[]], None, slot])};</script>"
    return html.replace("</body>", script + "</body>") if "</body>" in html else html + script


def _uppercuts_state(corpus: Path, name: str) -> tuple[object, str, str, float]:
    """The real place-state capture's payload, renamed to the panel's business."""
    payload = decode_payload(_read(corpus, STATE))
    place = payload[6]
    place[11] = name
    return payload, place[78], place[10], place[9][2]


# -- ids and coordinates from every place the page carries them ---------------------------------


def test_the_panel_capture_alone_has_no_ids(corpus: Path) -> None:
    listing = parse_place_panel(_read(corpus, PANEL), SAVED_URL)
    assert listing is not None
    assert listing.place_id is None
    assert listing.latitude is None


@pytest.mark.parametrize("state_name", ["UPPERCUTS barbershop", "UPPERCUTS Barbershop - Papillion"])
def test_ids_from_the_page_state_when_the_url_has_none(corpus: Path, state_name: str) -> None:
    payload, place_id, cid, latitude = _uppercuts_state(corpus, state_name)
    html = _with_state(_read(corpus, PANEL), payload)
    for listing in (parse_place_panel(html, SAVED_URL), parse_place_page(html, SAVED_URL), *detect(html).listings):
        assert listing is not None
        assert (listing.place_id, listing.cid, listing.latitude) == (place_id, cid, latitude)
    panel = parse_place_panel(html, SAVED_URL)
    assert panel is not None
    assert panel.phone == "(402) 505-3884"


def test_a_page_state_about_another_place_lends_no_ids(corpus: Path) -> None:
    payload, *_ = _uppercuts_state(corpus, "Kipriakon")
    listing = parse_place_panel(_with_state(_read(corpus, PANEL), payload), SAVED_URL)
    assert listing is not None
    assert listing.place_id is None


def test_ids_from_data_attributes(corpus: Path) -> None:
    html = _read(corpus, PANEL).replace(
        'data-item-id="address"',
        f'data-item-id="address" data-pid="{OTHER_ID}" data-lat="41.1566151" data-lng="-96.0427488"',
        1,
    )
    listing = parse_place_panel(html, SAVED_URL)
    assert listing is not None
    assert (listing.place_id, listing.latitude, listing.longitude) == (OTHER_ID, 41.1566151, -96.0427488)


def test_ids_from_the_heads_meta_and_the_panels_own_links(corpus: Path) -> None:
    head = (
        '<meta content="https://maps.google.com/maps/api/staticmap?center=41.1566151%2C-96.0427488&amp;'
        'zoom=15&amp;size=900x900" itemprop="image">'
    )
    reviews = f'<a href="https://www.google.com/maps/reviews?placeid={OTHER_ID}&amp;hl=en">All reviews</a>'
    html = _read(corpus, PANEL)
    html = html.replace("<head>", "<head>" + head, 1) if "<head>" in html else head + html
    row = html.rindex("<button", 0, html.index('data-item-id="address"'))
    html = html[:row] + reviews + html[row:]
    listing = parse_place_panel(html, SAVED_URL)
    assert listing is not None
    assert (listing.place_id, listing.latitude, listing.longitude) == (OTHER_ID, 41.1566151, -96.0427488)


def test_the_url_wins_over_what_the_page_says(corpus: Path) -> None:
    url = f"https://www.google.com/maps/place/UPPERCUTS/data=!4m7!3m6!1s0x1:0x2!8m2!3d41.5!4d-96.5!19s{OTHER_ID}"
    html = _read(corpus, PANEL).replace(
        'data-item-id="address"', 'data-item-id="address" data-pid="ChIJnotthisoneatall"', 1
    )
    listing = parse_place_panel(html, url)
    assert listing is not None
    assert (listing.place_id, listing.latitude) == (OTHER_ID, 41.5)


# -- no value is only a glyph or only punctuation -----------------------------------------------


def test_a_shown_icon_glyph_is_no_part_of_the_address(corpus: Path) -> None:
    # The capture hides the glyph (aria-hidden); a capture that does not must read the same.
    html = _read(corpus, PANEL).replace(
        'class="google-symbols PHazN" aria-hidden="true"', 'class="google-symbols PHazN"'
    )
    listing = parse_place_panel(html, SAVED_URL)
    assert listing is not None
    assert listing.address == "110 Cedardale Rd, Papillion, NE 68046"


def test_an_address_row_showing_only_a_glyph_gives_no_address(corpus: Path) -> None:
    html = _read(corpus, PANEL)
    html = html.replace('aria-label="Address: 110 Cedardale Rd, Papillion, NE 68046 "', f'aria-label="{GLYPH}"')
    html = html.replace("110 Cedardale Rd, Papillion, NE 68046\n", f"{GLYPH}\n")
    listing = parse_place_panel(html, SAVED_URL)
    assert listing is not None
    assert listing.address is None


@pytest.mark.parametrize("shown", [GLYPH, "\U000f0001", "–", "·  ·", "()"])
def test_a_card_whose_address_is_a_glyph_or_punctuation_has_no_address(corpus: Path, shown: str) -> None:
    html = _read(corpus, FEED).replace("<span>5024 S 110th St</span>", f"<span>{shown}</span>")
    listing = next(x for x in parse_feed(html).listings if x.name == "Straight Line Painting Omaha")
    assert listing.address is None
    assert listing.category == "Painter"


def test_an_accessibility_icon_after_the_address_is_not_taken_for_it(corpus: Path) -> None:
    icon = f'<span> <span aria-hidden="true">·</span> <span class="google-symbols">{GLYPH}</span></span>'
    html = _read(corpus, FEED).replace(
        "<span>5024 S 110th St</span></span>", f"<span>5024 S 110th St</span></span>{icon}"
    )
    listing = next(x for x in parse_feed(html).listings if x.name == "Straight Line Painting Omaha")
    assert listing.address == "5024 S 110th St"


# -- results that are an address or a locality --------------------------------------------------


def _card_of(name: str, category: str) -> Listing:
    """A result card shaped as the corpus's, for a place with no rating, phone or website."""
    business = generate_answer_set("plumbers", "Omaha, NE", 3, 1).businesses[0]
    bare = replace(
        business,
        name=name,
        category=category,
        rating=None,
        review_count=None,
        phone=None,
        phone_e164=None,
        website=None,
        address=None,
        hours=None,
        compact=False,
    )
    locale = locale_for("en")
    html = results_page(
        search_text=name,
        cards_html=feed_card(bare, "http://maps.test", locale),
        ended=True,
        next_offset=1,
        feed_url="http://maps.test/feed",
        locale=locale,
        latitude=41.25,
        longitude=-95.93,
    )
    (listing,) = parse_feed(html).listings
    return listing


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("5024 S 110th St", "Omaha, NE"),  # its locality read where the category would be
        ("Friedrichstraße 123", "10117 Berlin"),
        ("Papillion", "City in Nebraska"),
        ("Midtown", "Neighborhood"),
    ],
)
def test_an_address_or_locality_result_is_marked(name: str, category: str) -> None:
    card = _card_of(name, category)
    assert card.category == category  # what the card shows, as the parser reads it
    assert complete_listing(card, "US").kind == "address"


@pytest.mark.parametrize(
    ("name", "category"),
    [("Joe's Painting", "Painter"), ("Bakery 42", "Bakery"), ("1st Choice Plumbing", "Plumber")],
)
def test_a_new_business_without_reviews_stays_a_business(name: str, category: str) -> None:
    assert complete_listing(_card_of(name, category), "US").kind == "business"


def test_every_corpus_listing_is_a_business(corpus: Path) -> None:
    for name in (FEED, PANEL, STATE, "compact-business-listing.html", "search-response-coffee.json"):
        for listing in detect(_read(corpus, name)).listings:
            assert result_kind(complete_listing(listing)) == "business", listing.name


# -- linear on hostile pages --------------------------------------------------------------------

_HOSTILE_IDS = (
    '<div data-pid="ChIJ{a}" data-fid="0x{h}:" data-lat="1{d}" data-lng="-{d}">'
    '<a href="/maps/x?ll={d},{d}!3d{d}!4d!1s0x{h}&amp;placeid=ChIJ">x</a></div>'
)


def _page_of_id_lookalikes(n: int) -> str:
    """A saved place page with ``n`` elements whose attributes look like ids and coordinates
    and are none (every read of them fails late)."""
    one = _HOSTILE_IDS.format(a="!" * 30, h="f" * 30, d="1" * 30)
    return f'<html><head></head><body><div role="main" aria-label="Acme">{one * n}</div></body></html>'


def test_ids_are_looked_for_in_linear_time_on_a_hostile_page() -> None:
    found = assert_linear(lambda html: parse_place_panel(html, SAVED_URL), _page_of_id_lookalikes, size=200)
    print(f"id lookalikes: {found.size} elements {found.small_s * 1000:.1f} ms, x2 {found.large_s * 1000:.1f} ms")
    listing = parse_place_panel(_page_of_id_lookalikes(50), SAVED_URL)
    assert listing is not None
    assert (listing.place_id, listing.cid, listing.latitude) == (None, None, None)


def test_a_card_whose_link_has_no_ids_takes_them_from_its_data_attributes(corpus: Path) -> None:
    plain = "https://www.google.com/maps/place/Straight+Line+Painting+Omaha/?authuser=0"
    html = _read(corpus, FEED)
    linked = re.compile(r'href="https://www\.google\.com/maps/place/Straight\+Line\+Painting\+Omaha/data=[^"]*"')
    html = linked.sub(
        f'href="{plain}" data-pid="ChIJ_9zB9W_zk4cRYK1fxz_bCyo" data-fid="0x8793f36ff5c1dcff:0x2a0bdb3fc75fad60" '
        'data-lat="41.2083492" data-lng="-96.0847927"',
        html,
    )
    assert "!19sChIJ_9zB9W" not in html
    listing = next(x for x in parse_feed(html).listings if x.name == "Straight Line Painting Omaha")
    assert listing.place_id == "ChIJ_9zB9W_zk4cRYK1fxz_bCyo"
    assert listing.cid == "0x8793f36ff5c1dcff:0x2a0bdb3fc75fad60"
    assert (listing.latitude, listing.longitude) == (41.2083492, -96.0847927)
