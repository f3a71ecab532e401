"""The Maps replica's places outside the US: cities of DE, FR, GB, BR, IN and PH, and how each
country writes an address and a phone number.

A search "in Berlin, Germany" lands here; every business of it gets a street line, a formatted
address and a phone number in the country's own format (``Friedrichstraße 123, 10117 Berlin``,
``030 12345678``), and the structured parts Google's place data carries beside them. Phones are
written by ``phonenumbers`` (Google's own numbering-plan data), so each is a valid number of its
country in the national form Google shows, with its international form.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import phonenumbers

__all__ = [
    "ABROAD",
    "Abroad",
    "PlaceAddress",
    "abroad_city",
    "abroad_country",
    "foreign_address",
    "foreign_phone",
    "phone_forms",
]


@dataclass(frozen=True, slots=True)
class PlaceAddress:
    """A business's address as Google's place data splits it (``[183][1]``), and as shown."""

    street: str
    locality: str
    region: str | None
    postal_code: str
    country_code: str
    neighbourhood: str | None
    formatted: str

    def state_row(self) -> list[str | None]:
        """``[neighbourhood, street, street line, locality, postal code, region, country]``."""
        return [
            self.neighbourhood, self.street, self.street, self.locality, self.postal_code, self.region,
            self.country_code,
        ]  # fmt: skip

    def lines(self) -> list[str]:
        """The address as the place array's ``[2]`` lists it: the street line, then the rest."""
        rest = self.formatted.removeprefix(self.street).lstrip(" ,-")
        return [self.street, rest] if rest else [self.street]


@dataclass(frozen=True, slots=True)
class _City:
    name: str
    region: str | None  # as Google's data names it (None where its addresses leave it out)
    region_short: str  # what a formatted address shows ("SP"), "" where it shows none
    latitude: float
    longitude: float
    area: str  # the national area code the city's landlines start with
    postal: str  # the prefix of its postal codes
    neighbourhoods: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Abroad:
    code: str
    name: str
    names: tuple[str, ...]
    timezone: str
    cities: tuple[_City, ...]
    streets: tuple[str, ...]


ABROAD: dict[str, Abroad] = {
    "DE": Abroad(
        "DE", "Germany", ("germany", "deutschland"), "Europe/Berlin",
        (
            _City("Berlin", "Berlin", "", 52.52, 13.405, "30", "10"),
            _City("München", "Bayern", "", 48.1372, 11.5756, "89", "80"),
        ),
        ("Friedrichstraße", "Hauptstraße", "Bahnhofstraße", "Schillerstraße", "Gartenweg", "Lindenallee"),
    ),
    "FR": Abroad(
        "FR", "France", ("france", "fr"), "Europe/Paris",
        (
            _City("Paris", "Île-de-France", "", 48.8566, 2.3522, "1", "750"),
            _City("Lyon", "Auvergne-Rhône-Alpes", "", 45.764, 4.8357, "4", "6900"),
        ),
        ("Rue de Rivoli", "Avenue Victor Hugo", "Boulevard Voltaire", "Rue de la Paix", "Rue Lafayette"),
    ),
    "GB": Abroad(
        "GB", "United Kingdom", ("united kingdom", "uk", "great britain", "england", "gb"), "Europe/London",
        (
            _City("London", "England", "", 51.5072, -0.1276, "20", "SW1"),
            _City("Manchester", "England", "", 53.4808, -2.2426, "161", "M1"),
        ),
        ("High St", "Station Rd", "Church Ln", "Victoria Rd", "Park Ave", "Baker St"),
    ),
    "BR": Abroad(
        "BR", "Brazil", ("brazil", "brasil", "br"), "America/Sao_Paulo",
        (
            _City("São Paulo", "São Paulo", "SP", -23.5505, -46.6333, "11", "01",
                  ("Bela Vista", "Pinheiros", "Moema", "Vila Mariana")),
            _City("Rio de Janeiro", "Rio de Janeiro", "RJ", -22.9068, -43.1729, "21", "22",
                  ("Copacabana", "Botafogo", "Tijuca")),
        ),
        ("Av. Paulista", "R. Augusta", "R. Cecília Meireles", "Av. Brasil", "R. das Flores"),
    ),
    "IN": Abroad(
        "IN", "India", ("india", "bharat"), "Asia/Kolkata",
        (
            _City("Mumbai", "Maharashtra", "Maharashtra", 19.076, 72.8777, "22", "400"),
            _City("Bengaluru", "Karnataka", "Karnataka", 12.9716, 77.5946, "80", "560"),
        ),
        ("MG Road", "Linking Road", "Station Road", "Nehru Nagar Road", "Brigade Road"),
    ),
    "PH": Abroad(
        "PH", "Philippines", ("philippines", "pilipinas", "ph"), "Asia/Manila",
        (
            _City("Makati", "Metro Manila", "Metro Manila", 14.5547, 121.0244, "2", "12"),
            _City("Quezon City", "Metro Manila", "Metro Manila", 14.676, 121.0437, "2", "11"),
        ),
        ("Ayala Ave", "Rizal St", "Mabini St", "Bonifacio Ave", "Quezon Ave"),
    ),
}  # fmt: skip

_BY_NAME = {name: country for country in ABROAD.values() for name in country.names}


def abroad_country(location_part: str) -> Abroad | None:
    """The country a location's last part names, when the replica has places there."""
    return _BY_NAME.get(" ".join(location_part.split()).casefold())


def abroad_city(country: Abroad, city: str) -> _City:
    """The replica's data for ``city``: its own when known, else the country's first city's
    (under the name asked for: an unknown town is placed near the capital, as US ones are)."""
    folded = city.casefold()
    for known in country.cities:
        if known.name.casefold() == folded:
            return known
    return country.cities[0]


def foreign_address(rng: random.Random, country: str, city: str, region: str | None, postal: str) -> PlaceAddress:
    """A street address in ``city`` written as ``country`` writes addresses."""
    data = ABROAD[country]
    known = abroad_city(data, city)
    street_name = rng.choice(data.streets)
    number = rng.randrange(1, 300)
    neighbourhood = rng.choice(known.neighbourhoods) if known.neighbourhoods else None
    if country == "DE":
        code = f"{postal}{rng.randrange(100, 999)}"
        street = f"{street_name} {number}"
        formatted = f"{street}, {code} {city}"
    elif country == "FR":
        code = f"{postal}{rng.randrange(1, 20):02d}" if len(postal) == 3 else f"{postal}{rng.randrange(1, 9)}"
        street = f"{number} {street_name}"
        formatted = f"{street}, {code} {city}"
    elif country == "GB":
        code = f"{postal} {rng.randrange(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
        street = f"{number} {street_name}"
        formatted = f"{street}, {city} {code}"
    elif country == "BR":
        code = f"{postal}{rng.randrange(100, 999)}-{rng.randrange(0, 999):03d}"
        street = f"{street_name}, {number * 7}"
        shown_region = known.region_short or (region or "")
        formatted = f"{street} - {neighbourhood}, {city} - {shown_region}, {code}"
    elif country == "IN":
        code = f"{postal}{rng.randrange(1, 99):03d}"
        street = f"{number}, {street_name}"
        formatted = f"{street}, {city}, {region} {code}"
    else:  # PH
        code = f"{postal}{rng.randrange(0, 99):02d}"
        street = f"{number * 10} {street_name}"
        formatted = f"{street}, {city}, {code} {region}"
    return PlaceAddress(street, city, region, code, country, neighbourhood, formatted)


def foreign_phone(rng: random.Random, country: str, area: str) -> tuple[str, str] | None:
    """(shown, E.164) of a landline in ``area``; ``None`` when the draw is no valid number there."""
    length = {"DE": 8, "FR": 8, "GB": 8 if len(area) == 2 else 7, "BR": 8, "IN": 8, "PH": 8}[country]
    first = {"BR": "3", "PH": "8", "IN": "2", "GB": "7" if len(area) == 2 else "2"}.get(country, "4")
    subscriber = first + "".join(str(rng.randrange(10)) for _ in range(length - 1))
    number = phonenumbers.parse(f"+{phonenumbers.country_code_for_region(country)}{area}{subscriber}")
    if not phonenumbers.is_valid_number(number):
        return None
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return shown, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_forms(shown: str, e164: str) -> tuple[str, str]:
    """(national digits, international rendering) of a number, as the place array's ``[178]``
    carries them beside the shown form."""
    number = phonenumbers.parse(e164)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    national = "".join(ch for ch in shown if ch.isdigit())
    return national, international
