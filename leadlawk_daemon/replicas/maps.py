"""The offline Google Maps replica: what a scraper meets on google.com/maps, served locally.

Routes (its base URL replaces ``https://www.google.com`` through ``maps.base_url``):

| route | answer |
| --- | --- |
| `GET /maps/search/{query}` | the results page; `{query}` is "{query} in {location}"; takes `hl=` |
| `GET /maps/search/?api=1&query=…` | the same (Maps URLs form) |
| `GET /maps/search/{query}/@{lat},{lng},{zoom}z` | a viewport search: the viewport's best-ranked businesses and some just outside it, at most `max_results`; the page's camera is that viewport |
| `GET /maps/search/{City, ST}` | a locality alone: redirects to its place page, whose camera (`APP_INITIALIZATION_STATE[0]`, and `[4]` of the place payload) is the locality's extent, fitted |
| `GET /maps/_feed?q=…&location=…&offset=N&hl=…[&at=lat,lng,zoom]` | the next cards, as the page's scroll script fetches them: `{"html", "next_offset", "end"}` |
| `GET /maps/place/{name}/data=…` | a place page: the panel and the embedded `APP_INITIALIZATION_STATE` |
| `GET /url?q=…` | Google's outbound redirect (some website links are wrapped in it) |
| `GET /consent`, `POST /consent/save` | the consent interstitial (in the language of `hl`) and its reject-all / accept-all forms; `GET /consent/d` ("more options") leads back to it |
| `GET`/`POST /sorry/index` | the block page with its captcha form (HTTP 429) |
| `GET /_answers?q=…&location=…&hl=…` | `{"answers": […]}`: the search's answer set, in feed order |
| `GET /_answers?…&coverage=area[&bbox=s,w,n,e]` | every business in the location's map (or the box), best-ranked first, with `area`, `extent` and `count` |
| `GET /_answers?q=…&at=lat,lng,zoom` | what the viewport search lists, in feed order |
| `GET`/`POST /_faults` | the active faults / replace them (`{}` clears) |
| `POST /_session` | a new signed-in session: `{"cookies": [...], "storage_state": {...}}` (a Playwright storage state for this replica's host); a request carrying its `SID` cookie sees the full view under `limited_view` |
| `POST /_session/expire` | every session issued so far is signed out (a lost session): `{"expired": N}` |
| `GET /_stats`, `POST /_stats/reset` | requests per route, `navigations` (search + place visits), `viewports` (viewport searches per `@lat,lng,zoomz`), and `clients`: `{"127.0.0.11": {"navigations": n, "blocks": b}, …}` per client address (`blocks`: navigations sent to `/sorry/` and feed fetches answered 429, by `rate_limit` or `sorry`) |

A search's text splits on its last " in " into query and location; its answer set is generated
from (query, location, seed) and holds `max_results` businesses (120, where Google's feed ends),
7 when the query contains the word "rare", 1 when it starts with "place:". A search that resolves
to one place (a "place:" query, or the exact name of a business this replica has served in that
location) redirects (302) to the place page. The feed shows `page_size` cards, loads the next
`page_size` when scrolled to its bottom, and ends with "You've reached the end of the list.".
Viewport searches use the geography of :mod:`maps_geography`: a ``/@lat,lng,zoomz`` viewport
is taken to be ``viewport_px`` in size (1280 × 720, Playwright's default page).

Faults: `POST /_faults` with a JSON object of name → setting. The body replaces the whole set
(`{}` clears; `null`, `false` or `0` switch one off); a bad body changes nothing (400, every
problem named). "Counted" faults take `true` (every request) or N (the next N requests, then off).

| fault | setting | effect |
| --- | --- | --- |
| `consent` | `true`, `"loop"` or `"accept_only"` | a search or place visit without a `SOCS`/`CONSENT` cookie redirects to `/consent`, Google's interstitial in the language of `hl` (en, de, fr, es, it, nl, pl, pt; else English): a reject-all and an accept-all form posting to `/consent/save` with Google's hidden fields (`set_eom` true / false), "more options" a link; either answer sets the cookies and returns to `continue`; `/_stats` counts the answers per language (`consent_answers`). `"loop"`: no cookie is set, so the page comes back. `"accept_only"`: the page has the accept-all form alone |
| `consent_loop_clients` | `["127.0.0.12", …]` | as `"loop"`, for the consent answers of these client addresses alone (one exit looped while the others get through) |
| `sorry` | counted | search and place visits redirect (302) to `/sorry/index?continue=…`: HTTP 429, "unusual traffic", `form#captcha-form`; feed fetches answer 429 and the page's script goes to `/sorry/` |
| `slow_ms` | 0-600000 | every response except `/_*` is delayed by this many milliseconds |
| `hang` | counted | search, place and feed responses never finish: the handler waits until the client disconnects or the replica shuts down |
| `server_error` | counted | search, place and feed requests answer 503, as Google's front end does when a backend is down |
| `feed_stops_after` | N ≥ 0 | the feed stops growing after N cards, without the end marker |
| `malformed_cards` | fraction in (0, 1), or N ≥ 1 | that share of cards (chosen by place id) or that many (spread over the feed) are broken: no href, a garbage aria-label, or a place URL without ids; `/_answers` lists their place ids under `"malformed"` |
| `empty_feed` | `true` | results pages show an empty feed, without cards or end marker (Google's soft block) |
| `class_churn` | `true` | every obfuscated class name changes, as after a Google release |
| `rate_limit` | `{"per_minute": N, "cooldown_s": S}`, optionally `"clients": {"127.0.0.12": {"per_minute": M, "cooldown_s": T}}` | per client address (`request.remote`): navigations counted in a sliding minute; the one past N starts a cool-down of S seconds in which that client's navigations go to `/sorry/` and its feed fetches answer 429 (as under `sorry`); then a fresh window. Cool-down visits do not extend it. `clients` overrides the limit for some addresses |
| `limited_view` | `true` (a quarter hidden) or a share in (0, 1) | Google's signed-out limited view for requests without a live session cookie: the localised banner (`role="alert"`, a sign-in link, a help link with `p=limited_view`), ratings without review counts on cards and place pages, and that share of the answer set left out of the feed (chosen by place id); `/_answers` lists them under `"hidden_in_limited_view"` |
"""  # noqa: E501  (Markdown tables, copied to docs/replicas.md as they are)

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import re
import secrets
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus, unquote_plus, urlencode, urlsplit

from aiohttp import web

from leadlawk_daemon.maps.area import Bbox, Viewport
from leadlawk_daemon.replicas.faults import (
    Fault,
    FaultSwitchboard,
    add_fault_routes,
    choice_or_flag,
    counted,
    flag,
    fraction_or_count,
    milliseconds,
    positive_int,
)
from leadlawk_daemon.replicas.foreground import serve_in_foreground
from leadlawk_daemon.replicas.maps_business import (
    AnswerSet,
    Business,
    generate_answer_set,
    search_key,
    split_search,
)
from leadlawk_daemon.replicas.maps_consent import answer_of, consent_page, consent_words, parse_loop_clients
from leadlawk_daemon.replicas.maps_geography import (
    Geography,
    extent,
    locality_cid,
    locality_search,
    locality_viewport,
    parse_viewport,
)
from leadlawk_daemon.replicas.maps_locale import Locale, locale_for
from leadlawk_daemon.replicas.maps_location import Locality, resolve_location
from leadlawk_daemon.replicas.maps_markup import (
    MALFORMED_KINDS,
    churn_classes,
    end_marker,
    feed_card,
    locality_page,
    place_page,
    results_page,
    sorry_page,
)
from leadlawk_daemon.replicas.maps_ratelimit import ClientLimiter, parse_rate_limit
from leadlawk_daemon.replicas.maps_sampling import PARTIAL_FAULT, PartialAnswers

__all__ = ["MAPS_FAULTS", "MapsReplica", "create_maps_app", "run_maps_replica", "serve_maps_replica"]

SESSION_COOKIE = "SID"
_LIMITED_SHARE = 0.25  # hidden by `limited_view: true`


def _limited_share(value: Any) -> float | None:
    """``true`` (a quarter hidden) or the share of businesses the limited view hides, in [0, 1)."""
    if isinstance(value, bool):
        return _LIMITED_SHARE if value else None
    if isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value < 1.0:
        return float(value)
    raise ValueError(f"expected true or a share in [0, 1), got {value!r}")


MAPS_FAULTS: tuple[Fault, ...] = (
    Fault("consent", 'true | "loop" | "accept_only"', "redirect visits without a consent cookie to the consent "
          "page, in the language of hl", choice_or_flag("loop", "accept_only")),
    Fault("sorry", "true | N", "redirect search and place visits to the /sorry/ block page (429)", counted),
    Fault("slow_ms", "milliseconds", "delay every response but /_*", milliseconds),
    Fault("hang", "true | N", "search, place and feed responses never finish", counted),
    Fault("server_error", "true | N", "search, place and feed requests answer 503, as Google's front end does "
          "when a backend is down", counted),
    Fault("feed_stops_after", "N", "the feed stops growing after N cards, without the end marker",
          positive_int),
    Fault("malformed_cards", "fraction | N", "render that share or count of cards with broken markup",
          fraction_or_count),
    Fault("empty_feed", "true", "results pages show an empty feed (a soft block)", flag),
    Fault("class_churn", "true", "rename every obfuscated class, as after a Google release", flag),
    Fault("limited_view", "true | share", "Google's signed-out limited view: banner, no review counts, "
          "a share of the businesses hidden (signed-in sessions see everything)", _limited_share),
    Fault("consent_loop_clients", "[addr, …]", "the consent answers of these client addresses set no cookie "
          "(a consent loop for them alone)", parse_loop_clients),
    Fault("rate_limit", '{"per_minute": N, "cooldown_s": S[, "clients": {addr: {...}}]}',
          "per client address: past N navigations a minute, /sorry/ for S seconds", parse_rate_limit),
    PARTIAL_FAULT,
)

_NAVIGATIONS = ("search", "place")
_MAX_SETS = 128  # answer sets kept for place pages and name lookups; older ones are regenerated
_PLACE_ID = re.compile(r"!19s(ChIJ[A-Za-z0-9_-]{20,})")
_CID = re.compile(r"!1s(0x[0-9a-f]+:0x[0-9a-f]+)")
_CONSENT_COOKIES = ("SOCS", "CONSENT")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MapsReplica:
    """The state of one replica app: its answer sets, faults and request counts."""

    def __init__(
        self, *, seed: int, max_results: int, page_size: int, viewport_px: tuple[int, int] = (1280, 720)
    ) -> None:
        if not 1 <= max_results <= 10_000:
            raise ValueError(f"max_results must be 1-10000, got {max_results}")
        if not 1 <= page_size <= 500:
            raise ValueError(f"page_size must be 1-500, got {page_size}")
        if not all(100 <= px <= 10_000 for px in viewport_px):
            raise ValueError(f"viewport_px must be 100-10000 px each way, got {viewport_px}")
        self.viewport_px = viewport_px
        self.geography = Geography(seed, max_results)
        # Search navigations per viewport (``@lat,lng,zoomz``), so a test can prove none is repeated.
        self.viewports: Counter[str] = Counter()
        self.seed = seed
        self.max_results = max_results
        self.page_size = page_size
        self.faults = FaultSwitchboard(MAPS_FAULTS)
        self.sampling = PartialAnswers()  # the partial fault's runs (maps_sampling.py)
        self.requests: Counter[str] = Counter()
        self.closing = asyncio.Event()
        self._sets: OrderedDict[str, AnswerSet] = OrderedDict()
        self._places: dict[str, tuple[str, int]] = {}
        self._names: dict[tuple[str, str], list[str]] = {}
        # Signed-in sessions issued (``POST /_session``) and not expired.
        self.sessions: set[str] = set()
        # Navigations and blocks per client address, and the ``rate_limit`` fault's cool-downs.
        self.clients = ClientLimiter()
        # Consent forms posted, per language and answer: {"de": {"reject": 1}}.
        self.consent_answers: Counter[tuple[str, str]] = Counter()

    # -- answer sets -------------------------------------------------------------------------

    def answer_set(self, query: str, location: str | None) -> AnswerSet:
        key = search_key(query, location, self.seed)
        found = self._sets.get(key)
        if found is not None:
            self._sets.move_to_end(key)
            return found
        generated = generate_answer_set(query, location, self.seed, self.max_results)
        self._sets[key] = generated
        for business in generated.businesses:
            self._places[business.place_id] = (key, business.rank)
            name_key = (business.name.casefold(), business.locality.label.casefold())
            self._names.setdefault(name_key, []).append(business.place_id)
        while len(self._sets) > _MAX_SETS:
            old_key, old = self._sets.popitem(last=False)
            self._forget(old_key, old)
        return generated

    def _forget(self, key: str, answer_set: AnswerSet) -> None:
        for business in answer_set.businesses:
            if self._places.get(business.place_id, ("", 0))[0] == key:
                del self._places[business.place_id]
            name_key = (business.name.casefold(), business.locality.label.casefold())
            ids = [i for i in self._names.get(name_key, []) if i != business.place_id]
            if ids:
                self._names[name_key] = ids
            else:
                self._names.pop(name_key, None)

    def place(self, place_id: str) -> tuple[Business, AnswerSet] | None:
        entry = self._places.get(place_id)
        if entry is None:
            return self.geography.place(place_id)
        key, rank = entry
        answer_set = self._sets[key]
        return answer_set.businesses[rank], answer_set

    def place_by_cid(self, cid: str) -> tuple[Business, AnswerSet] | None:
        for answer_set in reversed(self._sets.values()):
            for business in answer_set.businesses:
                if business.cid == cid:
                    return business, answer_set
        return None

    def single_place(self, query: str, location: str | None) -> Business | None:
        """The one business a search names, if it names exactly one this replica has served."""
        name_key = (" ".join(query.split()).casefold(), resolve_location(location).label.casefold())
        ids = set(self._names.get(name_key, []))
        if len(ids) == 1:
            found = self.place(ids.pop())
            return found[0] if found else None
        return None

    def viewport_set(self, query: str, location: str | None, viewport: Viewport) -> AnswerSet:
        """What a search of ``viewport`` lists. Where it holds nothing, Google still lists the
        nearest places (outside the map), and so does this."""
        located = resolve_location(location)
        if location is not None:
            self.geography.remember(located)
        listed = [b for b, _ in self.geography.viewport_list(query, viewport)]
        if not listed:
            centre = Bbox(viewport.lat, viewport.lng, viewport.lat, viewport.lng)
            nearest = min(
                self.geography.localities_in(Bbox(-90, -180, 90, 180)),
                key=lambda loc: (loc.latitude - centre.south) ** 2 + (loc.longitude - centre.west) ** 2,
            )
            population = self.geography.population(query, nearest).businesses
            listed = sorted(
                population, key=lambda b: (b.latitude - viewport.lat) ** 2 + (b.longitude - viewport.lng) ** 2
            )[:3]
        return AnswerSet(query=" ".join(query.split()), location=located, businesses=tuple(listed))

    # -- the limited view ----------------------------------------------------------------------

    def limited_for(self, request: web.Request) -> bool:
        """Whether ``request`` sees the limited view: the fault is on and it carries no live session."""
        if self.faults.get("limited_view") is None:
            return False
        return request.cookies.get(SESSION_COOKIE) not in self.sessions

    def hidden_in_limited_view(self, answer_set: AnswerSet) -> list[str]:
        share = self.faults.get("limited_view")
        if share is None:
            return []
        return [
            b.place_id for b in answer_set.businesses
            if int.from_bytes(b.place_id.encode()[-5:], "big") % 10_000 < share * 10_000
        ]

    def view_of(self, answer_set: AnswerSet, limited: bool) -> AnswerSet:
        """The answer set as the limited view shows it (or unchanged): some businesses left out,
        no review counts."""
        if not limited:
            return answer_set
        hidden = set(self.hidden_in_limited_view(answer_set))
        shown = tuple(
            dataclasses.replace(b, review_count=None) for b in answer_set.businesses if b.place_id not in hidden
        )
        return dataclasses.replace(answer_set, businesses=shown)

    def new_session(self) -> str:
        token = secrets.token_urlsafe(32)
        self.sessions.add(token)
        return token

    # -- feed ----------------------------------------------------------------------------------

    def visible_count(self, answer_set: AnswerSet) -> int:
        """How many cards the feed will ever show under the active faults."""
        if self.faults.get("empty_feed"):
            return 0
        stops = self.faults.get("feed_stops_after")
        total = len(answer_set.businesses)
        return total if stops is None else min(total, stops)

    def feed_complete(self, answer_set: AnswerSet) -> bool:
        """Whether the feed reaches its end marker (not when a fault stops it early)."""
        return self.visible_count(answer_set) == len(answer_set.businesses) and not self.faults.get(
            "empty_feed"
        )

    def malformed(self, answer_set: AnswerSet) -> dict[int, str]:
        """Ranks of the cards rendered broken under ``malformed_cards``, with how each is broken."""
        setting = self.faults.get("malformed_cards")
        total = len(answer_set.businesses)
        if setting is None or total == 0:
            return {}
        if isinstance(setting, float):
            ranks = [
                b.rank for b in answer_set.businesses
                if int.from_bytes(b.place_id.encode()[-6:], "big") % 10_000 < setting * 10_000
            ]
        else:
            count = min(int(setting), total)
            ranks = sorted({int((k + 0.5) * total / count) for k in range(count)})
        return {rank: MALFORMED_KINDS[i % len(MALFORMED_KINDS)] for i, rank in enumerate(ranks)}

    def cards(self, answer_set: AnswerSet, start: int, stop: int, base_url: str, locale: Locale) -> str:
        broken = self.malformed(answer_set)
        return "".join(
            feed_card(b, base_url, locale, broken.get(b.rank)) for b in answer_set.businesses[start:stop]
        )

    def finish(self, html: str) -> str:
        return churn_classes(html, f"{self.seed}") if self.faults.get("class_churn") else html

    def answers(self, answer_set: AnswerSet, base_url: str, locale: Locale) -> dict[str, Any]:
        body: dict[str, Any] = {
            "query": answer_set.query,
            "location": answer_set.location.label,
            "answers": [b.answer(base_url, locale) for b in answer_set.businesses],
        }
        broken = self.malformed(answer_set)
        if broken:
            body["malformed"] = [answer_set.businesses[rank].place_id for rank in sorted(broken)]
        if self.faults.get("limited_view") is not None:
            body["hidden_in_limited_view"] = self.hidden_in_limited_view(answer_set)
        return body


REPLICA_KEY = web.AppKey("maps_replica", MapsReplica)


def _replica(request: web.Request) -> MapsReplica:
    return request.app[REPLICA_KEY]


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _route(request: web.Request) -> str:
    name = request.match_info.route.name
    return name or ("control" if request.path.startswith("/_") else "other")


def _safe_continue(target: str | None) -> str:
    """A continue URL reduced to a path on this replica, so the redirect cannot leave it."""
    if not target:
        return "/maps"
    parts = urlsplit(target)
    path = parts.path if parts.path.startswith("/") and not parts.path.startswith("//") else "/maps"
    return path + (f"?{parts.query}" if parts.query else "")


def _has_consent(request: web.Request) -> bool:
    return any(request.cookies.get(name) for name in _CONSENT_COOKIES)


@web.middleware
async def _faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    replica = _replica(request)
    route = _route(request)
    replica.requests[route] += 1
    if request.path.startswith("/_"):
        return await handler(request)
    faults = replica.faults
    delay = faults.get("slow_ms")
    if delay:
        await asyncio.sleep(delay / 1000)
    if route in ("search", "place", "feed") and faults.take("hang"):
        # Cancelled when the client goes away (handler cancellation); released at shutdown.
        await replica.closing.wait()
        raise web.HTTPServiceUnavailable(text="the replica is shutting down")
    if route in ("search", "place", "feed") and faults.take("server_error"):
        raise web.HTTPServiceUnavailable(text="Error 503 (Server Error)")
    # Google turns an address away before anything else it would show it, consent included.
    if _rate_limited(request, route):
        return _sorry_answer(request, route)
    if route in _NAVIGATIONS and faults.get("consent") and not _has_consent(request):
        query = urlencode({"continue": str(request.rel_url), "hl": request.query.get("hl", "en")})
        raise web.HTTPFound(f"/consent?{query}")
    if route in ("search", "place", "feed") and faults.take("sorry"):
        replica.clients.note_block(request.remote or "unknown")
        return _sorry_answer(request, route)
    return await handler(request)


def _sorry_answer(request: web.Request, route: str) -> web.StreamResponse:
    """The block: a navigation goes to ``/sorry/``; a feed fetch is answered 429."""
    token = secrets.token_urlsafe(24)
    target = "/sorry/index?" + urlencode({"continue": str(request.rel_url), "q": token})
    if route == "feed":
        return web.json_response({"error": "unusual traffic", "location": target}, status=429)
    raise web.HTTPFound(target)


def _rate_limited(request: web.Request, route: str) -> bool:
    """Counts the client's navigation; whether the ``rate_limit`` fault blocks this request."""
    replica = _replica(request)
    client = request.remote or "unknown"
    limit = replica.faults.get("rate_limit")
    if route in _NAVIGATIONS:
        return not replica.clients.navigate(client, limit)
    return route == "feed" and replica.clients.blocked_fetch(client, limit)


def _search_text(request: web.Request) -> str:
    api_query = request.query.get("query")
    if api_query is not None:
        return api_query
    raw = request.raw_path.split("?", 1)[0]
    tail = raw[len("/maps/search/"):] if raw.startswith("/maps/search/") else ""
    # Google appends the viewport and data after the query: /maps/search/plumbers/@41.2,-95.9,12z
    tail = re.split(r"/(?:@|data=)", tail, maxsplit=1)[0].rstrip("/")
    return unquote_plus(tail)


async def _search(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    text = " ".join(_search_text(request).split())
    if not text:
        raise web.HTTPBadRequest(text="empty search: use /maps/search/<query> or ?api=1&query=<query>")
    locale = locale_for(request.query.get("hl"))
    query, location = split_search(text)
    viewport = parse_viewport(request.raw_path.split("?", 1)[0], *replica.viewport_px)
    if viewport is not None:
        return _viewport_search(request, text, query, location, viewport, locale)
    if location is None and (locality := locality_search(text)) is not None:
        replica.geography.remember(locality)
        raise web.HTTPFound(f"{_locality_path(replica, locality)}?authuser=0&hl={locale.code}")
    single = replica.single_place(query, location)
    answer_set = replica.answer_set(query, location)
    if single is None and len(answer_set.businesses) == 1:
        single = answer_set.businesses[0]
    if single is not None and not replica.faults.get("empty_feed"):
        raise web.HTTPFound(f"{single.place_path()}?authuser=0&hl={locale.code}&rclk=1")
    limited = replica.limited_for(request)
    answer_set = replica.view_of(replica.sampling.search(replica.faults.get("partial"), answer_set), limited)
    base = _base_url(request)
    shown = min(replica.page_size, replica.visible_count(answer_set))
    ended = shown >= len(answer_set.businesses) and replica.feed_complete(answer_set)
    feed_query = {"q": query, "hl": locale.code}
    if location is not None:
        feed_query["location"] = location
    html = results_page(
        search_text=text,
        cards_html=replica.cards(answer_set, 0, shown, base, locale),
        ended=ended,
        next_offset=shown,
        feed_url="/maps/_feed?" + urlencode(feed_query),
        locale=locale,
        latitude=answer_set.location.latitude,
        longitude=answer_set.location.longitude,
        limited=limited,
    )
    return web.Response(text=replica.finish(html), content_type="text/html")


def _locality_path(replica: MapsReplica, locality: Locality) -> str:
    viewport = locality_viewport(locality, *replica.viewport_px)
    return (
        f"/maps/place/{quote_plus(locality.label, safe='')}/{viewport.url_segment()}/data=!3m1!4b1!4m6!3m5"
        f"!1s{locality_cid(locality)}!8m2!3d{locality.latitude!r}!4d{locality.longitude!r}"
    )


def _viewport_search(
    request: web.Request, text: str, query: str, location: str | None, viewport: Viewport, locale: Locale
) -> web.StreamResponse:
    replica = _replica(request)
    replica.viewports[viewport.url_segment()] += 1
    limited = replica.limited_for(request)
    answer_set = replica.view_of(replica.viewport_set(query, location, viewport), limited)
    shown = min(replica.page_size, replica.visible_count(answer_set))
    ended = shown >= len(answer_set.businesses) and replica.feed_complete(answer_set)
    feed_query = {"q": query, "hl": locale.code, "at": _at(viewport)}
    if location is not None:
        feed_query["location"] = location
    html = results_page(
        search_text=text,
        cards_html=replica.cards(answer_set, 0, shown, _base_url(request), locale),
        ended=ended,
        next_offset=shown,
        feed_url="/maps/_feed?" + urlencode(feed_query),
        locale=locale,
        latitude=viewport.lat,
        longitude=viewport.lng,
        camera=viewport.camera(),
        limited=limited,
    )
    return web.Response(text=replica.finish(html), content_type="text/html")


def _at(viewport: Viewport) -> str:
    return viewport.url_segment()[1:-1]


def _viewport_param(request: web.Request) -> Viewport | None:
    """The ``at=lat,lng,zoom`` of a feed or answers request; 400 when it is there but broken."""
    raw = request.query.get("at")
    if raw is None:
        return None
    viewport = parse_viewport(f"/@{raw}z", *_replica(request).viewport_px)
    if viewport is None:
        raise web.HTTPBadRequest(text=f"at must be lat,lng,zoom (got {raw!r})")
    return viewport


async def _feed(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    query = " ".join(request.query.get("q", "").split())
    if not query:
        raise web.HTTPBadRequest(text="q is required")
    try:
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        offset_text = request.query["offset"]
        raise web.HTTPBadRequest(text=f"offset must be a whole number, got {offset_text!r}") from None
    if offset < 0:
        raise web.HTTPBadRequest(text=f"offset must be ≥ 0, got {offset}")
    locale = locale_for(request.query.get("hl"))
    viewport = _viewport_param(request)
    if viewport is not None:
        answer_set = replica.viewport_set(query, request.query.get("location"), viewport)
    else:
        full = replica.answer_set(query, request.query.get("location"))
        answer_set = replica.sampling.feed(replica.faults.get("partial"), full)
    answer_set = replica.view_of(answer_set, replica.limited_for(request))
    visible = replica.visible_count(answer_set)
    stop = min(offset + replica.page_size, visible)
    html = replica.cards(answer_set, offset, stop, _base_url(request), locale) if stop > offset else ""
    end = stop >= len(answer_set.businesses) and replica.feed_complete(answer_set)
    if end:
        html += end_marker(locale)
    return web.json_response(
        {"html": replica.finish(html), "next_offset": max(offset, stop), "end": end}
    )


async def _place(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    data = unquote_plus(request.match_info.get("data", ""))
    found = None
    match = _PLACE_ID.search(data)
    if match is not None:
        found = replica.place(match.group(1))
    if found is None and (cid := _CID.search(data)) is not None:
        found = replica.place_by_cid(cid.group(1))
    if found is None and (cid := _CID.search(data)) is not None:
        locality = locality_search(unquote_plus(request.match_info.get("name", "")))
        if locality is not None and locality_cid(locality) == cid.group(1):
            viewport = locality_viewport(locality, *replica.viewport_px)
            html = locality_page(
                city=locality.city, state_name=locality.state_name, label=locality.label,
                cid=locality_cid(locality), latitude=locality.latitude, longitude=locality.longitude,
                camera=viewport.camera(), locale=locale_for(request.query.get("hl")),
            )
            return web.Response(text=replica.finish(html), content_type="text/html")
    if found is None:
        raise web.HTTPNotFound(
            text="unknown place: this replica serves place pages of businesses from its recent searches"
        )
    business, answer_set = found
    others = [b for b in answer_set.businesses if b.place_id != business.place_id]
    start = business.rank % len(others) if others else 0
    related = (others[start:] + others[:start])[:3]
    locale = locale_for(request.query.get("hl"))
    limited = replica.limited_for(request)
    if limited:
        business = dataclasses.replace(business, review_count=None)
        related = [dataclasses.replace(other, review_count=None) for other in related]
    html = place_page(business, _base_url(request), locale, related, limited)
    return web.Response(text=replica.finish(html), content_type="text/html")


async def _outbound(request: web.Request) -> web.StreamResponse:
    target = request.query.get("q", "")
    if urlsplit(target).scheme not in ("http", "https"):
        raise web.HTTPBadRequest(text=f"q must be an http(s) URL, got {target!r}")
    raise web.HTTPFound(target)


async def _consent(request: web.Request) -> web.StreamResponse:
    reject_form = _replica(request).faults.get("consent") != "accept_only"
    html = consent_page(_safe_continue(request.query.get("continue")), request.query.get("hl"), reject_form)
    return web.Response(text=html, content_type="text/html")


async def _consent_more(request: web.Request) -> web.StreamResponse:
    # "More options" leads to per-category switches on Google; here, back to the two forms.
    raise web.HTTPFound("/consent?" + urlencode({k: v for k, v in request.query.items() if k in ("continue", "hl")}))


async def _consent_save(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    form = await request.post()
    answer = answer_of(str(form.get("set_eom", "false")))
    if answer is None:
        raise web.HTTPBadRequest(text="set_eom must be true (reject all) or false (accept all)")
    replica.consent_answers[consent_words(str(form.get("hl", ""))).code, answer] += 1
    target = _safe_continue(str(form.get("continue", "")) or None)
    response = web.HTTPSeeOther(target)
    looped = replica.faults.get("consent_loop_clients") or ()
    if replica.faults.get("consent") != "loop" and request.remote not in looped:
        accepted = answer == "accept"
        socs = "CAISHAgCEhJnd3NfMjAyNDA1MDctMF9SQzEaAmVuIAEaBgiA_LyxBg" if accepted else "CAESEwgDEgk"
        response.set_cookie("SOCS", socs, path="/", max_age=400 * 86400, samesite="Lax")
        response.set_cookie("CONSENT", "YES+" if accepted else "PENDING+987", path="/", samesite="Lax")
    raise response


async def _sorry(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    continue_url = _safe_continue(request.query.get("continue"))
    if request.method == "POST":
        form = await request.post()
        continue_url = _safe_continue(str(form.get("continue", "")) or None)
        cooling = replica.clients.cooling_down(request.remote or "unknown", replica.faults.get("rate_limit"))
        if replica.faults.get("sorry") is None and not cooling:
            raise web.HTTPFound(continue_url)
    token = request.query.get("q") or secrets.token_urlsafe(24)
    return web.Response(text=sorry_page(continue_url, token), status=429, content_type="text/html")


async def _answers(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    text = " ".join(request.query.get("q", "").split())
    if not text:
        raise web.HTTPBadRequest(text="q is required: /_answers?q=<query>&location=<location>")
    location = request.query.get("location")
    query = text
    if location is None:
        query, location = split_search(text)
    locale = locale_for(request.query.get("hl"))
    viewport = _viewport_param(request)
    if viewport is not None:
        answer_set = replica.viewport_set(query, location, viewport)
        return web.json_response(replica.answers(answer_set, _base_url(request), locale))
    coverage = request.query.get("coverage", "first")
    if coverage == "area":
        return web.json_response(_area_answers(request, query, location, locale))
    if coverage != "first":
        raise web.HTTPBadRequest(text=f"coverage must be 'first' or 'area' (got {coverage!r})")
    answer_set = replica.answer_set(query, location)
    return web.json_response(replica.answers(answer_set, _base_url(request), locale))


def _area_answers(request: web.Request, query: str, location: str | None, locale: Locale) -> dict[str, Any]:
    """Every business of ``query`` in an area: ``bbox=s,w,n,e``, or the location's map as its
    own place page reports it (the viewport fitted to its extent)."""
    replica = _replica(request)
    raw_box = request.query.get("bbox")
    locality = resolve_location(location)
    if raw_box is not None:
        try:
            s, w, n, e = (float(v) for v in raw_box.split(","))
        except ValueError:
            raise web.HTTPBadRequest(text=f"bbox must be south,west,north,east (got {raw_box!r})") from None
        if not (s < n and w < e):
            raise web.HTTPBadRequest(text=f"bbox must have south < north and west < east (got {raw_box!r})")
        box = Bbox(s, w, n, e)
    else:
        replica.geography.remember(locality)
        box = locality_viewport(locality, *replica.viewport_px).bbox
    found = replica.geography.in_box(query, box)
    base = _base_url(request)
    return {
        "query": " ".join(query.split()),
        "location": locality.label if raw_box is None else None,
        "coverage": "area",
        "area": {"bbox": box.to_list()},
        "extent": extent(locality).to_list() if raw_box is None else None,
        "count": len(found),
        "answers": [b.answer(base, locale) for b, _ in found],
    }


async def _stats(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    counts = dict(replica.requests)
    return web.json_response(
        {
            "requests": counts,
            "navigations": sum(counts.get(name, 0) for name in _NAVIGATIONS),
            "viewports": dict(replica.viewports),
            "clients": replica.clients.report(),
            "consent_answers": _consent_answers(replica),
        }
    )


def _consent_answers(replica: MapsReplica) -> dict[str, dict[str, int]]:
    answers: dict[str, dict[str, int]] = {}
    for (language, answer), count in sorted(replica.consent_answers.items()):
        answers.setdefault(language, {})[answer] = count
    return answers


async def _stats_reset(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    replica.requests.clear()
    replica.viewports.clear()
    replica.clients.reset_stats()
    replica.consent_answers.clear()
    return web.json_response(
        {"requests": {}, "navigations": 0, "viewports": {}, "clients": {}, "consent_answers": {}}
    )


async def _session_new(request: web.Request) -> web.StreamResponse:
    token = _replica(request).new_session()
    cookie = {
        "name": SESSION_COOKIE, "value": token, "domain": request.url.host or "127.0.0.1", "path": "/",
        "expires": -1, "httpOnly": True, "secure": False, "sameSite": "Lax",
    }
    return web.json_response({"cookies": [cookie], "storage_state": {"cookies": [cookie], "origins": []}})


async def _session_expire(request: web.Request) -> web.StreamResponse:
    replica = _replica(request)
    expired = len(replica.sessions)
    replica.sessions.clear()
    return web.json_response({"expired": expired})


async def _maps_home(request: web.Request) -> web.StreamResponse:
    return web.Response(text="<!DOCTYPE html><title>Google Maps</title><div role=\"main\"></div>",
                        content_type="text/html")


def create_maps_app(
    *, seed: int = 0, max_results: int = 120, page_size: int = 20, viewport_px: tuple[int, int] = (1280, 720)
) -> web.Application:
    """The replica as an aiohttp application (serve it with :func:`serve_maps_replica`).
    ``viewport_px`` is the map size a ``/@lat,lng,zoomz`` search is taken to show."""
    replica = MapsReplica(seed=seed, max_results=max_results, page_size=page_size, viewport_px=viewport_px)
    app = web.Application(middlewares=[_faults_middleware])
    app[REPLICA_KEY] = replica

    async def release_hangs(_app: web.Application) -> None:
        replica.closing.set()

    app.on_shutdown.append(release_hangs)
    router = app.router
    router.add_get("/maps", _maps_home, name="home")
    router.add_get("/maps/search/{query:.*}", _search, name="search")
    router.add_get("/maps/_feed", _feed, name="feed")
    router.add_get("/maps/place/{name}/{data:.*}", _place, name="place")
    router.add_get("/url", _outbound, name="outbound")
    router.add_get("/consent", _consent, name="consent")
    router.add_get("/consent/d", _consent_more, name="consent_more")
    router.add_post("/consent/save", _consent_save, name="consent_save")
    router.add_route("*", "/sorry/index", _sorry, name="sorry")
    router.add_get("/_answers", _answers, name="answers")
    router.add_get("/_stats", _stats, name="stats")
    router.add_post("/_session", _session_new, name="session_new")
    router.add_post("/_session/expire", _session_expire, name="session_expire")
    router.add_post("/_stats/reset", _stats_reset, name="stats_reset")
    add_fault_routes(app, replica.faults)
    return app


@contextlib.asynccontextmanager
async def serve_maps_replica(
    host: str = "127.0.0.1", port: int = 0, **kw: Any
) -> AsyncIterator[str]:
    """Serve the replica on ``host:port`` (0: any free port) and yield its base URL."""
    app = create_maps_app(**kw)
    # Handler cancellation ends a hung response as soon as its client disconnects.
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        yield f"http://{shown_host}:{bound}"
    finally:
        await runner.cleanup()


async def run_maps_replica(host: str, port: int, seed: int) -> None:
    """``leadlawk replica maps``: serve in the foreground, print the base URL, run until cancelled."""
    await serve_in_foreground(serve_maps_replica(host, port, seed=seed), lambda base_url: (base_url,))
