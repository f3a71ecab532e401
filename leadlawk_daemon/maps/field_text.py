"""A field's value as text a person can use: never only an icon glyph, never only punctuation.

Google draws its icons with a symbol font whose glyphs sit in Unicode's private-use areas (an
address row starts with U+E0C8, a phone row with U+E0B0); saved pages and text extraction keep
them as characters. A glyph is no part of any value, so it is removed, and a value left with no
letter or digit (a lone "·", "–", "" or "()") is no value at all.
"""

from __future__ import annotations

import re

from leadlawk_daemon.maps.dom import squash

__all__ = ["field_text", "strip_glyphs"]

# The Basic Multilingual Plane's private-use area and the two supplementary ones.
_GLYPHS = re.compile("[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]+")


def strip_glyphs(text: str) -> str:
    return _GLYPHS.sub("", text)


def field_text(value: str | None) -> str | None:
    """``value`` without icon glyphs, whitespace squashed; ``None`` when no letter or digit is left."""
    if not value:
        return None
    text = squash(strip_glyphs(value))
    if not text or not any(ch.isalnum() for ch in text):
        return None
    return text
