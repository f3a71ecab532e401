"""The Maps replica's HTML, shaped like the real captures in ``shared/corpus/maps``.

Stable signals are where Google puts them (``role=feed``, ``a[aria-label][href=/maps/place/…]``,
rating ``aria-label``s, ``data-item-id``, ``data-value``, the place URL's ``!1s``/``!3d``/``!4d``/
``!19s`` fields, the ``APP_INITIALIZATION_STATE`` payload). Class names are Google's obfuscated
ones, and :func:`churn_classes` can replace every one of them, as Google's releases do, to prove
a parser does not need them. No page refers to anything outside the replica.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlsplit

from leadlawk_daemon.replicas.maps_abroad import ABROAD, phone_forms
from leadlawk_daemon.replicas.maps_business import Business
from leadlawk_daemon.replicas.maps_locale import Locale

__all__ = [
    "MALFORMED_KINDS",
    "churn_classes",
    "end_marker",
    "feed_card",
    "limited_banner",
    "locality_page",
    "place_page",
    "place_state_payload",
    "results_page",
    "sorry_page",
]

MALFORMED_KINDS = ("missing_href", "garbage_label", "broken_place_url")


def _a(value: object) -> str:
    """An attribute value, escaped (quotes included)."""
    return escape(str(value), quote=True)


def _t(value: object) -> str:
    return escape(str(value), quote=False)


def _jslog(*parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]
    return f"metadata:WyIwYWhVS0V3{digest}Il0="


def _domain(url: str) -> str:
    return urlsplit(url).hostname or url


def website_href(business: Business, base_url: str) -> str | None:
    """The website link as shown: sometimes behind Google's ``/url?q=`` redirect."""
    if business.website is None:
        return None
    if business.website_wrapped:
        return f"{base_url}/url?q={quote(business.website, safe='')}&opi=89978449&sa=U&usg=AOvVaw1"
    return business.website


def _status(business: Business, locale: Locale) -> str:
    """The card's open/closed line, from Monday's hours, so a page never depends on the clock."""
    if business.hours is None:
        return ""
    monday = business.hours[0][1]
    if monday == "Open 24 hours":
        return f'<span style="font-weight: 400; color: rgba(25,134,57,1.00);">{_t(locale.open_24)}</span>'
    if monday == "Closed":
        opens = business.hours[1][1].split("–")[0]
        return (f'<span style="font-weight: 400; color: rgba(220,54,46,1.00);">{_t(locale.closed)}</span>'
                f'<span style="font-weight: 400;"> ⋅ {_t(locale.opens)} {_t(opens)}</span>')
    closes = monday.split("–")[-1]
    return (f'<span style="font-weight: 400; color: rgba(25,134,57,1.00);">{_t(locale.open)}</span>'
            f'<span style="font-weight: 400;"> ⋅ {_t(locale.closes)} {_t(closes)}</span>')


def _card_rating(business: Business, locale: Locale) -> str:
    if business.rating is not None and business.review_count is None:
        # Google's limited view: "4.7 stars" and no "(N)".
        shown = locale.rating(business.rating)
        label = locale.panel_stars.format(rating=shown).strip()
        stars = '<div class="QBUL8c "></div>' * 5
        return (
            '<span class="wZrhX"></span> <span class="e4rVHe fontBodyMedium">'
            f'<span role="img" class="ZkP5Je" aria-label="{_a(label)}">'
            f'<span class="MW4etd" aria-hidden="true">{_t(shown)}</span>{stars}'
            "</span></span>"
        )
    if business.rating is None or business.review_count is None:
        return f'<span class="e4rVHe fontBodyMedium">{_t(locale.no_reviews)}</span>'
    rating, count = locale.rating(business.rating), locale.number(business.review_count)
    label = locale.stars.format(rating=rating, count=count)
    stars = '<div class="QBUL8c "></div>' * 5
    return (
        '<span class="wZrhX"></span> <span class="e4rVHe fontBodyMedium">'
        f'<span role="img" class="ZkP5Je" aria-label="{_a(label)}">'
        f'<span class="MW4etd" aria-hidden="true">{_t(rating)}</span>{stars}'
        f'<span class="UY7F9" aria-hidden="true">({_t(count)})</span></span></span>'
    )


def feed_card(business: Business, base_url: str, locale: Locale, malformed: str | None = None) -> str:
    """One result card and its separator, as the feed holds them."""
    n = 160 + business.rank * 3
    name = business.name
    href: str | None = business.maps_url(base_url, locale.code)
    label = name
    article_label: str | None = name
    if malformed == "missing_href":
        href, article_label = None, None
    elif malformed == "garbage_label":
        label, article_label = "\u200b", None
        href = f"{base_url}/maps/place//data=!4m2!3m1!1s?authuser=0&hl={locale.code}"
    elif malformed == "broken_place_url":
        label, article_label = "undefined · undefined", None
        href = f"{base_url}/maps/place/%E2%96%88/data=!4m7!3m6!1s0xZZ:!8m2!3dNaN!4d!16s!19sChIJ"
    anchor_href = f' href="{_a(href)}"' if href is not None else ""
    article = f' role="article" aria-label="{_a(article_label)}"' if article_label is not None else ""
    ordinary = malformed is None
    address = ""
    if business.address is not None:
        access = ""
        if business.rank % 5 == 2:
            access = ('<span> <span aria-hidden="true">·</span> <span class="google-symbols" '
                      'aria-label="Wheelchair accessible entrance" role="img" '
                      'data-tooltip="Wheelchair accessible entrance" style="font-size: 15px;">'
                      '<span class="doJOZc"></span></span></span>')
        address = (f'{access}<span> <span aria-hidden="true">·</span> '
                   f'<span>{_t(business.address)}</span></span>')
    status = _status(business, locale)
    phone = ""
    if business.phone is not None and not business.compact:
        dot = '<span aria-hidden="true">·</span> ' if status else ""
        phone = f'<span> {dot}<span class="UsdlK">{_t(business.phone)}</span></span>'
    status_html = f"<span><span>{status}</span></span>" if status else ""
    buttons = ""
    thumbnail = ""
    if business.compact:
        thumbnail = ('<div class="xwpmRb qisNDe" style="width: 84px; height: 84px; margin: 0px;">'
                     '<div class="FQ2IWe p0Hhde" style="min-width: 84px; min-height: 84px;"></div>'
                     '<div class="DJSPJd"></div></div>')
    else:
        site = website_href(business, base_url)
        if site is not None:
            buttons += (
                f'<div class="etWJQ jym1ob kdfrQc k17Vqe WY7ZIb"><a class="lcr4fd S9kvJb " '
                f'jsaction="pane.wfvdle{n + 1};keydown:pane.wfvdle{n + 1}" '
                f'aria-label="{_a(f"Visit {name}’s website" if ordinary else "")}" data-value="Website" '
                f'jslog="84919;track:click;mutable:true;{_jslog(business.place_id, "w")}" href="{_a(site)}">'
                '<span class="DVeyrd "><div class="OyjIsf zemfqc"></div><span class="Cw1rxd google-symbols" '
                'aria-hidden="true" style="font-size: 18px;"></span></span>'
                f'<div class="R8c4Qb fontLabelMedium">{_t(locale.website)}</div></a></div>'
            )
        buttons += (
            f'<div class="etWJQ jym1ob kdfrQc k17Vqe WY7ZIb"><button class="g88MCb S9kvJb " '
            f'jsaction="pane.wfvdle{n + 2};keydown:pane.wfvdle{n + 2}" '
            f'aria-label="{_a(f"Get directions to {name}")}" data-value="Directions" '
            f'jslog="80860;track:click;mutable:true;{_jslog(business.place_id, "d")}">'
            '<span class="DVeyrd "><div class="OyjIsf zemfqc"></div><span class="Cw1rxd google-symbols '
            'NhBTye G47vBd" aria-hidden="true" style="font-size: 18px;"></span></span>'
            f'<div class="R8c4Qb fontLabelMedium">{_t(locale.directions)}</div></button></div>'
        )
    visible_name = _t(name) if ordinary or malformed == "missing_href" else ""
    return (
        f'<div jsaction="mouseover:pane.wfvdle{n};mouseout:pane.wfvdle{n}">'
        f'<div class="Nv2PK {"THOPZb CpccDe" if business.compact else "tH5CWc THOPZb"} "{article} '
        f'jsaction="mouseover:pane.wfvdle{n};mouseout:pane.wfvdle{n}">'
        f'<a class="hfpxzc" aria-label="{_a(label)}"{anchor_href} '
        f'jsaction="pane.wfvdle{n};focus:pane.wfvdle{n};blur:pane.wfvdle{n};auxclick:pane.wfvdle{n}" '
        f'jslog="12690;track:click,contextmenu;mutable:true;{_jslog(business.place_id)}"></a>'
        '<div class="rWbY0d"></div><div class="bfdHYd Ppzolf OFBs3e  "><div class="rgFiGf OyjIsf "></div>'
        '<div class="hHbUWd"></div><div class="rSy5If"></div><div class="lI9IFe "><div class="y7PRA">'
        '<div class="Lui3Od T7Wufd "><div class="Z8fK3b"><div class="OyjIsf "></div>'
        '<div class="UaQhfb fontBodyMedium"><div class="NrDZNb"><div class="dIDW9d"></div>'
        f'<span class="HTCGSb"></span><div class="qBF1Pd fontHeadlineSmall ">{visible_name}</div> '
        '<span class="muMOJe"></span></div><div class="HAthLd"></div>'
        f'<div class="W4Efsd"><div class="AJB7ye">{_card_rating(business, locale)}</div></div>'
        f'<div class="W4Efsd"><div class="W4Efsd"><span><span>{_t(business.category)}</span></span>{address}'
        f'</div><div class="W4Efsd">{status_html}{phone}</div></div>'
        '</div></div></div></div>'
        f'<div class="Rwjeuc">{buttons}</div><div class="SpFAAb">{thumbnail}</div></div>'
        '<div class="gwQ6lc" jsaction="click:mLt3mc"></div></div></div></div>'
        '<div class="TFQHme "></div>'
    )


def end_marker(locale: Locale) -> str:
    return (
        '<div class="m6QErb XiKgde tLjsW eKbjU "><div class="PbZDve "><p class="fontBodyMedium ">'
        f'<span><span class="HlvSq">{_t(locale.end_of_list)}</span></span></p></div></div>'
    )


_CSS = """
html,body{margin:0;height:100%;font-family:Roboto,Arial,sans-serif;font-size:14px}
div[role=main]{width:408px;height:100vh;display:flex;flex-direction:column}
div[role=feed]{flex:1;overflow-y:auto}
div[role=feed]>div:not(:empty){min-height:104px;border-bottom:1px solid #e8eaed;padding:6px 12px}
a[href]{color:#1a73e8}
"""

# Loads the next cards when the feed is scrolled to its bottom, as Google's does; on a block it
# lands on /sorry/ the way Google's client does, so a scraper sees the same signal either way.
_FEED_SCRIPT = """
(function () {
  var feed = document.querySelector('div[role="feed"]');
  var boot = window.__feed;
  if (!feed || !boot) return;
  var state = {offset: boot.offset, done: boot.done, loading: false};
  function atBottom() { return feed.scrollTop + feed.clientHeight >= feed.scrollHeight - 8; }
  function load() {
    if (state.done || state.loading || !atBottom()) return;
    state.loading = true;
    var spinner = document.createElement('div');
    spinner.className = 'lXJj5c Hk4XGb';
    spinner.innerHTML = '<div class="qjESne veYFef"></div>';
    feed.appendChild(spinner);
    fetch(boot.url + '&offset=' + state.offset, {credentials: 'same-origin'})
      .then(function (r) {
        if (r.status === 429) {
          window.location.href = '/sorry/index?continue=' + encodeURIComponent(window.location.href);
          return null;
        }
        if (!r.ok) throw new Error('feed answered ' + r.status);
        return r.json();
      })
      .then(function (page) {
        spinner.remove();
        state.loading = false;
        if (!page) return;
        if (page.html) feed.insertAdjacentHTML('beforeend', page.html);
        state.offset = page.next_offset;
        if (page.end) state.done = true;
      })
      .catch(function () { spinner.remove(); state.loading = false; });
  }
  feed.addEventListener('scroll', load, {passive: true});
  feed.addEventListener('wheel', load, {passive: true});
})();
"""


def _viewport(latitude: float, longitude: float) -> list[Any]:
    return [[3281.37, longitude, latitude], [0, 0, 0], [1024, 768], 13.1]


def _init_state(
    latitude: float, longitude: float, payload: list[Any] | None, camera: list[Any] | None = None
) -> str:
    # The real page carries the place as a JSON string with Google's anti-XSSI prefix at [3][6].
    slot: list[Any] = [None] * 7
    if payload is not None:
        slot[6] = ")]}'\n" + json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    state: list[Any] = [camera or _viewport(latitude, longitude), [[]], None, slot, None, None]
    text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    # A "</script>" inside a string would end the script element early.
    return text.replace("</", "<\\/")


def limited_banner(locale: Locale) -> str:
    """Google's signed-out "limited view" banner: its sentence, a sign-in link, and a help link."""
    return (
        '<div class="Vj3Wle fontBodyMedium" role="alert" jslog="171893"><div class="ZfaPce">'
        f'<span class="Hc6Ihb">{_t(locale.limited_view)}</span> '
        '<a class="cRbzAe" href="https://accounts.google.com/ServiceLogin?service=local">Sign in</a> '
        f'<a class="cRbzAe" href="https://support.google.com/maps/?p=limited_view&amp;hl={_a(locale.code)}">'
        "?</a></div></div>"
    )


def _page(title: str, lang: str, body: str, scripts: Sequence[str], banner: str = "") -> str:
    script_tags = "".join(f"<script>{s}</script>" for s in scripts)
    return (
        f'<!DOCTYPE html><html lang="{_a(lang)}" dir="ltr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_t(title)}</title><style>{_CSS}</style></head>"
        f'<body jsaction="keydown:skn8Ee"><div id="app-container" class="vasquette id-app-container">'
        f'{banner}<div id="content-container"><div id="QA0Szd"><div class="XltNde tTVLSc"><div class="w6VYqd">'
        f'{body}</div></div></div></div></div>{script_tags}</body></html>'
    )


def results_page(
    *,
    search_text: str,
    cards_html: str,
    ended: bool,
    next_offset: int,
    feed_url: str,
    locale: Locale,
    latitude: float,
    longitude: float,
    camera: list[Any] | None = None,
    limited: bool = False,
) -> str:
    """A search's results page: the feed with its first cards, and the script that loads the rest.
    ``camera`` is the map a viewport search shows (Google's ``[[altitude, lng, lat], …]``)."""
    results_label = locale.results_for.format(query=search_text)
    marker = end_marker(locale) if ended else ""
    body = (
        f'<div class="bJzME tTVLSc"><div class="k7jAl lJ3Kh miFGmb"><div class="e07Vkf kA9KIf">'
        f'<div class="aIFcqe">'
        f'<div class="m6QErb WNBkOb XiKgde " role="main" aria-label="{_a(results_label)}">'
        f'<div class="m6QErb DxyBCb kA9KIf dS8AEf XiKgde ecceSd " aria-label="{_a(results_label)}" '
        f'role="feed" tabindex="-1"><div class="m6QErb XiKgde tLjsW "></div>{cards_html}{marker}</div>'
        "</div></div></div></div></div>"
    )
    boot = json.dumps({"url": feed_url, "offset": next_offset, "done": ended}).replace("</", "<\\/")
    scripts = (
        f"window.APP_INITIALIZATION_STATE={_init_state(latitude, longitude, None, camera)};window.APP_FLAGS=[];",
        f"window.__feed={boot};",
        _FEED_SCRIPT,
    )
    banner = limited_banner(locale) if limited else ""
    return _page(f"{search_text} - Google Maps", locale.code, body, scripts, banner)


def _hours_table(business: Business, locale: Locale) -> str:
    if business.hours is None:
        return ""
    label = "; ".join(
        f"{locale.day(day)}, {locale.hours_text(text).replace('–', ' to ')}" for day, text in business.hours
    )
    rows = "".join(
        f'<tr class="y0skZc "><td class="ylH6lf "><div>{_t(locale.day(day))}</div></td>'
        f'<td class="mxowUb" role="text" aria-label="{_a(locale.hours_text(text).replace("–", " to "))}">'
        f'<ul class="fontTitleSmall"><li class="G8aQO">{_t(locale.hours_text(text))}</li></ul></td></tr>'
        for day, text in business.hours
    )
    return (
        '<div class="OqCZI fontBodyMedium WVXvdc"><div class="OMl5r hH0dDd jBYmhd" role="button" '
        'aria-expanded="false" data-tooltip="Show open hours for the week">'
        f'<div class="ZDu9vd"><span>{_status(business, locale)}</span></div></div>'
        f'<div class="t39EBf GUrTXd" role="region" aria-label="{_a(label)}">'
        f'<table class="eK4R0e fontBodyMedium"><tbody>{rows}</tbody></table></div></div>'
    )


def _info_row(kind: str, item_id: str, label: str, text: str, href: str | None = None) -> str:
    tag = "a" if href is not None else "button"
    link = f' href="{_a(href)}"' if href is not None else ""
    return (
        '<div class="RcCsl fVHpi w4vB1d NOE9ve M0S7ae AG25L "><div class="DKPXOb OyjIsf "></div>'
        f'<{tag} class="CsEnBe" aria-label="{_a(label)}" data-item-id="{_a(item_id)}" '
        f'data-tooltip="Copy {kind}" jslog="36622; track:click; mutable:true;"{link}>'
        '<div class="AeaXub"><div class="cXHGnc"><span class="google-symbols PHazN" aria-hidden="true" '
        'style="font-size: 24px;"></span></div><div class="rogA2c ">'
        f'<div class="Io6YTe fontBodyMedium kR99db fdkmkc ">{_t(text)}</div>'
        '<div class="HMy2Jf"></div><div class="gSkmPd fontBodySmall CuiGbf DshQNd"></div></div></div>'
        f'</{tag}></div>'
    )


def _related_card(other: Business, locale: Locale) -> str:
    parts = [other.name]
    if other.rating is not None and other.review_count is not None:
        parts += [f"{locale.rating(other.rating)} stars", f"{locale.number(other.review_count)} reviews"]
    parts.append(other.category)
    return (
        '<div class="Ymd7jc Lnaw4c" style="min-width: 156px; max-width: 156px;" '
        f'aria-label="{_a(" · ".join(parts))}" role="link" tabindex="0">'
        '<div class="HJCejf fontBodyMedium LCTIRd"><div class="UW56ye">'
        f'<div class="y6ocjd"><span class="GgK1If fontTitleSmall">{_t(other.name)}</span></div>'
        f"<span>{_card_rating(other, locale)}</span>"
        f'<div class="Q5g20 ">{_t(other.category)}</div></div></div></div>'
    )


def place_page(
    business: Business, base_url: str, locale: Locale, related: Sequence[Business], limited: bool = False
) -> str:
    """A place page: the panel with its information region and the embedded state payload."""
    name = business.name
    rating = ""
    if business.rating is not None and business.review_count is not None:
        r, count = locale.rating(business.rating), locale.number(business.review_count)
        rating = (
            '<div class="F7nice " jslog="76333;mutable:true;"><span>'
            f'<span aria-hidden="true">{_t(r)}</span><span class="ceNzKf" role="img" '
            f'aria-label="{_a(locale.panel_stars.format(rating=r))}">'
            + '<span class="rFrJzc"></span>' * 5
            + f'</span></span><span><span><span aria-label="{_a(locale.panel_reviews.format(count=count))}">'
            f"({_t(count)})</span></span></span></div>"
        )
    elif business.rating is not None:  # the limited view: stars, no count
        r = locale.rating(business.rating)
        rating = (
            '<div class="F7nice " jslog="76333;mutable:true;"><span>'
            f'<span aria-hidden="true">{_t(r)}</span><span class="ceNzKf" role="img" '
            f'aria-label="{_a(locale.panel_stars.format(rating=r))}">'
            + '<span class="rFrJzc"></span>' * 5
            + "</span></span></div>"
        )
    booking = ""
    if business.booking_url is not None:
        booking = (
            '<div class="m6QErb XiKgde tLjsW UhIuC d9QYDc "><div class="KDpVjd yMo4fd IC2oCc">'
            f'<a class="A1zNzb" target="_blank" href="{_a(business.booking_url)}">'
            '<div class="J8zHNe NlVald MkHJW"><div class="OyjIsf zemfqc"></div>'
            f'<span class="bbPy1 google-symbols N23lEd" aria-hidden="true"></span>{_t(locale.book_online)}'
            "</div></a></div></div>"
        )
    rows = []
    if business.full_address is not None:
        rows.append(_info_row("address", "address", f"{locale.address}: {business.full_address} ",
                              business.full_address))
    rows.append(_hours_table(business, locale))
    site = website_href(business, base_url)
    if site is not None and business.website is not None:
        domain = _domain(business.website)
        rows.append(_info_row("website", "authority", f"{locale.website}: {domain} ", domain, href=site))
    if business.phone is not None and business.phone_e164 is not None:
        rows.append(_info_row("phone number", f"phone:tel:{business.phone_e164}",
                              f"{locale.phone}: {business.phone} ", business.phone))
    if business.plus_code is not None:
        rows.append(_info_row("plus code", "oloc", f"{locale.plus_code}: {business.plus_code}",
                              business.plus_code))
    related_html = ""
    if related:
        related_html = (
            f'<div class="TFQHme "></div><div class="zSdcRe "><h2 class="kPvgOb fontHeadlineSmall ">'
            f'{_t(locale.people_also)}</h2></div><div class="fp2VUc" aria-roledescription="carousel">'
            f'<div class="cRLbXd"><div class="dryRY ">{"".join(_related_card(o, locale) for o in related)}'
            "</div></div></div>"
        )
    body = (
        f'<div class="bJzME Hu9e2e tTVLSc"><div class="k7jAl miFGmb lJ3Kh"><div class="e07Vkf kA9KIf">'
        f'<div class="aIFcqe"><div class="m6QErb WNBkOb XiKgde " aria-label="{_a(name)}" role="main">'
        '<div class="m6QErb DxyBCb kA9KIf dS8AEf XiKgde " tabindex="-1">'
        '<div class="TIHn2 "><div class="tAiQdd">'
        '<div class="lMbq3e"><div><div class="zvLtDc"></div>'
        f'<h1 class="DUwDvf lfPIob"><span class="a5H0ec"></span>{_t(name)}<span class="G0bp3e"></span></h1>'
        '</div><div class="LBgpqf"><div class="skqShb "><div class="fontBodyMedium dmRWX">'
        f'{rating}</div><div class="fontBodyMedium"><span><span><button class="DkEaL " '
        f'jsaction="pane.wfvdle301.category">{_t(business.category)}</button></span></span></div>'
        "</div></div></div></div></div>"
        '<div class="m6QErb Pf6ghf XiKgde ecceSd tLjsW " '
        f'aria-label="{_a(f"Actions for {name}")}" role="region">'
        '<div class="etWJQ jym1ob peSXAf kdfrQc k17Vqe WY7ZIb"><button class="g88MCb S9kvJb " '
        f'aria-label="{_a(locale.directions)}" data-value="Directions"><div class="R8c4Qb fontLabelMedium">'
        f"{_t(locale.directions)}</div></button></div></div>{booking}"
        '<div class="TFQHme "></div>'
        f'<div class="m6QErb XiKgde " aria-label="{_a(f"Information for {name}")}" role="region">'
        f'{"".join(rows)}</div>'
        f"{related_html}</div></div></div></div></div></div>"
    )
    payload = place_state_payload(business, base_url, locale)
    scripts = (
        f"window.APP_INITIALIZATION_STATE="
        f"{_init_state(business.latitude, business.longitude, payload)};window.APP_FLAGS=[];",
    )
    return _page(f"{name} - Google Maps", locale.code, body, scripts, limited_banner(locale) if limited else "")


def place_state_payload(business: Business, base_url: str, locale: Locale) -> list[Any]:
    """The place page's data, laid out as Google's (the place array at ``[6]``)."""
    p: list[Any] = [None] * 250
    loc = business.locality
    city_line = f"{loc.city}, {loc.state} {business.full_address.rsplit(' ', 1)[-1]}" \
        if business.full_address is not None else f"{loc.city}, {loc.state}"
    if business.place_address is not None:
        p[2] = business.place_address.lines()
    elif business.address is not None:
        p[2] = [business.address, city_line]
    if business.rating is not None and business.review_count is not None:
        reviews_url = f"{base_url}/maps/reviews?placeid={business.place_id}&hl={locale.code}"
        p[4] = [None, None, None, [reviews_url, locale.panel_reviews.format(
            count=locale.number(business.review_count)), None], None, None, None,
            business.rating, business.review_count]
    elif business.rating is not None:  # the limited view: the rating alone
        p[4] = [None, None, None, None, None, None, None, business.rating, None]
    if business.website is not None:
        p[7] = [website_href(business, base_url), _domain(business.website), None, None]
    p[9] = [None, None, business.latitude, business.longitude]
    p[10] = business.cid
    p[11] = business.name
    p[13] = list(business.categories)
    p[18] = f"{business.name}, {business.full_address}" if business.full_address else business.name
    p[27] = f"{base_url}/maps/place/{quote(business.name)}/data=!4m2!3m1!1s{business.cid}!10m1!1e1"
    p[30] = ABROAD[loc.country].timezone if loc.country in ABROAD else "America/Chicago"
    if business.hours is not None:
        p[34] = [None, [
            [locale.day(day), [locale.hours_text(text)], None, None, None, 1, [], 0]
            for day, text in business.hours
        ]]
    p[39] = business.full_address
    p[76] = [[business.category.casefold().replace(" ", "_")]]
    p[78] = business.place_id
    p[89] = business.kg_id
    if business.phone is not None and business.phone_e164 is not None:
        national, international = phone_forms(business.phone, business.phone_e164)
        p[178] = [[business.phone, [[business.phone, 1], [international, 2]], None, national, None,
                   [f"tel:{business.phone_e164}", None, None, None]]]
    address_parts: list[Any] = [[1, [[business.full_address or city_line]]]]
    plus = None
    if business.plus_code is not None:
        plus = [None, [business.global_plus_code], [business.plus_code], 2]
    # [183][1]: the address in parts, as Google's data splits it; [243] the country again.
    row = business.place_address.state_row() if business.place_address is not None else [
        None, business.address, business.address, loc.city, None, None, loc.country
    ]
    p[183] = [address_parts, row, plus]
    p[243] = loc.country
    p[227] = [[business.cid, None, None, business.kg_id, business.place_id]]
    payload: list[Any] = [None] * 32
    payload[4] = _viewport(business.latitude, business.longitude)
    payload[6] = p
    return payload


def locality_page(
    *, city: str, state_name: str, label: str, cid: str, latitude: float, longitude: float,
    camera: list[Any], locale: Locale,
) -> str:
    """A city's own place page, as a search for "Omaha, NE" alone opens it: its map is fitted to
    the city's extent, which the page state carries as the camera (``[0]``, and ``[4]`` of the
    place payload, where the real place captures have it)."""
    body = (
        '<div class="bJzME Hu9e2e tTVLSc"><div class="k7jAl miFGmb lJ3Kh"><div class="e07Vkf kA9KIf">'
        f'<div class="aIFcqe"><div class="m6QErb WNBkOb XiKgde " aria-label="{_a(city)}" role="main">'
        '<div class="TIHn2 "><div class="tAiQdd"><div class="lMbq3e"><div>'
        f'<h1 class="DUwDvf lfPIob">{_t(city)}</h1></div><div class="LBgpqf"><div class="fontBodyMedium">'
        f'<span><span><button class="DkEaL ">{_t(f"City in {state_name}")}</button></span></span>'
        "</div></div></div></div></div></div></div></div></div></div>"
    )
    place: list[Any] = [None] * 100
    place[9] = [None, None, latitude, longitude]
    place[10] = cid
    place[11] = city
    place[13] = ["City"]
    place[18] = label
    payload: list[Any] = [None] * 32
    payload[4] = camera
    payload[6] = place
    scripts = (
        f"window.APP_INITIALIZATION_STATE={_init_state(latitude, longitude, payload, camera)};window.APP_FLAGS=[];",
    )
    return _page(f"{label} - Google Maps", locale.code, body, scripts)


def sorry_page(continue_url: str, token: str) -> str:
    """Google's block page: the unusual-traffic notice and its captcha form."""
    return (
        '<!DOCTYPE html><html><head><meta http-equiv="content-type" content="text/html; charset=utf-8">'
        f"<title>{_t(continue_url)}</title></head><body style=\"margin:0\">"
        '<div style="max-width:400px;"><hr noshade size="1" style="color:#ccc; background-color:#ccc;">'
        '<div style="font-size:13px;">Our systems have detected unusual traffic from your computer '
        "network.  This page checks to see if it&#39;s really you sending the requests, and not a robot."
        '<br><br><div id="infoDiv0" style="display:none"></div>'
        '<form id="captcha-form" action="index" method="post">'
        '<div id="recaptcha" class="g-recaptcha" data-sitekey="6LfwuyUTAAAAAOAmoS0fdqijC2PbbdH4kjq62Y1b" '
        'data-callback="submitCallback"></div>'
        f"<input type='hidden' name='q' value='{_a(token)}'>"
        f'<input type="hidden" name="continue" value="{_a(continue_url)}"></form>'
        '<hr noshade size="1" style="color:#ccc; background-color:#ccc;"><div style="font-size:13px;">'
        "<b>About this page</b><br><br>Our systems have detected unusual traffic from your computer network."
        f"<br><br>URL: {_t(continue_url)}<br></div></div></div></body></html>"
    )


_CLASS_ATTR = re.compile(r'class="([^"]*)"')
_KEEP = re.compile(r"^(font[A-Z]\w*|google-symbols)$")


def churn_classes(html: str, salt: str) -> str:
    """Every obfuscated class renamed, as after a Google release (font and icon classes stay)."""

    def rename(token: str) -> str:
        if not token or _KEEP.match(token):
            return token
        digest = hashlib.sha256(f"{salt}|{token}".encode()).digest()
        letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        return "".join(letters[b % len(letters)] for b in digest[:5]) + str(digest[5] % 10)

    def replace(match: re.Match[str]) -> str:
        return 'class="' + " ".join(rename(t) for t in match.group(1).split(" ")) + '"'

    return _CLASS_ATTR.sub(replace, html)
