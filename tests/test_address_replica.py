"""The Maps replica's places in DE, FR, GB, BR, IN and PH (and the US): read over HTTP as the scraper
reads them, every address part Google's place data carries comes out right, the street line of a
result card is parsed by the job's country, and every phone is in E.164 of its country."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import phonenumbers
import pytest
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.maps.completion import complete_listing
from leadlawk_daemon.maps.countries import country_of_location
from leadlawk_daemon.maps.feed import parse_feed
from leadlawk_daemon.maps.parse_pool import parse_place_page
from leadlawk_daemon.replicas.maps import create_maps_app

Client = TestClient[Any, Any]

LOCATIONS = {
    "DE": "Berlin, Germany",
    "FR": "Paris, France",
    "GB": "London, UK",
    "BR": "São Paulo, Brazil",
    "IN": "Mumbai, India",
    "PH": "Makati, Philippines",
    "US": "Omaha, NE",
}
PARTS = ("street", "locality", "region", "postal_code", "country_code")
QUERY = "plumbers"
COUNT = 20


@pytest.fixture
async def maps() -> AsyncIterator[Client]:
    client: Client = TestClient(TestServer(create_maps_app(seed=7, max_results=COUNT)))
    await client.start_server()
    yield client
    await client.close()


async def _truth(maps: Client, location: str) -> list[dict[str, Any]]:
    response = await maps.get("/_answers", params={"q": QUERY, "location": location})
    assert response.status == 200
    answers: list[dict[str, Any]] = (await response.json())["answers"]
    return answers


async def _text(maps: Client, path: str) -> str:
    response = await maps.get(path)
    assert response.status == 200, path
    return await response.text()


@pytest.mark.parametrize("country", list(LOCATIONS))
async def test_place_pages_carry_every_part_and_the_parser_reads_them(maps: Client, country: str) -> None:
    location = LOCATIONS[country]
    truth = await _truth(maps, location)
    with_address = [a for a in truth if a["full_address"] is not None]
    assert len(with_address) >= COUNT // 2
    for answer in truth:
        path = answer["maps_url"].removeprefix(str(maps.make_url("")))
        listing = parse_place_page(await _text(maps, path), answer["maps_url"])
        assert listing is not None
        assert listing.place_id == answer["place_id"]
        listing = complete_listing(listing, country_of_location(location))
        assert listing.country_code == country, answer["name"]
        if answer["full_address"] is None:
            assert listing.street is None, answer["name"]  # a service-area business shows no address
            continue
        assert listing.address_source == "google"
        assert {p: getattr(listing, p) for p in PARTS} == {p: answer[p] for p in PARTS}, answer["name"]


@pytest.mark.parametrize("country", list(LOCATIONS))
async def test_result_cards_are_parsed_by_the_jobs_country(maps: Client, country: str) -> None:
    location = LOCATIONS[country]
    truth = {a["place_id"]: a for a in await _truth(maps, location)}
    html = await _text(maps, f"/maps/search/{quote(f'{QUERY} in {location}')}?hl=en")
    cards = parse_feed(html).listings
    assert cards
    hint = country_of_location(location)
    assert hint == country
    for card in cards:
        assert card.place_id is not None
        answer = truth[card.place_id]
        listing = complete_listing(card, hint)
        assert listing.country_code == country
        assert listing.street == answer["address"], answer["name"]
        if answer["phone"] is not None and not answer["compact"]:
            assert listing.phone == answer["phone"]
            # The card shows the national form only: the job's country makes it E.164.
            assert listing.phone_e164 == answer["phone_e164"], answer["name"]


@pytest.mark.parametrize("country", list(LOCATIONS))
async def test_every_replica_phone_is_a_valid_number_of_its_country(maps: Client, country: str) -> None:
    phones = [a for a in await _truth(maps, LOCATIONS[country]) if a["phone_e164"] is not None]
    assert len(phones) >= COUNT // 2
    for answer in phones:
        number = phonenumbers.parse(answer["phone_e164"])
        assert phonenumbers.region_code_for_number(number) == country or country == "US"
        assert phonenumbers.is_valid_number(number) or country == "US"  # the US ones are 555-01xx
        national = phonenumbers.parse(answer["phone"], country)
        assert phonenumbers.format_number(national, phonenumbers.PhoneNumberFormat.E164) == answer["phone_e164"]
