"""The parser never raises on arbitrary or mutated input: it returns what it can read."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadlawk_daemon.maps.parser import (
    UnrecognizedPage,
    detect_and_parse,
    parse_feed,
    parse_place_panel,
    parse_place_state,
    parse_search_json,
)
from tests.linearity import examples
from tests.maps_samples import (
    AlsoSearched,
    Biz,
    card,
    feed,
    panel,
    place_array,
    search_payload,
    state_payload,
)

A = Biz("Papillion Barbers", "ChIJlf83wOaKk4cRffVjfEnoMaw", website="https://papillionbarbers.com/")
B = Biz("Style House", "ChIJstylehouse0000000000", cid="0x1:0x2", reviews="1,234", address=None)
SAMPLES = [
    feed([card(A), card(B, label_suffix=" · Visited link"), card(A, container="bare")], end=True),
    panel(
        A,
        website_href="/url?q=https://x.example/",
        booking_href="https://visibook.com/x",
        hours_table=[("Monday", "9 AM–5 PM")],
        also=[AlsoSearched("Other")],
    ),
    state_payload(A),
    search_payload([A, B]),
]
FUZZ = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Edits: (relative position, characters removed, text inserted); markup-ish text makes them bite.
edits = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=1),
        st.integers(min_value=0, max_value=40),
        st.lists(st.sampled_from([*'<>/"=!&;#[]{},: aé·\n', "<div", "</a>", "!19s", "ChIJ"]), max_size=6).map(
            "".join
        ),
    ),
    max_size=8,
)


def mutate(text: str, changes: list[tuple[float, int, str]]) -> str:
    for where, removed, inserted in changes:
        at = int(where * len(text))
        text = text[:at] + inserted + text[at + removed :]
    return text


def check_all(text: str) -> None:
    result = parse_feed(text)
    assert result.malformed >= 0
    ids = [listing.place_id for listing in result.listings]
    assert len(ids) == len(set(ids))
    parse_place_panel(text)
    parse_place_panel(text, "https://www.google.com/maps/place/X/data=!3d1!4d2!19sChIJx")
    parse_place_state(text)
    with contextlib.suppress(ValueError):
        parse_search_json(text)
    with contextlib.suppress(UnrecognizedPage):
        detect_and_parse(text)


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(text: str) -> None:
    check_all(text)


@FUZZ
@given(st.sampled_from(SAMPLES), edits)
def test_mutated_pages_never_raise(sample: str, changes: list[tuple[float, int, str]]) -> None:
    check_all(mutate(sample, changes))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=40,
)


@FUZZ
@given(json_values, st.integers(min_value=0, max_value=199), json_values)
def test_place_arrays_with_any_slot_of_any_type_never_raise(value: Any, slot: int, junk: Any) -> None:
    place = place_array(A)
    place[slot] = junk
    for text in (
        json.dumps([None] * 6 + [place]),
        json.dumps([["q", [None, [None] * 14 + [place]]]]),
        json.dumps(value),
    ):
        parse_place_state(text)
        parse_search_json(text)
