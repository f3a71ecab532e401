"""Which country a place is in, from the words that name one: a job's location ("Berlin,
Germany", "Omaha, NE") or the last line of a formatted address ("…, Greece").

Codes are ISO 3166-1 alpha-2, checked against libphonenumber's list of regions (which is ISO's,
kept current by the same package that formats the phones). Names are the ones Google writes at the
end of an address, in English and in the country's own language, for the countries whose address
formats :mod:`leadlawk_daemon.maps.address_parse` reads and a few more; an unknown name is no
country, never a guess.
"""

from __future__ import annotations

import phonenumbers

__all__ = ["US_STATES", "country_code", "country_of_location", "is_country_code"]

_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)

_STATE_CODES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
    "NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP"
)
US_STATES = frozenset(_STATE_CODES.split())

_NAMES: dict[str, str] = {
    "usa": "US",
    "us": "US",
    "u.s.a.": "US",
    "united states": "US",
    "united states of america": "US",
    "germany": "DE",
    "deutschland": "DE",
    "france": "FR",
    "united kingdom": "GB",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "brazil": "BR",
    "brasil": "BR",
    "india": "IN",
    "bharat": "IN",
    "philippines": "PH",
    "pilipinas": "PH",
    "greece": "GR",
    "ελλάδα": "GR",
    "cyprus": "CY",
    "κύπρος": "CY",
    "canada": "CA",
    "mexico": "MX",
    "méxico": "MX",
    "spain": "ES",
    "españa": "ES",
    "italy": "IT",
    "italia": "IT",
    "netherlands": "NL",
    "nederland": "NL",
    "belgium": "BE",
    "austria": "AT",
    "österreich": "AT",
    "switzerland": "CH",
    "schweiz": "CH",
    "suisse": "CH",
    "ireland": "IE",
    "portugal": "PT",
    "poland": "PL",
    "polska": "PL",
    "australia": "AU",
    "new zealand": "NZ",
    "japan": "JP",
    "singapore": "SG",
    "south africa": "ZA",
    "argentina": "AR",
    "colombia": "CO",
    "chile": "CL",
    "peru": "PE",
    "perú": "PE",
    "sweden": "SE",
    "sverige": "SE",
    "norway": "NO",
    "norge": "NO",
    "denmark": "DK",
    "danmark": "DK",
    "finland": "FI",
    "suomi": "FI",
}
_MAX_NAME = 40


def is_country_code(value: str | None) -> bool:
    return value is not None and len(value) == 2 and value in _REGIONS


def country_code(name: str | None) -> str | None:
    """The code of the country ``name`` names ("Germany", "Deutschland", "DE"); ``None`` for
    anything else."""
    if not name:
        return None
    text = " ".join(name.split()).strip(" .,")
    if not text or len(text) > _MAX_NAME:
        return None
    if (named := _NAMES.get(text.casefold())) is not None:
        return named
    if len(text) == 2 and text.isalpha() and text.isupper():
        return text if text in _REGIONS else None
    return None


def country_of_location(location: str | None) -> str | None:
    """The country a job's location is in: its last comma-separated part naming a country, or a
    US state ("Omaha, NE", "Austin, Texas 78701"); ``None`` when the text does not say.

    A two-letter last part is read as a US state first: "Paris, DE" is Delaware's Paris, as
    Google reads it too; "Paris, France" names the country."""
    if not location:
        return None
    parts = [p.strip() for p in location[:200].split(",") if p.strip()]
    if len(parts) < 2:
        return country_code(parts[0]) if parts else None
    words = parts[-1].split(" ")
    # "NE 68102" and "Texas 78701": the state before a ZIP code.
    while len(words) > 1 and words[-1].replace("-", "").isdigit():
        words.pop()
    last = " ".join(words)
    if last.upper().rstrip(".") in US_STATES or last.casefold() in _US_STATE_NAMES:
        return "US"
    return country_code(last)


_US_STATE_NAMES = frozenset(
    (
        "alabama",
        "alaska",
        "arizona",
        "arkansas",
        "california",
        "colorado",
        "connecticut",
        "delaware",
        "florida",
        "georgia",
        "hawaii",
        "idaho",
        "illinois",
        "indiana",
        "iowa",
        "kansas",
        "kentucky",
        "louisiana",
        "maine",
        "maryland",
        "massachusetts",
        "michigan",
        "minnesota",
        "mississippi",
        "missouri",
        "montana",
        "nebraska",
        "nevada",
        "new hampshire",
        "new jersey",
        "new mexico",
        "new york",
        "north carolina",
        "north dakota",
        "ohio",
        "oklahoma",
        "oregon",
        "pennsylvania",
        "rhode island",
        "south carolina",
        "south dakota",
        "tennessee",
        "texas",
        "utah",
        "vermont",
        "virginia",
        "washington",
        "west virginia",
        "wisconsin",
        "wyoming",
        "district of columbia",
    )
)
