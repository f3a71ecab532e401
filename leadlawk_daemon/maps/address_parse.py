"""The parts of a formatted address, read by its country's format where Google's data lacks them.

Google formats an address the way the country writes it, so one rule per country reads it back:

* US ``110 Cedardale Rd, Papillion, NE 68046``: state and ZIP last, the locality before them;
* DE / FR ``Friedrichstraße 123, 10117 Berlin``, ``12 Rue de Rivoli, 75004 Paris``: postal code
  before the locality;
* GB ``221B Baker St, London NW1 6XE``: the postcode after the post town;
* BR ``Av. Paulista, 1578 - Bela Vista, São Paulo - SP, 01310-200``: neighbourhood after " - ",
  then "city - UF", then the CEP;
* IN ``12 MG Road, Bengaluru, Karnataka 560001``: the state and the PIN last;
* PH ``6750 Ayala Ave, Makati, 1226 Metro Manila``: postal code before the province;
* elsewhere (GR ``Eakou 74, Ilion 131 22``, CY ``Old port, Limassol 3042``): a locality and a
  postal code of digits in either order, last.

Hand-written rules, not ``usaddress`` or libpostal: usaddress reads US addresses only, and
libpostal needs a 2 GB model and a C library for what seven short rules do here. Every rule works
on comma-separated segments of a text clipped to ``MAX_ADDRESS`` characters, with patterns
anchored at both ends and no nested repetition: linear in the address (docs/linear-parsing.md).
A country with no rule of its own goes through the last one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from leadlawk_daemon.maps.address_parts import AddressParts
from leadlawk_daemon.maps.countries import US_STATES, country_code
from leadlawk_daemon.maps.field_text import field_text

__all__ = ["MAX_ADDRESS", "guess_country", "parse_address"]

MAX_ADDRESS = 300
"""Longer text is no address Google shows: only this much of it is read."""

_US_LAST = re.compile(r"^([A-Z]{2})(?:\s+(\d{5}(?:-\d{4})?))?$")
_POSTAL_FIRST = re.compile(r"^(\d{4,5})\s+(\D.*)$")
_GB_POSTCODE = re.compile(r"(?:^|\s)([A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})$")
_BR_CEP = re.compile(r"^\d{5}-?\d{3}$")
_BR_CITY = re.compile(r"^(\D+?)\s+-\s+([A-Z]{2})$")
_IN_LAST = re.compile(r"^(\D+?)\s+(\d{3}\s?\d{3})$")
_DIGITS_LAST = re.compile(r"^(\D+?)\s+(\d[\d ]{2,8}\d)$")
_DIGITS_FIRST = re.compile(r"^(\d[\d ]{2,8}\d)\s+(\D+)$")

_BR_STATES = {
    "AC": "Acre",
    "AL": "Alagoas",
    "AP": "Amapá",
    "AM": "Amazonas",
    "BA": "Bahia",
    "CE": "Ceará",
    "DF": "Distrito Federal",
    "ES": "Espírito Santo",
    "GO": "Goiás",
    "MA": "Maranhão",
    "MT": "Mato Grosso",
    "MS": "Mato Grosso do Sul",
    "MG": "Minas Gerais",
    "PA": "Pará",
    "PB": "Paraíba",
    "PR": "Paraná",
    "PE": "Pernambuco",
    "PI": "Piauí",
    "RJ": "Rio de Janeiro",
    "RN": "Rio Grande do Norte",
    "RS": "Rio Grande do Sul",
    "RO": "Rondônia",
    "RR": "Roraima",
    "SC": "Santa Catarina",
    "SP": "São Paulo",
    "SE": "Sergipe",
    "TO": "Tocantins",
}

# (street segments, locality, region, postal code)
_Read = tuple[list[str], str | None, str | None, str | None]


def _street(segments: list[str]) -> str | None:
    return ", ".join(segments) or None


def _us(segments: list[str]) -> _Read:
    last = _US_LAST.match(segments[-1]) if len(segments) >= 2 else None
    if last is None or last.group(1) not in US_STATES:
        return segments, None, None, None
    return segments[:-2], segments[-2], last.group(1), last.group(2)


def _postal_first(segments: list[str]) -> _Read:
    last = _POSTAL_FIRST.match(segments[-1])
    if last is None:
        return segments, None, None, None
    return segments[:-1], last.group(2), None, last.group(1)


def _gb(segments: list[str]) -> _Read:
    last = _GB_POSTCODE.search(segments[-1])
    if last is None:
        return segments, None, None, None
    town = segments[-1][: last.start()].strip()
    if town:
        return segments[:-1], town, None, last.group(1)
    if len(segments) >= 2:  # "…, London, NW1 6XE"
        return segments[:-2], segments[-2], None, last.group(1)
    return [], None, None, last.group(1)


def _br(segments: list[str]) -> _Read:
    rest = list(segments)
    postal = rest.pop() if len(rest) >= 2 and _BR_CEP.match(rest[-1]) else None
    locality = region = None
    if rest and (city := _BR_CITY.match(rest[-1])) is not None:
        rest.pop()
        locality, region = city.group(1), _BR_STATES.get(city.group(2), city.group(2))
    if locality is None and postal is None:
        return segments, None, None, None
    if rest and " - " in rest[-1]:
        # "1578 - Bela Vista": the neighbourhood is no part of the street line.
        rest[-1] = rest[-1].split(" - ", 1)[0].strip()
    return [s for s in rest if s], locality, region, postal


def _in(segments: list[str]) -> _Read:
    last = _IN_LAST.match(segments[-1]) if len(segments) >= 2 else None
    if last is None:
        return segments, None, None, None
    return segments[:-2], segments[-2], last.group(1), last.group(2)


def _ph(segments: list[str]) -> _Read:
    last = _POSTAL_FIRST.match(segments[-1]) if len(segments) >= 2 else None
    if last is None or len(last.group(1)) != 4:
        return segments, None, None, None
    return segments[:-2], segments[-2], last.group(2), last.group(1)


def _generic(segments: list[str]) -> _Read:
    if len(segments) < 2:
        return segments, None, None, None
    if (last := _DIGITS_LAST.match(segments[-1])) is not None:
        return segments[:-1], last.group(1), None, last.group(2)
    if (first := _DIGITS_FIRST.match(segments[-1])) is not None:
        return segments[:-1], first.group(2), None, first.group(1)
    return segments, None, None, None


_RULES: dict[str, Callable[[list[str]], _Read]] = {
    "US": _us,
    "DE": _postal_first,
    "FR": _postal_first,
    "GB": _gb,
    "BR": _br,
    "IN": _in,
    "PH": _ph,
}
# Formats distinctive enough to tell the country from the address alone, most certain first.
_GUESSES = ("US", "BR", "GB", "IN")


def _segments(text: str) -> list[str]:
    return [s for part in text[:MAX_ADDRESS].split(",") if (s := field_text(part)) is not None]


def guess_country(segments: list[str]) -> str | None:
    """The country whose distinctive format ``segments`` have (a US state and ZIP, a CEP, a GB
    postcode, an Indian PIN), or ``None``."""
    for code in _GUESSES:
        _, locality, region, postal = _RULES[code](segments)
        if postal is not None and (locality is not None or region is not None):
            return code
    return None


def parse_address(address: str | None, country: str | None) -> AddressParts | None:
    """The parts of ``address`` as ``country`` formats it (the country the address names last
    wins; with neither, a distinctive format decides). ``None`` when there is no address."""
    if not address:
        return None
    segments = _segments(address)
    if len(segments) >= 2 and (named := country_code(segments[-1])) is not None:
        segments.pop()
        country = named
    if not segments:
        return AddressParts(country_code=country) if country else None
    if country is None:
        country = guess_country(segments)
    rule = _RULES.get(country or "", _generic)
    street, locality, region, postal = rule(segments)
    return AddressParts(
        street=_street(street),
        locality=locality,
        region=region,
        postal_code=postal,
        country_code=country,
    )
