"""Phone numbers as shown, and their E.164 form where the page or the lead's country makes it certain.

A bare local number ("25 101555") is never given a guessed country: an international form
("+357 25 101555"), a ``tel:+…`` link, the lead's country (its address, or its job's location:
then ``phonenumbers`` reads the national form by that country's numbering plan and keeps only a
valid number), or the unmistakable North American "(402) 715-0110" shape decides it.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["looks_like_phone", "national_e164", "to_e164"]

# The countries of the North American Numbering Plan's "+1": the "(402) 715-0110" shape is theirs.
_NANP_COUNTRIES = frozenset(
    "US CA PR GU VI AS MP AG AI BB BM BS DM DO GD JM KN KY LC MS SX TC TT VC VG".split()  # noqa: SIM905
)

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


def national_e164(shown: str, country: str) -> str | None:
    """E.164 for a number written as ``country`` writes its numbers; ``None`` when it is no valid
    number there (a wrong country guessed never yields a plausible wrong number)."""
    if not looks_like_phone(shown) and not shown.strip().lower().startswith("tel:"):
        return None
    try:
        number = phonenumbers.parse(shown.strip().removeprefix("tel:"), country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_e164(shown: str | None, *alternatives: str | None, country: str | None = None) -> str | None:
    """E.164 for a number shown as ``shown``, helped by other forms of it (``tel:`` links, the
    international rendering) and by the lead's ``country``; ``None`` when the country cannot be
    known."""
    for candidate in (shown, *alternatives):
        if not candidate:
            continue
        text = candidate.strip()
        if text.lower().startswith("tel:"):
            text = text[4:]
        if (found := _international(text)) is not None:
            return found
    if country is not None:
        for candidate in (shown, *alternatives):
            if candidate and (found := national_e164(candidate, country)) is not None:
                return found
        if country not in _NANP_COUNTRIES:
            return None
    for candidate in (shown, *alternatives):
        if candidate and (nanp := _NANP.match(candidate.strip())):
            groups = [g for g in nanp.groups() if g]
            return "+1" + "".join(groups)
    return None
