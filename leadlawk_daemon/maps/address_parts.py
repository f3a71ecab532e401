"""An address in the parts a CRM imports, and the parts Google's own place data carries.

Google's place array (a place page's ``APP_INITIALIZATION_STATE``, a ``search?tbm=map`` answer)
holds the address already split at ``[183][1]``: ``[neighbourhood, street, street line, locality,
postal code, region, country code]``, e.g. ``[null, "Eakou 74", "Eakou 74", "Ilion", "131 22",
null, "GR"]`` or, for a Brazilian place, ``["Setor 06", "R. Cecília Meireles", …, "Ariquemes",
"76873-632", "Rondônia", "BR"]``; ``[243]`` repeats the country code. A part Google leaves out
stays unknown: it is not guessed from the formatted address beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadlawk_daemon.maps.countries import is_country_code
from leadlawk_daemon.maps.field_text import field_text
from leadlawk_daemon.maps.positional import at

__all__ = ["AddressParts", "google_parts"]


@dataclass(frozen=True, slots=True)
class AddressParts:
    """``None`` is unknown. ``country_code`` is ISO 3166-1 alpha-2."""

    street: str | None = None
    locality: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country_code: str | None = None

    def located(self) -> bool:
        """Whether any part below the country is known."""
        return any((self.street, self.locality, self.region, self.postal_code))

    def any(self) -> bool:
        return self.located() or self.country_code is not None


def _text(value: Any) -> str | None:
    return field_text(value) if isinstance(value, str) else None


def google_parts(place: Any) -> AddressParts | None:
    """The parts in a place array, ``None`` when it carries none (then the address is parsed)."""
    parts = at(place, 183, 1)
    country = _text(at(parts, 6)) or _text(at(place, 243))
    country = country.upper() if country is not None and is_country_code(country.upper()) else None
    if not isinstance(parts, list):
        return AddressParts(country_code=country) if country else None
    # [2] is the street line as written (with the house number where [1] may lack it).
    street = _text(at(parts, 2)) or _text(at(parts, 1))
    found = AddressParts(
        street=street,
        locality=_text(at(parts, 3)),
        region=_text(at(parts, 5)),
        postal_code=_text(at(parts, 4)),
        country_code=country,
    )
    return found if found.any() else None
