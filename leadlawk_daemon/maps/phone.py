"""Phone numbers as shown, and their E.164 form where the page makes it certain.

A bare local number ("25 101555") is never given a guessed country: only an international form
("+357 25 101555"), a ``tel:+…`` link, or the unmistakable North American "(402) 715-0110" shape
decides the country.
"""

from __future__ import annotations

import re

__all__ = ["looks_like_phone", "to_e164"]

_DIGITS = re.compile(r"\d")
# What a displayed phone number may consist of; anything else (letters, quotes) is not one.
_PHONE_CHARS = re.compile(r"^\+?[\d\s\u00a0\u202f().\-‒–/]+$")
# North American Numbering Plan: area code and exchange never start with 0 or 1.
_NANP = re.compile(
    r"^(?:\+?1[\s.-]?)?\(([2-9]\d\d)\)\s?([2-9]\d\d)[\s.-]?(\d{4})$"
    r"|^([2-9]\d\d)-([2-9]\d\d)-(\d{4})$"
)


def looks_like_phone(text: str) -> bool:
    """Whether ``text`` is a phone number as Google displays one (7 to 15 digits, phone punctuation)."""
    text = text.strip()
    if not _PHONE_CHARS.match(text):
        return False
    digits = len(_DIGITS.findall(text))
    return 7 <= digits <= 15


def _international(text: str) -> str | None:
    digits = "".join(_DIGITS.findall(text))
    if text.lstrip().startswith("+") and 8 <= len(digits) <= 15 and not digits.startswith("0"):
        return "+" + digits
    return None


def to_e164(shown: str | None, *alternatives: str | None) -> str | None:
    """E.164 for a number shown as ``shown``, helped by other forms of it (``tel:`` links, the
    international rendering); ``None`` when the country cannot be known."""
    for candidate in (shown, *alternatives):
        if not candidate:
            continue
        text = candidate.strip()
        if text.lower().startswith("tel:"):
            text = text[4:]
        if (found := _international(text)) is not None:
            return found
    for candidate in (shown, *alternatives):
        if candidate and (nanp := _NANP.match(candidate.strip())):
            groups = [g for g in nanp.groups() if g]
            return "+1" + "".join(groups)
    return None
