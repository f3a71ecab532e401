"""Where a replica search takes place: a city and its state or region, its centre, area code and
postal code prefix, and its country.

``"Omaha, NE"`` resolves to Omaha's real centre; an unknown city in a known state gets a centre
near that state's, derived from its name; ``"Berlin, Germany"`` (or a city of any country of
:mod:`~leadlawk_daemon.replicas.maps_abroad`) resolves to that country's city; anything else
falls back to a US state chosen by hashing the text. Everything here is deterministic and offline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from leadlawk_daemon.replicas.maps_abroad import ABROAD, abroad_city, abroad_country

__all__ = ["DEFAULT_LOCATION", "Locality", "known_localities", "resolve_location"]

DEFAULT_LOCATION = "Omaha, NE"
"""Where a search without ``in <location>`` looks (Google would use the map's viewport)."""

# abbreviation: (name, area code, ZIP prefix, approximate centre latitude, longitude)
_STATES: dict[str, tuple[str, str, str, float, float]] = {
    "AL": ("Alabama", "205", "352", 32.8, -86.8), "AK": ("Alaska", "907", "995", 61.2, -149.9),
    "AZ": ("Arizona", "602", "850", 33.4, -112.0), "AR": ("Arkansas", "501", "722", 34.7, -92.3),
    "CA": ("California", "213", "900", 34.05, -118.25), "CO": ("Colorado", "303", "802", 39.74, -104.99),
    "CT": ("Connecticut", "860", "061", 41.76, -72.68), "DE": ("Delaware", "302", "198", 39.74, -75.55),
    "DC": ("District of Columbia", "202", "200", 38.9, -77.04),
    "FL": ("Florida", "305", "331", 25.76, -80.19),
    "GA": ("Georgia", "404", "303", 33.75, -84.39), "HI": ("Hawaii", "808", "968", 21.31, -157.86),
    "ID": ("Idaho", "208", "837", 43.62, -116.2), "IL": ("Illinois", "312", "606", 41.88, -87.63),
    "IN": ("Indiana", "317", "462", 39.77, -86.16), "IA": ("Iowa", "515", "503", 41.59, -93.62),
    "KS": ("Kansas", "316", "672", 37.69, -97.34), "KY": ("Kentucky", "502", "402", 38.25, -85.76),
    "LA": ("Louisiana", "504", "701", 29.95, -90.07), "ME": ("Maine", "207", "041", 43.66, -70.26),
    "MD": ("Maryland", "410", "212", 39.29, -76.61), "MA": ("Massachusetts", "617", "021", 42.36, -71.06),
    "MI": ("Michigan", "313", "482", 42.33, -83.05), "MN": ("Minnesota", "612", "554", 44.98, -93.27),
    "MS": ("Mississippi", "601", "392", 32.3, -90.18), "MO": ("Missouri", "314", "631", 38.63, -90.2),
    "MT": ("Montana", "406", "591", 45.78, -108.5), "NE": ("Nebraska", "402", "681", 41.2565, -95.9345),
    "NV": ("Nevada", "702", "891", 36.17, -115.14), "NH": ("New Hampshire", "603", "031", 42.99, -71.46),
    "NJ": ("New Jersey", "201", "071", 40.74, -74.17), "NM": ("New Mexico", "505", "871", 35.08, -106.65),
    "NY": ("New York", "212", "100", 40.71, -74.01), "NC": ("North Carolina", "704", "282", 35.23, -80.84),
    "ND": ("North Dakota", "701", "581", 46.88, -96.79), "OH": ("Ohio", "614", "432", 39.96, -83.0),
    "OK": ("Oklahoma", "405", "731", 35.47, -97.52), "OR": ("Oregon", "503", "972", 45.52, -122.68),
    "PA": ("Pennsylvania", "215", "191", 39.95, -75.17), "RI": ("Rhode Island", "401", "029", 41.82, -71.41),
    "SC": ("South Carolina", "803", "292", 34.0, -81.03), "SD": ("South Dakota", "605", "571", 43.55, -96.73),
    "TN": ("Tennessee", "615", "372", 36.16, -86.78), "TX": ("Texas", "512", "787", 30.27, -97.74),
    "UT": ("Utah", "801", "841", 40.76, -111.89), "VT": ("Vermont", "802", "054", 44.48, -73.21),
    "VA": ("Virginia", "804", "232", 37.54, -77.44), "WA": ("Washington", "206", "981", 47.61, -122.33),
    "WV": ("West Virginia", "304", "253", 38.35, -81.63), "WI": ("Wisconsin", "414", "532", 43.04, -87.91),
    "WY": ("Wyoming", "307", "820", 41.14, -104.82),
}

# A few real city centres, so the common demo searches land where a user expects.
_CITIES: dict[tuple[str, str], tuple[float, float, str, str]] = {
    ("omaha", "NE"): (41.2565, -95.9345, "402", "681"),
    ("papillion", "NE"): (41.1544, -96.0422, "402", "680"),
    ("lincoln", "NE"): (40.8136, -96.7026, "402", "685"),
    ("chicago", "IL"): (41.8781, -87.6298, "312", "606"),
    ("new york", "NY"): (40.7128, -74.006, "212", "100"),
    ("los angeles", "CA"): (34.0522, -118.2437, "213", "900"),
    ("austin", "TX"): (30.2672, -97.7431, "512", "787"),
    ("denver", "CO"): (39.7392, -104.9903, "303", "802"),
    ("seattle", "WA"): (47.6062, -122.3321, "206", "981"),
    ("miami", "FL"): (25.7617, -80.1918, "305", "331"),
    ("des moines", "IA"): (41.5868, -93.625, "515", "503"),
    ("kansas city", "MO"): (39.0997, -94.5786, "816", "641"),
}

_STATE_BY_NAME = {name.casefold(): abbr for abbr, (name, *_rest) in _STATES.items()}


@dataclass(frozen=True, slots=True)
class Locality:
    city: str
    state: str
    state_name: str
    area_code: str
    zip_prefix: str
    latitude: float
    longitude: float
    # ISO 3166-1 alpha-2; outside the US, ``state`` is what an address shows of the region ("SP",
    # or "" where it shows none) and ``state_name`` the region as Google's data names it.
    country: str = "US"

    @property
    def label(self) -> str:
        if self.country != "US":
            return f"{self.city}, {ABROAD[self.country].name}"
        return f"{self.city}, {self.state}"


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _state_of(token: str) -> str | None:
    token = token.strip().rstrip(".")
    upper = token.upper()
    if upper in _STATES:
        return upper
    # "Omaha, NE 68102" and "Omaha, Nebraska" name the state before a ZIP or in full.
    first = upper.split(" ")[0] if upper else ""
    if first in _STATES:
        return first
    return _STATE_BY_NAME.get(token.casefold())


def _abroad(parts: list[str]) -> Locality | None:
    country = abroad_country(parts[-1]) if len(parts) >= 2 else None
    if country is None:
        return None
    city = " ".join(parts[0].split())
    known = abroad_city(country, city)
    lat, lng = known.latitude, known.longitude
    if known.name.casefold() != city.casefold():
        h = _digest(f"{city.casefold()}|{country.code}")
        lat += ((h & 0xFFFF) / 0xFFFF - 0.5) * 1.0
        lng += (((h >> 16) & 0xFFFF) / 0xFFFF - 0.5) * 1.2
    else:
        city = known.name
    return Locality(city=city, state=known.region_short, state_name=known.region or "", area_code=known.area,
                    zip_prefix=known.postal, latitude=round(lat, 4), longitude=round(lng, 4), country=country.code)


def resolve_location(location: str | None) -> Locality:
    text = " ".join((location or DEFAULT_LOCATION).split()) or DEFAULT_LOCATION
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if (abroad := _abroad(parts)) is not None:
        return abroad
    state = _state_of(parts[-1]) if len(parts) >= 2 else None
    city_text = parts[0] if parts else text
    if state is None:
        state = _state_of(text)
        if state is not None:
            city_text = _STATES[state][0]
    if state is None:
        abbrs = sorted(_STATES)
        state = abbrs[_digest(text.casefold()) % len(abbrs)]
    city = " ".join(word[:1].upper() + word[1:] for word in city_text.split())
    name, area, zip3, lat, lng = _STATES[state]
    known = _CITIES.get((city.casefold(), state))
    if known is not None:
        lat, lng, area, zip3 = known
    elif city.casefold() != name.casefold():
        # An unknown city: somewhere within about 80 km of the state's main city, stable per name.
        h = _digest(f"{city.casefold()}|{state}")
        lat += ((h & 0xFFFF) / 0xFFFF - 0.5) * 1.4
        lng += (((h >> 16) & 0xFFFF) / 0xFFFF - 0.5) * 1.8
    return Locality(city=city, state=state, state_name=name, area_code=area, zip_prefix=zip3,
                    latitude=round(lat, 4), longitude=round(lng, 4))


def known_localities() -> tuple[Locality, ...]:
    """The cities whose real centres this replica knows, resolved as a search naming them would be."""
    return tuple(resolve_location(f"{city}, {state}") for city, state in _CITIES)
