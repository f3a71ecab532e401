"""Synthetic Google Maps pages for the parser's tolerance tests, shaped like the real captures.

Each builder takes the facts a test wants to see read back and the variations Google serves
(attribute order, label suffixes, missing parts, class-name-only markup).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any


@dataclass(frozen=True)
class Biz:
    name: str
    place_id: str
    cid: str = "0x87938ae6c037ff95:0xac31e8497c63f57d"
    lat: float = 41.1566151
    lng: float = -96.0427488
    rating: str | None = "4.8"
    reviews: str | None = "114"
    category: str | None = "Barber shop"
    address: str | None = "103 N Washington St"
    phone: str | None = "(402) 505-3884"
    website: str | None = None


def place_url(biz: Biz) -> str:
    return (
        f"https://www.google.com/maps/place/{biz.name.replace(' ', '+')}/data=!4m7!3m6!1s{biz.cid}"
        f"!8m2!3d{biz.lat}!4d{biz.lng}!16s%2Fg%2F1tp2_wny!19s{biz.place_id}?authuser=0&hl=en&rclk=1"
    )


def tag(name: str, attrs: Sequence[tuple[str, str]], inner: str = "", *, reverse: bool = False) -> str:
    pairs = list(reversed(attrs)) if reverse else list(attrs)
    rendered = "".join(f' {key}="{escape(value, quote=True)}"' for key, value in pairs)
    return f"<{name}{rendered}>{inner}</{name}>"


def _sep() -> str:
    return ' <span aria-hidden="true">·</span> '


def card(
    biz: Biz,
    *,
    label_suffix: str = "",
    reverse: bool = False,
    container: str = "div",
    stable: bool = True,
    href: str | None = None,
    rating_words: tuple[str, str] = ("stars", "Reviews"),
    extra_links: str = "",
    no_reviews: str = "",
) -> str:
    """One result card. ``container``: "div" (Google's card div), "article" (role=article) or "bare"
    (the link and its content pasted without a wrapper). ``stable=False`` strips aria-labels and
    roles, leaving only Google's class names."""
    link_attrs = [("class", "hfpxzc"), ("href", href if href is not None else place_url(biz))]
    if stable:
        link_attrs.append(("aria-label", biz.name + label_suffix))
    link_attrs.append(("jsaction", "pane.wfvdle165;focus:pane.wfvdle165"))
    link = tag("a", link_attrs, reverse=reverse)
    # Where the stars would be, an unrated business shows "No reviews" (in the page's language).
    rating = escape(no_reviews)
    if biz.rating is not None:
        count = f'<span class="UY7F9" aria-hidden="true">({biz.reviews})</span>' if biz.reviews else ""
        stars_attrs = [("class", "ZkP5Je")]
        if stable:
            words = f"{biz.rating} {rating_words[0]}"
            if biz.reviews:
                words += f" {biz.reviews} {rating_words[1]}"
            stars_attrs = [("role", "img"), ("class", "ZkP5Je"), ("aria-label", words)]
        rating = tag(
            "span",
            stars_attrs,
            f'<span class="MW4etd" aria-hidden="true">{biz.rating}</span>'
            + '<div class="QBUL8c "></div>' * 5
            + count,
            reverse=reverse,
        )
    first = []
    if biz.category:
        first.append(f"<span><span>{escape(biz.category)}</span></span>")
    if biz.address:
        first.append(f"<span>{_sep()}<span>{escape(biz.address)}</span></span>")
    second = [
        '<span><span><span style="color: red;">Closed</span><span> ⋅ Opens 8 AM Thu</span></span></span>'
    ]
    if biz.phone:
        second.append(f'<span>{_sep()}<span class="UsdlK">{escape(biz.phone)}</span></span>')
    actions = ""
    if biz.website:
        actions += tag(
            "a",
            [
                ("class", "lcr4fd S9kvJb"),
                ("aria-label", f"Visit {biz.name}'s website"),
                ("data-value", "Website"),
                ("href", biz.website),
            ],
            '<div class="R8c4Qb fontLabelMedium">Website</div>',
            reverse=reverse,
        )
    actions += extra_links
    actions += tag(
        "button",
        [
            ("class", "g88MCb S9kvJb"),
            ("aria-label", f"Get directions to {biz.name}"),
            ("data-value", "Directions"),
        ],
        '<div class="R8c4Qb fontLabelMedium">Directions</div>',
        reverse=reverse,
    )
    body = (
        '<div class="bfdHYd Ppzolf OFBs3e"><div class="lI9IFe"><div class="y7PRA">'
        '<div class="UaQhfb fontBodyMedium">'
        f'<div class="NrDZNb"><div class="qBF1Pd fontHeadlineSmall">{escape(biz.name)}</div></div>'
        f'<div class="W4Efsd"><div class="AJB7ye">'
        f'<span class="e4rVHe fontBodyMedium">{rating}</span></div></div>'
        f'<div class="W4Efsd"><div class="W4Efsd">{"".join(first)}</div>'
        f'<div class="W4Efsd">{"".join(second)}</div>'
        f'</div></div></div><div class="Rwjeuc">{actions}</div></div>'
        '<div class="qty3Ue"><div class="ah5Ghc">'
        '<span>"Great place, would call again."</span></div></div></div>'
    )
    if container == "bare":
        return link + body
    attrs = [("class", "Nv2PK THOPZb"), ("jsaction", "mouseover:pane.wfvdle146")]
    if container == "article":
        attrs = [("role", "article"), ("aria-label", biz.name), ("jsaction", "mouseover:pane.wfvdle146")]
    return tag("div", attrs, link + body, reverse=reverse)


END_MARKER = (
    '<div class="m6QErb tLjsW"><div class="PbZDve"><p class="fontBodyMedium">'
    '<span><span class="HlvSq">You\'ve reached the end of the list.</span></span></p></div></div>'
)


def feed(cards: Sequence[str], *, end: bool = False, role_feed: bool = True) -> str:
    inner = '<div class="TFQHme"></div>'.join(f"<div>{c}</div>" for c in cards) + (END_MARKER if end else "")
    if role_feed:
        inner = tag(
            "div", [("role", "feed"), ("aria-label", "Results for barbers"), ("tabindex", "-1")], inner
        )
    return f'<html><body><div role="main" aria-label="Results for barbers">{inner}</div></body></html>'


@dataclass(frozen=True)
class AlsoSearched:
    name: str
    rating: str = "3.8"
    reviews: str = "238"
    category: str = "Hair salon"
    href: str = "https://www.elsewhere-barbers.com/"


def panel(
    biz: Biz,
    *,
    website_href: str | None = None,
    booking_href: str | None = None,
    plus_code: str | None = "4XV5+G5 Papillion, Nebraska",
    hours_table: Sequence[tuple[str, str]] = (),
    hours_label: str | None = None,
    also: Sequence[AlsoSearched] = (),
    reverse: bool = False,
) -> str:
    """A place page's panel: header, action buttons, information rows and a "people also search
    for" carousel of other businesses."""
    header_rating = ""
    if biz.rating is not None:
        header_rating = (
            f'<div class="F7nice"><span><span aria-hidden="true">{biz.rating}</span>'
            + tag(
                "span",
                [("class", "ceNzKf"), ("role", "img"), ("aria-label", f"{biz.rating} stars ")],
                reverse=reverse,
            )
            + "</span>"
            + (
                f'<span><span><span aria-label="{biz.reviews} reviews">({biz.reviews})</span></span></span>'
                if biz.reviews
                else ""
            )
            + "</div>"
        )
    category = ""
    if biz.category:
        category = (
            '<div class="fontBodyMedium"><span><span>'
            + tag(
                "button", [("class", "DkEaL"), ("jsaction", "pane.wfvdle301.category")], escape(biz.category)
            )
            + "</span></span></div>"
        )
    rows = []

    def row(element: str, attrs: list[tuple[str, str]], text: str) -> None:
        inner = (
            '<div class="AeaXub"><div class="cXHGnc">'
            '<span class="google-symbols" aria-hidden="true"></span></div>'
            f'<div class="rogA2c"><div class="Io6YTe fontBodyMedium">{escape(text)}</div></div></div>'
        )
        rows.append(f'<div class="RcCsl">{tag(element, attrs, inner, reverse=reverse)}</div>')

    if biz.address:
        row(
            "button",
            [("class", "CsEnBe"), ("aria-label", f"Address: {biz.address} "), ("data-item-id", "address")],
            biz.address,
        )
    if booking_href:
        row(
            "a",
            [
                ("class", "CsEnBe"),
                ("aria-label", "booking.example"),
                ("data-item-id", "action:3"),
                ("data-tooltip", "Open booking link"),
                ("href", booking_href),
            ],
            "booking.example",
        )
    if website_href:
        row(
            "a",
            [
                ("class", "CsEnBe"),
                ("aria-label", "Website: example.com "),
                ("data-item-id", "authority"),
                ("data-tooltip", "Open website"),
                ("href", website_href),
            ],
            "example.com",
        )
    if biz.phone:
        digits = "".join(ch for ch in biz.phone if ch.isdigit())
        row(
            "button",
            [
                ("class", "CsEnBe"),
                ("aria-label", f"Phone: {biz.phone} "),
                ("data-item-id", f"phone:tel:+1{digits}"),
            ],
            biz.phone,
        )
    if plus_code:
        row(
            "button",
            [("class", "CsEnBe"), ("aria-label", f"Plus code: {plus_code}"), ("data-item-id", "oloc")],
            plus_code,
        )
    hours = ""
    if hours_table:
        hours = (
            "<table><tbody>"
            + "".join(
                f'<tr><td class="ylH6lf"><div>{day}</div></td>'
                f'<td class="mxowUb" role="text" aria-label="{h}">'
                f'<li class="G8aQO">{h}</li></td></tr>'
                for day, h in hours_table
            )
            + "</tbody></table>"
        )
    if hours_label:
        hours += tag("div", [("class", "t39EBf"), ("aria-label", hours_label)], "")
    carousel = ""
    if also:
        entries = "".join(
            tag(
                "div",
                [
                    ("class", "Ymd7jc"),
                    ("aria-label", f"{a.name} · {a.rating} stars · {a.reviews} reviews · {a.category}"),
                ],
                f'<div class="GgK1If">{escape(a.name)}</div>'
                f'<span role="img" aria-label="{a.rating} stars {a.reviews} Reviews"></span>'
                f'<div class="Q5g20">{escape(a.category)}</div>'
                + tag("a", [("data-value", "Website"), ("href", a.href)], "Website"),
            )
            for a in also
        )
        carousel = (
            '<div class="zSdcRe"><h2 class="kPvgOb fontHeadlineSmall">People also search for</h2></div>'
            f'<div class="fp2VUc" aria-roledescription="carousel">{entries}</div>'
        )
    main_attrs = [("class", "m6QErb WNBkOb XiKgde"), ("aria-label", biz.name), ("role", "main")]
    body = (
        f'<div class="TIHn2"><h1 class="DUwDvf lfPIob">{escape(biz.name)}</h1>'
        f'<div class="LBgpqf">{header_rating}{category}</div></div>'
        '<div role="region" aria-label="Actions"><button aria-label="Directions" data-value="Directions">'
        "Directions</button></div>"
        f'<div role="region" aria-label="Information for {escape(biz.name)}">{"".join(rows)}{hours}</div>'
        f"<div>{carousel}</div>"
    )
    return tag("div", main_attrs, body, reverse=reverse)


def place_array(biz: Biz, *, website: str | None = None, international: str | None = None) -> list[Any]:
    """The positional place array Google embeds in place states and search results."""
    place: list[Any] = [None] * 200
    reviews = int("".join(ch for ch in biz.reviews or "0" if ch.isdigit()))
    rating = float((biz.rating or "0").replace(",", "."))
    place[4] = [None, None, None, None, None, None, None, rating, reviews]
    place[7] = [website, website] if website else None
    place[9] = [None, None, biz.lat, biz.lng]
    place[10] = biz.cid
    place[11] = biz.name
    place[13] = [biz.category] if biz.category else None
    place[18] = f"{biz.name}, {biz.address}" if biz.address else None
    place[39] = biz.address
    place[78] = biz.place_id
    if biz.phone:
        forms = [[biz.phone, 1]] + ([[international, 2]] if international else [])
        place[178] = [[biz.phone, forms, None, biz.phone.replace(" ", ""), None, None]]
    return place


def state_payload(biz: Biz, *, prefix: bool = True, **kwargs: Any) -> str:
    payload: list[Any] = [None] * 10
    payload[6] = place_array(biz, **kwargs)
    text = json.dumps(payload, ensure_ascii=False)
    return ")]}'\n" + text if prefix else text


def app_state_script(biz: Biz, **kwargs: Any) -> str:
    """A place page's script holding the state, with the place payload as a guarded string."""
    state: list[Any] = [
        [[1.0, 2.0, 3.0]],
        None,
        None,
        [None, None, None, None, None, None, state_payload(biz, prefix=True, **kwargs)],
    ]
    return (
        "<html><head><script>window.APP_OPTIONS=[1];window.APP_INITIALIZATION_STATE="
        + json.dumps(state)
        + ";window.APP_FLAGS=[0];</script></head><body></body></html>"
    )


def search_payload(bizs: Sequence[Biz], *, prefix: bool = True, envelope: bool = False) -> str:
    results: list[Any] = [[None, None, "query"]]
    for biz in bizs:
        entry: list[Any] = [None] * 15
        entry[14] = place_array(biz)
        results.append(entry)
    text = ")]}'\n" + json.dumps([["query", results]]) if prefix else json.dumps([["query", results]])
    if envelope:
        return json.dumps({"c": 0, "d": text})
    return text
