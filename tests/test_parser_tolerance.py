"""The parser on synthetic pages for every variation Google serves (tests/maps_samples.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.parser import (
    UnrecognizedPage,
    detect_and_parse,
    parse_feed,
    parse_place_panel,
    parse_place_state,
    parse_search_json,
)
from leadlawk_daemon.maps.phone import to_e164
from tests.maps_samples import (
    AlsoSearched,
    Biz,
    app_state_script,
    card,
    feed,
    panel,
    place_url,
    search_payload,
    state_payload,
)

A = Biz("Papillion Barbers", "ChIJlf83wOaKk4cRffVjfEnoMaw", website="https://papillionbarbers.com/")
B = Biz(
    "Style House Barbershop",
    "ChIJstylehouse0000000000",
    cid="0x1:0x2",
    lat=41.2,
    lng=-96.1,
    rating="4.7",
    reviews="134",
    phone="(402) 555-0199",
    address="8404 Cass St",
)
C = Biz(
    "Sport Clips Haircuts",
    "ChIJsportclips000000000",
    cid="0x3:0x4",
    lat=-33.9,
    lng=151.2,
    rating="4.2",
    reviews="262",
    category="Hair salon",
    address="1 Main St",
)


def only(html: str) -> Listing:
    result = parse_feed(html)
    assert result.malformed == 0
    assert len(result.listings) == 1
    return result.listings[0]


@pytest.mark.parametrize("container", ["div", "article", "bare"])
def test_attribute_order_and_card_wrapping_do_not_matter(container: str) -> None:
    straight = only(feed([card(A, container=container)]))
    reversed_ = only(feed([card(A, container=container, reverse=True)]))
    assert straight == reversed_
    assert (straight.name, straight.place_id, straight.cid) == (A.name, A.place_id, A.cid)
    assert (straight.latitude, straight.longitude) == (A.lat, A.lng)
    assert (straight.rating, straight.review_count) == (4.8, 114)
    assert (straight.category, straight.address) == ("Barber shop", "103 N Washington St")
    assert (straight.phone, straight.phone_e164) == ("(402) 505-3884", "+14025053884")
    assert straight.website == A.website
    assert straight.maps_url == place_url(A)


@pytest.mark.parametrize("suffix", [" · Visited link", " · Besuchter Link", " · Lien visité"])
def test_label_suffixes_are_not_part_of_the_name(suffix: str) -> None:
    assert only(feed([card(A, label_suffix=suffix)])).name == A.name


@pytest.mark.parametrize("shown", ["1,234", "1.234", "1\u00a0234", "1\u202f234", "1 234", "1234"])
def test_review_counts_with_thousands_separators(shown: str) -> None:
    listing = only(feed([card(replace(A, reviews=shown))]))
    assert listing.review_count == 1234


def test_service_area_business_has_no_address_and_compact_card_no_phone_or_website() -> None:
    service_area = only(feed([card(replace(A, address=None))]))
    assert service_area.address is None
    assert service_area.category == "Barber shop"
    assert service_area.phone == "(402) 505-3884"
    compact = only(feed([card(replace(A, phone=None, website=None))]))
    assert (compact.phone, compact.phone_e164, compact.website) == (None, None, None)
    assert compact.address == "103 N Washington St"
    for no_reviews in ("", "No reviews", "Keine Rezensionen"):
        unrated = only(feed([card(replace(A, rating=None, reviews=None), no_reviews=no_reviews)]))
        assert (unrated.rating, unrated.review_count) == (None, None)
        assert (unrated.category, unrated.address) == ("Barber shop", "103 N Washington St")


def test_repeated_cards_are_deduplicated_by_place_id_in_feed_order() -> None:
    html = feed(
        [card(A), card(B), card(A, label_suffix=" · Visited link"), card(C), card(B, container="bare")]
    )
    result = parse_feed(html)
    assert [listing.place_id for listing in result.listings] == [A.place_id, B.place_id, C.place_id]
    assert result.malformed == 0


def test_repeat_fills_what_the_first_copy_lacked() -> None:
    html = feed([card(replace(A, phone=None, website=None)), card(A)])
    [listing] = parse_feed(html).listings
    assert (listing.phone, listing.website) == (A.phone, A.website)


def test_non_english_card() -> None:
    biz = Biz(
        "Friseur Müller",
        "ChIJfriseurmueller00000",
        rating="4,6",
        reviews="1.234",
        category="Friseursalon",
        address="Hauptstraße 5",
        phone="+49 30 1234567",
    )
    listing = only(
        feed([card(biz, label_suffix=" · Besuchter Link", rating_words=("Sterne", "Rezensionen"))])
    )
    assert (listing.name, listing.rating, listing.review_count) == ("Friseur Müller", 4.6, 1234)
    assert (listing.category, listing.address) == ("Friseursalon", "Hauptstraße 5")
    assert (listing.phone, listing.phone_e164) == ("+49 30 1234567", "+49301234567")


def test_malformed_cards_are_counted_and_the_rest_still_parsed() -> None:
    no_place_id = card(B, href="https://www.google.com/maps/place/Broken/data=!4m2!3m1!1s0x1:0x2")
    no_link = '<div role="article" aria-label="Ghost"><div>Ghost business</div></div>'
    result = parse_feed(feed([card(A), no_place_id, card(C), no_link], end=True))
    assert [listing.place_id for listing in result.listings] == [A.place_id, C.place_id]
    assert result.malformed == 2
    assert result.end_of_list is True


def test_end_of_list_marker() -> None:
    assert parse_feed(feed([card(A)], end=True)).end_of_list is True
    assert parse_feed(feed([card(A)], end=False)).end_of_list is False


def test_cards_outside_a_feed_element_are_read() -> None:
    assert only(feed([card(A)], role_feed=False)).place_id == A.place_id


def test_website_is_unwrapped_from_google_redirects() -> None:
    wrapped = replace(A, website="/url?q=https://papillionbarbers.com/book-now&sa=U&ved=abc")
    assert only(feed([card(wrapped)])).website == "https://papillionbarbers.com/book-now"
    listing = parse_place_panel(
        panel(A, website_href="https://www.google.com/url?q=https%3A%2F%2Fexample.com%2Fhome&opi=1"),
        place_url(A),
    )
    assert listing is not None
    assert listing.website == "https://example.com/home"


def test_booking_and_ordering_links_are_not_the_website() -> None:
    order = (
        '<a data-value="Order online" aria-label="Order online" href="https://www.doordash.com/store/123">'
        "Order online</a>"
    )
    assert only(feed([card(replace(A, website=None), extra_links=order)])).website is None
    assert only(feed([card(A, extra_links=order)])).website == A.website
    booking_only = parse_place_panel(panel(A, booking_href="https://visibook.com/x"), place_url(A))
    assert booking_only is not None
    assert booking_only.website is None
    both = parse_place_panel(
        panel(A, booking_href="https://visibook.com/x", website_href="https://papillionbarbers.com/"),
        place_url(A),
    )
    assert both is not None
    assert both.website == "https://papillionbarbers.com/"


def test_class_names_are_the_last_fallback_when_labels_are_gone() -> None:
    listing = only(feed([card(A, stable=False)]))
    assert (listing.name, listing.rating, listing.review_count) == (A.name, 4.8, 114)
    assert listing.place_id == A.place_id


def test_panel_reads_its_business_and_not_the_people_also_search_for_ones() -> None:
    others = [
        AlsoSearched("Lady Jane's Haircuts"),
        AlsoSearched("Great Clips", "4.1", "1,002", "Barber shop"),
    ]
    html = panel(replace(A, rating=None, reviews=None, category=None), also=others)
    listing = parse_place_panel(html, place_url(A))
    assert listing is not None
    assert listing.name == A.name
    assert (listing.rating, listing.review_count, listing.category, listing.website) == (
        None,
        None,
        None,
        None,
    )
    full = parse_place_panel(
        panel(A, website_href="https://papillionbarbers.com/", also=others), place_url(A)
    )
    assert full is not None
    assert (full.rating, full.review_count, full.category) == (4.8, 114, "Barber shop")
    assert (full.address, full.phone, full.phone_e164) == (A.address, A.phone, "+14025053884")
    assert full.website == "https://papillionbarbers.com/"
    assert (full.place_id, full.cid, full.latitude, full.longitude) == (A.place_id, A.cid, A.lat, A.lng)
    assert full.plus_code == "4XV5+G5 Papillion, Nebraska"


def test_panel_attribute_order_does_not_matter() -> None:
    assert parse_place_panel(panel(A), place_url(A)) == parse_place_panel(
        panel(A, reverse=True), place_url(A)
    )


def test_panel_opening_hours_from_table_or_label() -> None:
    table = parse_place_panel(panel(A, hours_table=[("Monday", "9 AM–6 PM"), ("Sunday", "Closed")]))
    assert table is not None
    assert table.hours == (("Monday", "9 AM–6 PM"), ("Sunday", "Closed"))
    label = "Monday, 9 AM to 6 PM; Tuesday, 9 AM to 6 PM; Sunday, Closed. Hide open hours for the week"
    labelled = parse_place_panel(panel(A, hours_label=label))
    assert labelled is not None
    assert labelled.hours == (("Monday", "9 AM to 6 PM"), ("Tuesday", "9 AM to 6 PM"), ("Sunday", "Closed"))


@pytest.mark.parametrize("prefix", [True, False])
def test_place_state_with_or_without_its_guard_prefix(prefix: bool) -> None:
    listing = parse_place_state(state_payload(C, prefix=prefix, international="+61 2 9999 0000"))
    assert listing is not None
    assert (listing.name, listing.place_id, listing.cid) == (C.name, C.place_id, C.cid)
    assert (listing.latitude, listing.longitude, listing.rating, listing.review_count) == (
        -33.9,
        151.2,
        4.2,
        262,
    )
    assert (listing.address, listing.category) == ("1 Main St", "Hair salon")


def test_place_state_found_in_a_page_script() -> None:
    listing = parse_place_state(app_state_script(C, website="/url?q=https://sportclips.com/&sa=U"))
    assert listing is not None
    assert (listing.place_id, listing.website) == (C.place_id, "https://sportclips.com/")
    assert parse_place_state("<script>window.APP_INITIALIZATION_STATE=[1, 2</script>") is None


@pytest.mark.parametrize(("prefix", "envelope"), [(True, False), (False, False), (True, True)])
def test_search_json_with_prefix_or_envelope(prefix: bool, envelope: bool) -> None:
    listings = parse_search_json(search_payload([A, B, A, C], prefix=prefix, envelope=envelope))
    assert [listing.place_id for listing in listings] == [A.place_id, B.place_id, C.place_id]
    assert listings[1].review_count == 134


@pytest.mark.parametrize(
    ("shown", "others", "expected"),
    [
        ("(402) 715-0110", (), "+14027150110"),
        ("402-715-0110", (), "+14027150110"),
        ("+1 402-715-0110", (), "+14027150110"),
        ("+357 25 101555", (), "+35725101555"),
        ("25 101555", (), None),
        ("25 101555", ("+357 25 101555",), "+35725101555"),
        ("25 101555", ("tel:+35725101555",), "+35725101555"),
        ("0161 496 0000", (), None),
        (None, (), None),
    ],
)
def test_e164_only_where_the_country_is_certain(
    shown: str | None, others: tuple[str, ...], expected: str | None
) -> None:
    assert to_e164(shown, *others) == expected


def test_sniffer_tells_the_shapes_apart() -> None:
    assert [x.place_id for x in detect_and_parse(feed([card(A), card(B)]))] == [A.place_id, B.place_id]
    [from_panel] = detect_and_parse(panel(A), place_url(A))
    assert from_panel.place_id == A.place_id
    [from_state] = detect_and_parse(state_payload(C))
    assert from_state.place_id == C.place_id
    [from_script] = detect_and_parse(app_state_script(C))
    assert from_script.place_id == C.place_id
    assert len(detect_and_parse(search_payload([A, B]))) == 2
    for text in ("plain words", "<p>no maps here</p>", json.dumps({"hello": 1}), ")]}'\n[1, 2"):
        with pytest.raises(UnrecognizedPage):
            detect_and_parse(text)


def test_a_card_link_that_urllib_cannot_split_is_counted_not_raised() -> None:
    # Found by fuzzing: "[" in a host makes urllib raise "Invalid IPv6 URL".
    from leadlawk_daemon.maps.parser import parse_feed
    from leadlawk_daemon.maps.place_url import unwrap_redirect

    assert unwrap_redirect("https://[bad/url?q=https://x.example/") == "https://[bad/url?q=https://x.example/"
    page = (
        '<div role="feed"><div><a class="hfpxzc" aria-label="Broken" href="https://www.google.com[/maps/place/'
        'B/data=!4m7!3m6!1s0x1:0x2!8m2!3d41.1!4d-96.0!19sChIJbroken00000000000000"></a></div></div>'
    )
    parse_feed(page)  # whatever it makes of the card, it does not raise
