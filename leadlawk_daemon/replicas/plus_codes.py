"""Open Location Codes ("plus codes"), as Google Maps shows them on a place page.

Only encoding is needed: the replica shows the code of a generated business's coordinates,
in the short form with a locality ("4XV5+G5 Papillion, Nebraska") that the real panel shows.
"""

from __future__ import annotations

__all__ = ["encode_plus_code", "short_plus_code"]

_ALPHABET = "23456789CFGHJMPQRVWX"
_PAIRS = 5
_RESOLUTION = 8000  # steps per degree at ten digits (the last pair is 1/8000 of a degree)


def encode_plus_code(latitude: float, longitude: float) -> str:
    """The ten-digit global code, e.g. ``86H74XV5+G5``."""
    lat = min(max(latitude, -90.0), 90.0 - 1e-9) + 90.0
    lng = (longitude + 180.0) % 360.0
    lat_steps = int(lat * _RESOLUTION)
    lng_steps = int(lng * _RESOLUTION)
    digits: list[str] = []
    for _ in range(_PAIRS):
        digits.append(_ALPHABET[lng_steps % 20])
        digits.append(_ALPHABET[lat_steps % 20])
        lat_steps //= 20
        lng_steps //= 20
    code = "".join(reversed(digits))
    return f"{code[:8]}+{code[8:]}"


def short_plus_code(latitude: float, longitude: float, locality: str) -> str:
    """The code without its area prefix, followed by the locality it is relative to."""
    return f"{encode_plus_code(latitude, longitude)[4:]} {locality}"
