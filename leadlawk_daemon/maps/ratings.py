"""Star ratings and review counts as Google writes them, in any language.

Labels look like "4.8 stars 114 Reviews", "4,8 Sterne 1.234 Rezensionen" or "145 reviews"; counts
may carry thousands separators (",", ".", spaces, non-breaking spaces).
"""

from __future__ import annotations

import re

__all__ = ["parse_count", "parse_count_in_parens", "parse_rating_label", "parse_stars"]

_NUMBER = re.compile(r"\d(?:[\d.,\u00a0\u202f ]*\d)?")
_STARS = re.compile(r"^([0-5](?:[.,]\d)?)(?!\d)")
# Possessive: the separators (spaces) and the "\s*" after them overlap, and backtracking between
# the two made a long run of spaces quadratic.
_COUNT_IN_PARENS = re.compile(r"^\(\s*+(\d[\d.,\u00a0\u202f ]*+)\s*+\)$")


def parse_count(text: str) -> int | None:
    """A whole count, separators and all ("1,234", "1.234", "1 234"); ``None`` when there is none."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    digits = re.sub(r"\D", "", match.group(0))
    return int(digits) if digits and len(digits) <= 12 else None


def parse_stars(text: str) -> float | None:
    """A 0-5 rating written "4.8" or "4,8"."""
    match = _STARS.match(text.strip())
    return float(match.group(1).replace(",", ".")) if match else None


def parse_rating_label(label: str) -> tuple[float | None, int | None] | None:
    """(rating, review count) from a rating label; ``None`` when the label is not one.

    The first number must be a 0-5 rating followed by a word ("stars", "Sterne"); the count, when
    present, is the next number.
    """
    label = label.strip()
    stars = _STARS.match(label)
    if stars is None:
        return None
    rating = float(stars.group(1).replace(",", "."))
    rest = label[stars.end() :]
    if not re.match(r"^\s*[^\W\d]", rest):
        return None
    numbers = _NUMBER.findall(rest)
    count = parse_count(numbers[0]) if numbers else None
    return rating, count


def parse_count_in_parens(text: str) -> int | None:
    """The "(1,234)" that follows stars on cards."""
    match = _COUNT_IN_PARENS.match(text.strip())
    return parse_count(match.group(1)) if match else None
