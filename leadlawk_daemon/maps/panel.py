"""A place page's panel: the business the page is about, read from its information rows.

The information region's rows carry ``data-item-id`` (``address``, ``authority``, ``phone:tel:…``,
``oloc``), which Google keeps stable while class names churn. "People also search for" is a
carousel of other businesses inside the same panel: it is cut out before anything is read, so
none of its ratings, categories or links can leak into this business.
"""

from __future__ import annotations

import re

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.dom import Element, parse_html, squash
from leadlawk_daemon.maps.field_text import field_text
from leadlawk_daemon.maps.lines import text_lines
from leadlawk_daemon.maps.links import website_of
from leadlawk_daemon.maps.phone import to_e164
from leadlawk_daemon.maps.place_ids import ids_from_elements, merge_refs
from leadlawk_daemon.maps.place_url import PlaceRef, is_place_url, parse_place_url
from leadlawk_daemon.maps.ratings import (
    parse_count,
    parse_count_in_parens,
    parse_rating_label,
    parse_stars,
)
from leadlawk_daemon.maps.state import parse_place_state

__all__ = ["parse_place_panel"]

# Google's obfuscated class names: used only when the stable signals are missing.
_NAME_CLASS = "DUwDvf"
_CATEGORY_CLASS = "DkEaL"

_ALSO_SEARCHED = re.compile(r"people also search for", re.IGNORECASE)
# A carousel entry's label: "Name · 4.8 stars · 114 reviews · Barber shop".
_ENTRY_LABEL = re.compile(r" · \d[.,]?\d? \S+ · ")
# Possessive runs, and the "whitespace before the word" checked behind instead of as a "\s+" that
# overlaps the separators (spaces): linear on a label of any length (docs/masking.md).
_COUNT_LABEL = re.compile(r"^\s*+\d[\d.,\u00a0\u202f ]*+\s*+(?<=\s)[^\W\d]")
_DAY = re.compile(r"^[^\W\d][^\d]{1,24}$")
_SECTION_ROLES = frozenset({"tablist", "tab", "region", "toolbar"})
# How far after the stars their review count may sit (header markup is a handful of spans).
_COUNT_WINDOW = 40


def _foreign_ranges(elements: list[Element], own_place_id: str | None) -> list[tuple[int, int]]:
    """Stretches of the panel about other businesses."""
    ranges: list[tuple[int, int]] = []
    for element in elements:
        if element.get("aria-roledescription") == "carousel" or _ENTRY_LABEL.search(
            element.get("aria-label") or ""
        ):
            ranges.append((element.index, element.end))
        elif element.tag == "a" and is_place_url(href := element.get("href") or ""):
            other = parse_place_url(href).place_id
            if other is not None and other != own_place_id:
                ranges.append((element.index, element.end))
        elif element.tag in {"h2", "h3"} and _ALSO_SEARCHED.search(element.visible_text()):
            # The heading's section: from the heading to the end of the block after it.
            section = element.parent
            block = section.parent if section is not None else None
            end = element.end
            if section is not None and block is not None:
                siblings = list(block.elements())
                position = siblings.index(section)
                end = siblings[position + 1].end if position + 1 < len(siblings) else section.end
            ranges.append((element.index, end))
    return ranges


def _own(elements: list[Element], ranges: list[tuple[int, int]]) -> list[Element]:
    if not ranges:
        return elements
    return [e for e in elements if not any(start <= e.index <= end for start, end in ranges)]


def _first(elements: list[Element], item_id: str) -> Element | None:
    return next(
        (e for e in elements if (e.get("data-item-id") or "").startswith(item_id)), None
    )


def _labelled_value(element: Element | None) -> str | None:
    """A row's shown value (never its icon glyph alone); its label after "Address: " when the row
    shows no text."""
    if element is None:
        return None
    if text := field_text(element.visible_text()):
        return text
    label = squash(element.get("aria-label") or "")
    return field_text(label.split(":", 1)[1]) if ":" in label else field_text(label)


def _name(main: Element | None, elements: list[Element], ref: PlaceRef | None) -> str | None:
    if main is not None and (label := squash(main.get("aria-label") or "")):
        return label
    for element in elements:
        if element.tag == "h1" and (text := element.visible_text()):
            return text
    for element in elements:
        if _NAME_CLASS in element.classes() and (text := element.visible_text()):
            return text
    return ref.name if ref is not None else None


def _rating(elements: list[Element]) -> tuple[float | None, int | None, int]:
    """(rating, review count, position of the rating) of the first rating in the panel."""
    for position, element in enumerate(elements):
        if element.get("role") != "img":
            continue
        parsed = parse_rating_label(element.get("aria-label") or "")
        if parsed is None:
            continue
        rating, count = parsed
        # The count sits in the rating's own block (stars, then "(N)"). Google's limited view shows
        # the stars alone: a number further on (hours, another business) is not this one's count.
        parent = element.parent
        block = parent.parent if parent is not None and parent.parent is not None else parent
        if count is None:
            for follower in elements[position + 1 : position + _COUNT_WINDOW]:
                if block is not None and not block.contains(follower):
                    break
                label = follower.get("aria-label") or ""
                if _COUNT_LABEL.match(label) and parse_rating_label(label) is None:
                    count = parse_count(label)
                elif (found := parse_count_in_parens(follower.own_text())) is not None:
                    count = found
                if count is not None:
                    break
        return rating, count, position
    return None, None, -1


def _category(elements: list[Element], name: str, rating_at: int) -> str | None:
    for element in elements:
        if (element.get("jsaction") or "").endswith(".category") and (text := element.visible_text()):
            return text
    # The header's line after the stars ("Barber shop · ♿"); the header ends where the tabs,
    # action buttons or information rows begin.
    start = max(rating_at, 0)
    stop = next(
        (i for i in range(start, len(elements))
         if elements[i].get("role") in _SECTION_ROLES or elements[i].get("data-item-id")),
        len(elements),
    )
    header = elements[start:stop]
    for line in text_lines(header):
        kept = [
            s for s in line.segments
            if s != name and parse_stars(s) is None and parse_count_in_parens(s) is None
        ]
        if kept:
            return kept[0]
    for element in elements:
        if _CATEGORY_CLASS in element.classes() and (text := element.visible_text()):
            return text
    return None


def _hours(elements: list[Element]) -> tuple[tuple[str, str], ...] | None:
    rows: list[tuple[str, str]] = []
    for element in elements:
        if element.tag != "tr":
            continue
        cells = [c for c in element.elements() if c.tag in {"td", "th"}]
        if len(cells) < 2:
            continue
        day = cells[0].visible_text()
        hours = cells[1].visible_text() or squash(cells[1].get("aria-label") or "")
        if _DAY.match(day) and hours:
            rows.append((day, hours))
    if rows:
        return tuple(rows)
    for element in elements:
        # "Monday, 9 AM to 5 PM; Tuesday, …. Hide open hours for the week"
        label = squash(element.get("aria-label") or "")
        if label.count(";") < 2:
            continue
        pairs = []
        for part in label.split(";"):
            day, _, hours = part.partition(",")
            day, hours = day.strip(), hours.split(". ")[0].strip(" .")
            if _DAY.match(day) and hours:
                pairs.append((day, hours))
        if len(pairs) >= 2:
            return tuple(pairs)
    return None


def _page_ref(elements: list[Element]) -> PlaceRef | None:
    for element in elements:
        if element.tag in {"link", "meta"}:
            target = element.get("href") or element.get("content") or ""
            if is_place_url(target):
                return parse_place_url(target)
    return None


def parse_place_panel(html: str, url: str | None = None) -> Listing | None:
    """The business of a place page's panel; ``url`` is the page's address (the panel markup
    usually lacks the place id and coordinates). ``None`` when the markup holds no panel."""
    doc = parse_html(html)
    ref = merge_refs(parse_place_url(url) if url and is_place_url(url) else None, _page_ref(doc.elements))
    main = next((e for e in doc.elements if e.get("role") == "main"), None)
    scope = doc.within(main) if main is not None else doc.elements[1:]
    elements = _own(scope, _foreign_ranges(scope, ref.place_id if ref else None))
    name = field_text(_name(main, elements, ref))
    if not name:
        return None
    rating, review_count, rating_at = _rating(elements)
    phone_row = _first(elements, "phone:")
    phone = _labelled_value(phone_row)
    tel = (phone_row.get("data-item-id") or "").removeprefix("phone:") if phone_row is not None else None
    tel_links = [e.get("href") for e in elements if (e.get("href") or "").startswith("tel:")]
    listing = Listing(
        name=name,
        place_id=ref.place_id if ref else None,
        cid=ref.cid if ref else None,
        category=field_text(_category(elements, name, rating_at)),
        address=_labelled_value(_first(elements, "address")),
        phone=phone,
        phone_e164=to_e164(phone, tel, *tel_links),
        website=website_of([e for e in elements if e.tag == "a"], allow_unmarked=False),
        rating=rating,
        review_count=review_count,
        latitude=ref.latitude if ref else None,
        longitude=ref.longitude if ref else None,
        maps_url=url if url and is_place_url(url) else None,
        plus_code=_labelled_value(_first(elements, "oloc")),
        hours=_hours(elements),
    )
    state = parse_place_state(html) if "APP_INITIALIZATION_STATE" in html else None
    if state is not None and _same_place(listing, state):
        listing = listing.merged(state)
    if listing.place_id is None or listing.cid is None or listing.latitude is None:
        # Neither the URL nor the page state said: the page's data attributes and own links may.
        found = ids_from_elements(doc.elements, elements)
        listing = listing.merged(
            Listing(name=name, place_id=found.place_id, cid=found.cid, latitude=found.latitude,
                    longitude=found.longitude)
        )
    return listing


def _same_place(listing: Listing, state: Listing) -> bool:
    """Whether the page state's place is the panel's: by id when both have one, else by name as
    a person reads it (case and spacing aside, "UPPERCUTS barbershop" in "UPPERCUTS Barbershop -
    Papillion")."""
    if listing.place_id and state.place_id:
        return listing.place_id == state.place_id
    ours, theirs = " ".join(listing.name.casefold().split()), " ".join(state.name.casefold().split())
    return ours == theirs or (min(len(ours), len(theirs)) >= 4 and (ours in theirs or theirs in ours))
