"""Address parts: Google's own where its data carries them (the real captures), a parse of the
formatted address by its country's format where it does not, and phones in E.164 by country."""

from __future__ import annotations

import re
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.scrape_request import scrape_request
from leadlawk_daemon.control import spec_from_options
from leadlawk_daemon.jobspec import JobSpecError, parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.address_parse import MAX_ADDRESS, parse_address
from leadlawk_daemon.maps.address_parts import AddressParts
from leadlawk_daemon.maps.completion import complete_listing
from leadlawk_daemon.maps.countries import country_of_location
from leadlawk_daemon.maps.parser import detect, parse_feed, parse_place_panel, parse_place_state, parse_search_json
from leadlawk_daemon.maps.phone import to_e164
from tests.linearity import FUZZ_EXAMPLES, cpu_time


def _parts(listing: Listing) -> tuple[str | None, ...]:
    return (listing.street, listing.locality, listing.region, listing.postal_code, listing.country_code)


# -- Google's structured parts, on the real captures -------------------------------------------


def test_place_state_capture_has_googles_parts(corpus: Path) -> None:
    listing = parse_place_state((corpus / "place-state-kipriakon.json").read_text(encoding="utf-8"))
    assert listing is not None
    listing = complete_listing(listing)
    # The capture's [183][1] is [null, "Old port", "Old port", "Limassol", "3042", null, "CY"]: no region.
    assert _parts(listing) == ("Old port", "Limassol", None, "3042", "CY")
    assert listing.address_source == "google"
    # Its phone shows as "25 101555"; Cyprus's numbering plan makes it +357.
    assert listing.phone_e164 == "+35725101555"


def test_search_response_has_googles_parts_for_every_place(corpus: Path) -> None:
    listings = [complete_listing(x) for x in parse_search_json((corpus / "search-response-coffee.json").read_text())]
    assert len(listings) == 20
    first = listings[0]
    assert first.name == "Dream Coffee"
    assert _parts(first) == ("Eakou 74", "Ilion", None, "131 22", "GR")
    for listing in listings:
        assert listing.address_source == "google", listing.name
        assert listing.country_code == "GR"
        assert listing.postal_code is not None
        assert re.fullmatch(r"\d{3} \d{2}", listing.postal_code)
        # The parts agree with the formatted address Google shows beside them.
        assert listing.address is not None
        assert listing.street is not None
        assert listing.address.startswith(listing.street)
        assert listing.postal_code in listing.address
        assert listing.phone_e164 is not None
        assert listing.phone_e164.startswith("+30")


def test_panel_capture_without_structured_data_is_parsed_by_its_us_format(corpus: Path) -> None:
    listing = parse_place_panel((corpus / "compact-business-listing-expanded-with-website.html").read_text())
    assert listing is not None
    listing = complete_listing(listing)
    assert _parts(listing) == ("110 Cedardale Rd", "Papillion", "NE", "68046", "US")
    assert listing.address_source == "parsed"
    assert listing.phone_e164 == "+14025053884"


def test_feed_cards_show_a_street_line_only_and_take_the_country_from_the_jobs_location(corpus: Path) -> None:
    feed = parse_feed((corpus / "standard-businesses_website-nowebsite-website.html").read_text())
    by_name = {x.name: x for x in feed.listings}
    alone = complete_listing(by_name["Straight Line Painting Omaha"])
    # Nothing on the card says the country: no guess.
    assert alone.street == "5024 S 110th St"
    assert alone.country_code is None
    assert alone.locality is None
    located = complete_listing(by_name["Straight Line Painting Omaha"], country_of_location("Omaha, NE"))
    assert _parts(located) == ("5024 S 110th St", None, None, None, "US")
    assert located.phone_e164 == "+14027150110"
    service_area = complete_listing(by_name["Perceptive Painting LLC"], "US")
    assert service_area.street is None
    assert service_area.address_source is None
    assert service_area.country_code == "US"


def test_leadlawk_parse_output_carries_the_parts(corpus: Path) -> None:
    found = detect((corpus / "place-state-kipriakon.json").read_text())
    assert [complete_listing(x).country_code for x in found.listings] == ["CY"]


# -- the fallback parse, one test per country format -------------------------------------------


@pytest.mark.parametrize(
    ("country", "address", "expected"),
    [
        ("US", "110 Cedardale Rd, Papillion, NE 68046", ("110 Cedardale Rd", "Papillion", "NE", "68046")),
        ("US", "8706 W Pacific Pkwy Suite 2, Omaha, NE 68114-1234",
         ("8706 W Pacific Pkwy Suite 2", "Omaha", "NE", "68114-1234")),
        ("US", "5024 S 110th St", ("5024 S 110th St", None, None, None)),
        ("DE", "Friedrichstraße 123, 10117 Berlin", ("Friedrichstraße 123", "Berlin", None, "10117")),
        ("DE", "Am Markt 1, 01067 Dresden", ("Am Markt 1", "Dresden", None, "01067")),
        ("FR", "12 Rue de Rivoli, 75004 Paris", ("12 Rue de Rivoli", "Paris", None, "75004")),
        ("FR", "3 Pl. Bellecour, 69002 Lyon", ("3 Pl. Bellecour", "Lyon", None, "69002")),
        ("GB", "221B Baker St, London NW1 6XE", ("221B Baker St", "London", None, "NW1 6XE")),
        ("GB", "1 Deansgate, Manchester, M3 1AZ", ("1 Deansgate", "Manchester", None, "M3 1AZ")),
        ("BR", "Av. Paulista, 1578 - Bela Vista, São Paulo - SP, 01310-200",
         ("Av. Paulista, 1578", "São Paulo", "São Paulo", "01310-200")),
        ("BR", "R. Cecília Meireles, 1234 - Setor 06, Ariquemes - RO, 76873-632",
         ("R. Cecília Meireles, 1234", "Ariquemes", "Rondônia", "76873-632")),
        ("IN", "12, MG Road, Bengaluru, Karnataka 560001", ("12, MG Road", "Bengaluru", "Karnataka", "560001")),
        ("IN", "Shop 4, Linking Rd, Bandra West, Mumbai, Maharashtra 400050",
         ("Shop 4, Linking Rd, Bandra West", "Mumbai", "Maharashtra", "400050")),
        ("PH", "6750 Ayala Ave, Makati, 1226 Metro Manila", ("6750 Ayala Ave", "Makati", "Metro Manila", "1226")),
        ("PH", "12 Mabini St, Brgy. Poblacion, Quezon City, 1100 Metro Manila",
         ("12 Mabini St, Brgy. Poblacion", "Quezon City", "Metro Manila", "1100")),
    ],
)  # fmt: skip
def test_fallback_parse_per_country_format(country: str, address: str, expected: tuple[str | None, ...]) -> None:
    parsed = parse_address(address, country)
    assert parsed is not None
    assert (parsed.street, parsed.locality, parsed.region, parsed.postal_code) == expected
    assert parsed.country_code == country


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("110 Cedardale Rd, Papillion, NE 68046", "US"),
        ("Av. Paulista, 1578 - Bela Vista, São Paulo - SP, 01310-200", "BR"),
        ("221B Baker St, London NW1 6XE", "GB"),
        ("12, MG Road, Bengaluru, Karnataka 560001", "IN"),
        ("Friedrichstraße 123, 10117 Berlin, Germany", "DE"),
        ("12 Rue de Rivoli, 75004 Paris, France", "FR"),
        ("Eakou 74, Ilion 131 22, Greece", "GR"),
    ],
)
def test_the_country_comes_from_the_address_when_no_hint_says(address: str, country: str) -> None:
    parsed = parse_address(address, None)
    assert parsed is not None
    assert parsed.country_code == country


def test_a_country_the_address_names_wins_over_the_jobs_location() -> None:
    # A job "in Omaha, NE" can find a place across a border only by the address saying so.
    parsed = parse_address("12 Rue de Rivoli, 75004 Paris, France", "US")
    assert parsed == AddressParts("12 Rue de Rivoli", "Paris", None, "75004", "FR")


def test_an_unreadable_address_keeps_its_text_as_the_street_and_guesses_nothing() -> None:
    parsed = parse_address("Somewhere behind the old mill", None)
    assert parsed == AddressParts(street="Somewhere behind the old mill")
    assert parse_address("\ue0c8", "US") == AddressParts(country_code="US")


def test_fallback_parse_is_bounded_on_hostile_input() -> None:
    hostile = "1 " + "a - " * 250_000 + ", NE 68046"
    seconds = cpu_time(lambda: parse_address(hostile, None), repeats=1)
    parsed = parse_address(hostile, None)
    assert parsed is not None
    assert parsed.street is not None
    assert len(parsed.street) <= MAX_ADDRESS
    assert seconds < 0.05


# -- phones by the lead's country ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("shown", "country", "e164"),
    [
        ("(402) 715-0110", "US", "+14027150110"),
        ("030 12345678", "DE", "+493012345678"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("(11) 3456-7890", "BR", "+551134567890"),
        ("022 2345 6789", "IN", "+912223456789"),
        ("(02) 8123 4567", "PH", "+63281234567"),
        ("25 101555", "CY", "+35725101555"),
    ],
)
def test_phone_to_e164_by_country(shown: str, country: str, e164: str) -> None:
    assert to_e164(shown, country=country) == e164


def test_no_country_no_guess_and_no_us_default() -> None:
    assert to_e164("030 12345678") is None
    assert to_e164("25 101555") is None
    # A number that is no valid number of the lead's country is not made into one.
    assert to_e164("12", country="DE") is None
    assert to_e164("(402) 715-0110", country="GR") is None


def test_a_listings_own_international_form_wins_over_its_country() -> None:
    listing = complete_listing(Listing(name="X", phone="+30 21 0261 6578", address="Eakou 74"), "US")
    assert listing.phone_e164 == "+302102616578"
    assert phonenumbers.is_valid_number(phonenumbers.parse(listing.phone_e164))


# -- the job's choice ---------------------------------------------------------------------------


def test_a_job_keeps_address_results_only_when_it_asks() -> None:
    default = parse_job_spec({"query": "plumbers", "location": "Omaha, NE"}, 65_536)
    assert default.include_addresses is False
    assert scrape_request(default).keep_addresses is False
    assert "include_addresses" not in default.to_dict()
    asked = parse_job_spec({"query": "plumbers", "location": "Omaha, NE", "include_addresses": True}, 65_536)
    assert scrape_request(asked).keep_addresses is True
    assert parse_job_spec(asked.to_dict(), 65_536).include_addresses is True
    assert spec_from_options("plumbers", include_addresses=True).include_addresses is True
    assert spec_from_options("plumbers").include_addresses is False
    with pytest.raises(JobSpecError) as refused:
        parse_job_spec({"query": "plumbers", "include_addresses": "yes"}, 65_536)
    assert any(p.startswith("include_addresses: must be true or false") for p in refused.value.problems)


# -- any text at all ----------------------------------------------------------------------------

_COUNTRIES = st.sampled_from([None, "US", "DE", "FR", "GB", "BR", "IN", "PH", "GR"])


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=600), _COUNTRIES)
def test_any_text_parses_to_parts_taken_from_it_and_never_raises(text: str, country: str | None) -> None:
    parsed = parse_address(text, country)
    if parsed is None:
        return
    clipped = text[:MAX_ADDRESS]
    for part in (parsed.locality, parsed.postal_code):
        # Every part is text of the address (squashed), never invented; no part is a glyph or punctuation.
        assert part is None or (part in " ".join(clipped.split()) and any(ch.isalnum() for ch in part))
    assert parsed.country_code is None or len(parsed.country_code) == 2


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60), _COUNTRIES)
def test_any_phone_text_gives_a_valid_e164_or_none(text: str, country: str | None) -> None:
    e164 = to_e164(text, country=country)
    assert e164 is None or re.fullmatch(r"\+[1-9]\d{6,14}", e164)
