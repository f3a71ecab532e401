"""The visible text lines of a stretch of markup, split into their " · "-separated segments.

Google lays out a card's facts as lines of spans ("Painter · 5024 S 110th St", "Closed ⋅ Opens 8 AM
· (402) 715-0110"). Reading the layout rather than class names survives Google's class renames.
"""

from __future__ import annotations

import re

from leadlawk_daemon.maps.dom import Element, squash
from leadlawk_daemon.maps.field_text import field_text

__all__ = ["Line", "text_lines"]

_SEPARATOR = re.compile(r"^[·•|]$")
# Lines are block elements; spans and inline markup are segments within them.
_BLOCKS = frozenset({"div", "p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th"})
# Text inside controls labels the control ("Website", "Directions"), not the business.
_CONTROLS = frozenset({"a", "button"})


class Line:
    __slots__ = ("element", "segments")

    def __init__(self, element: Element, segments: list[str]) -> None:
        self.element = element
        self.segments = segments

    @property
    def text(self) -> str:
        return " · ".join(self.segments)

    def __repr__(self) -> str:
        return f"Line({self.segments!r})"


def _segments(element: Element) -> list[str]:
    segments: list[str] = []
    for child in element.children:
        text = squash(child) if isinstance(child, str) else ("" if child.hidden else child.visible_text())
        text = text.strip(" ·")
        # An icon glyph ("", a private-use code point) or punctuation alone is no segment: it
        # would otherwise be read as the card's address or category.
        if text and not _SEPARATOR.match(text) and (kept := field_text(text)) is not None:
            segments.append(kept)
    return segments


def text_lines(elements: list[Element]) -> list[Line]:
    """Lines in document order among ``elements`` (a contiguous stretch of the document): block
    elements holding no block, outside controls and aria-hidden parts, with visible text."""
    lines: list[Line] = []
    skip_until = -1
    for element in elements:
        if element.index <= skip_until:
            continue
        if element.tag in _CONTROLS or element.hidden:
            skip_until = element.end
            continue
        if element.tag not in _BLOCKS or any(child.tag in _BLOCKS for child in element.elements()):
            continue
        segments = _segments(element)
        if segments:
            lines.append(Line(element, segments))
    return lines
