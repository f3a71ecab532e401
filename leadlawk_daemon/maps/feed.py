"""A results feed: the cards of ``div[role=feed]``, each one business.

A card is found by its stable parts: a container (``role=article``, or Google's card class as a
last resort) or, failing that, the link to ``/maps/place/…`` that every card carries. Its identity
and position come from that link; its facts from labels and the layout of its text lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.dom import Document, Element, parse_html, squash
from leadlawk_daemon.maps.field_text import field_text
from leadlawk_daemon.maps.lines import Line, text_lines
from leadlawk_daemon.maps.links import website_of
from leadlawk_daemon.maps.phone import looks_like_phone, to_e164
from leadlawk_daemon.maps.place_ids import ids_from_elements, merge_refs
from leadlawk_daemon.maps.place_url import is_place_url, parse_place_url
from leadlawk_daemon.maps.ratings import parse_count_in_parens, parse_rating_label, parse_stars

__all__ = ["FeedParse", "parse_feed"]

# Google's obfuscated class names: used only when the stable signals are missing.
_CARD_CLASS = "Nv2PK"
_NAME_CLASSES = ("qBF1Pd", "fontHeadlineSmall")
_STARS_CLASS = "MW4etd"
_COUNT_CLASS = "UY7F9"
_END_CLASS = "HlvSq"

_END_OF_LIST = re.compile(r"you(?:'|’|&#39;)ve reached the end of the list", re.IGNORECASE)
_PRICE = re.compile(r"^(?:[$€£¥₩₹₽]{1,4}|[$€£¥₩₹₽]\s?\d[\d\s–\-+]*)$")
# "Closed ⋅ Opens 8 AM Thu": Google writes opening status with a dot operator, never a category.
_HOURS_MARK = "⋅"
_ROW_TAGS = frozenset({"div", "p", "li"})


@dataclass(frozen=True, slots=True)
class FeedParse:
    """What a feed page holds: its businesses once each in feed order, the cards that could not be
    read, and whether Google says the list has ended."""

    listings: list[Listing] = field(default_factory=list)
    malformed: int = 0
    end_of_list: bool = False


@dataclass(frozen=True, slots=True)
class _Card:
    elements: list[Element]
    container: Element | None


def _outermost(candidates: list[Element]) -> list[Element]:
    outer: list[Element] = []
    for element in candidates:
        if not outer or not outer[-1].contains(element):
            outer.append(element)
    return outer


def _cards(doc: Document, scope: list[Element]) -> list[_Card]:
    containers = _outermost(
        [e for e in scope if e.get("role") == "article" or _CARD_CLASS in e.classes()]
    )
    anchors = [
        e for e in scope
        if e.tag == "a" and is_place_url(e.get("href") or "")
        and not any(c.contains(e) for c in containers)
    ]
    starts = sorted([(c.index, c) for c in containers] + [(a.index, a) for a in anchors], key=lambda p: p[0])
    cards: list[_Card] = []
    for position, (index, element) in enumerate(starts):
        if element in containers:
            cards.append(_Card(doc.elements[index : element.end + 1], element))
            continue
        # A bare card link: the card runs to the end of the link's parent or the next card.
        parent_end = element.parent.end if element.parent is not None else element.end
        next_start = starts[position + 1][0] if position + 1 < len(starts) else len(doc.elements)
        cards.append(_Card(doc.elements[index : min(parent_end + 1, next_start)], None))
    return cards


def _name(label: str, lines: list[Line], elements: list[Element], url_name: str | None) -> str | None:
    texts = {line.text for line in lines}
    if label:
        if label in texts or " · " not in label:
            return label
        # "Papillion Barbers · Visited link": the suffix is the browser's, not the business's.
        return label.rsplit(" · ", 1)[0].strip() or None
    for element in elements:
        if any(cls in element.classes() for cls in _NAME_CLASSES) and (text := element.visible_text()):
            return text
    return url_name


def _rating(elements: list[Element]) -> tuple[float | None, int | None]:
    rating: float | None = None
    count: int | None = None
    for element in elements:
        if element.get("role") == "img" and (parsed := parse_rating_label(element.get("aria-label") or "")):
            rating, count = parsed
            break
    if rating is None:
        for element in elements:
            if _STARS_CLASS in element.classes() and (stars := parse_stars(element.visible_text() or
                                                                            element.own_text())):
                rating = stars
                break
    if rating is not None and count is None:
        for element in elements:
            if (found := parse_count_in_parens(element.own_text())) is not None:
                count = found
                break
    return rating, count


def _facts(lines: list[Line], name: str) -> tuple[str | None, str | None, str | None]:
    """(category, address, phone) from the card's text lines."""
    body = [line for line in lines if line.text != name]
    category = address = phone = None
    for line in body:
        for segment in line.segments:
            if phone is None and looks_like_phone(segment):
                phone = segment
    candidates: list[list[str]] = []
    preferred: list[list[str]] = []
    for line in body:
        kept = [s for s in line.segments if not _PRICE.match(s) and not looks_like_phone(s)]
        if not kept or any(_HOURS_MARK in s for s in kept):
            continue
        candidates.append(kept)
        # The category row sits beside the opening-hours row; a lone line ("No reviews" where the
        # stars would be) has no sibling row.
        parent = line.element.parent
        if parent is not None and sum(1 for c in parent.elements() if c.tag in _ROW_TAGS) >= 2:
            preferred.append(kept)
    chosen = preferred[0] if preferred else candidates[0] if candidates else None
    if chosen is not None:
        category = chosen[0]
        address = chosen[-1] if len(chosen) > 1 else None
    return category, address, phone


def _read_card(card: _Card) -> Listing | None:
    elements = card.elements
    anchor = next(
        (e for e in elements if e.tag == "a" and is_place_url(e.get("href") or "")), None
    )
    if anchor is None:
        return None
    href = anchor.get("href") or ""
    ref = parse_place_url(href)
    if ref.place_id is None or ref.latitude is None:
        # A card link without ids (or with the viewport's position only): the card's data
        # attributes and other links may carry them (maps/place_ids.py).
        ref = merge_refs(ref, ids_from_elements((), elements)) or ref
    if ref.place_id is None:
        return None
    lines = text_lines(elements)
    container_label = card.container.get("aria-label") if card.container is not None else None
    label = squash(anchor.get("aria-label") or container_label or "")
    name = field_text(_name(label, lines, elements, ref.name))
    if not name:
        return None
    rating, review_count = _rating(elements)
    category, address, phone = _facts(lines, name)
    tel = next((e.get("href") for e in elements if (e.get("href") or "").startswith("tel:")), None)
    links = [
        e for e in elements if e.tag == "a" and e is not anchor and not is_place_url(e.get("href") or "")
    ]
    return Listing(
        name=name,
        place_id=ref.place_id,
        cid=ref.cid,
        category=field_text(category),
        address=field_text(address),
        phone=field_text(phone),
        phone_e164=to_e164(phone, tel),
        website=website_of(links, allow_unmarked=True),
        rating=rating,
        review_count=review_count,
        latitude=ref.latitude,
        longitude=ref.longitude,
        maps_url=href,
    )


def _end_of_list(doc: Document, html: str) -> bool:
    if _END_OF_LIST.search(html):
        return True
    return any(_END_CLASS in e.classes() for e in doc.elements)


def parse_feed(html: str) -> FeedParse:
    """The businesses in a results feed (or any markup holding its cards)."""
    doc = parse_html(html)
    feed = next((e for e in doc.elements if e.get("role") == "feed"), None)
    scope = doc.within(feed) if feed is not None else doc.elements[1:]
    listings: dict[str, Listing] = {}
    malformed = 0
    for card in _cards(doc, scope):
        listing = _read_card(card)
        if listing is None or listing.place_id is None:
            malformed += 1
            continue
        seen = listings.get(listing.place_id)
        # The same card repeated: keep its first place, fill what it lacked from the repeat.
        listings[listing.place_id] = listing if seen is None else seen.merged(listing)
    return FeedParse(list(listings.values()), malformed, _end_of_list(doc, html))
