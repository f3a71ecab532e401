"""The Maps replica's geography: where each locality's businesses are, and what a viewport shows.

Each locality has an extent (the box its businesses lie in, about 27 × 25 km) and, per query, a
population of businesses: the first 120 are exactly the businesses a plain search lists (spread
evenly, as before this module existed), the rest follow a city's density: about 45 % around a
downtown a little off the centre, 30 % in three to five clusters (malls, suburbs' main streets),
25 % thinly over the whole extent. The population's size is stable per (query, locality):
260-599 businesses, twice that for common trades (restaurants, cafés, salons, dentists, auto
repair), three times in the big cities (Chicago, New York, Los Angeles): "restaurants" in
"Chicago, IL" has more than 1,500, so Google's cap binds many times over.

The replica's world is the known cities of :mod:`maps_location` plus every locality it has been
asked about; a viewport search shows, as Google does, the best-ranked businesses of every
locality inside the viewport and a band just outside it (10 % of its size on each side), at most
the results cap.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import OrderedDict
from dataclasses import dataclass, replace

from leadlawk_daemon.maps.area import Bbox, Viewport, viewport_covering
from leadlawk_daemon.maps.extent import url_viewport
from leadlawk_daemon.replicas.maps_business import AnswerSet, Business, answer_set_size, generate_answer_set
from leadlawk_daemon.replicas.maps_location import Locality, known_localities, resolve_location
from leadlawk_daemon.replicas.plus_codes import encode_plus_code, short_plus_code

__all__ = [
    "EXTENT_HALF_LAT",
    "EXTENT_HALF_LNG",
    "OUTSIDE_BAND",
    "Geography",
    "extent",
    "locality_cid",
    "locality_search",
    "locality_viewport",
    "parse_viewport",
    "population_size",
]

# The box maps_business draws a business's coordinates from; a locality's extent is exactly it.
EXTENT_HALF_LAT = 0.12
EXTENT_HALF_LNG = 0.15
OUTSIDE_BAND = 0.10
"""How far past a viewport's edges its list reaches, as a fraction of its size."""

_EVEN_RANKS = 120  # the plain search's businesses keep their even spread
_COMMON = ("restaurant", "pizza", "coffee", "cafe", "salon", "hair", "dent", "auto", "mechanic")
_BIG_CITIES = frozenset({"chicago, il", "new york, ny", "los angeles, ca"})
_MAX_POPULATIONS = 64
_IN = re.compile(r"\s+in\s+", re.IGNORECASE)
_LOCALITY_TEXT = re.compile(r"^[^\W\d_][\w .'-]{0,60},\s*[A-Za-z .]{2,30}$")


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def extent(locality: Locality) -> Bbox:
    return Bbox(
        locality.latitude - EXTENT_HALF_LAT,
        locality.longitude - EXTENT_HALF_LNG,
        locality.latitude + EXTENT_HALF_LAT,
        locality.longitude + EXTENT_HALF_LNG,
    )


def locality_viewport(locality: Locality, width_px: int, height_px: int) -> Viewport:
    """The map Google shows for the locality itself: its extent, fitted."""
    return viewport_covering(extent(locality), width_px, height_px)


def locality_cid(locality: Locality) -> str:
    digest = hashlib.sha256(f"locality|{locality.label.casefold()}".encode()).digest()
    return f"0x{int.from_bytes(digest[:8], 'big'):x}:0x{int.from_bytes(digest[8:16], 'big'):x}"


def locality_search(text: str) -> Locality | None:
    """The locality a search names alone ("Omaha, NE"), if it is one: Google opens its place page."""
    if not _LOCALITY_TEXT.match(text) or _IN.search(text):
        return None
    city, state = (part.strip() for part in text.rsplit(",", 1))
    locality = resolve_location(text)
    named = state.casefold() in (locality.state.casefold(), locality.state_name.casefold())
    return locality if named and city.casefold() == locality.city.casefold() else None


def parse_viewport(path: str, width_px: int, height_px: int) -> Viewport | None:
    """The ``/@lat,lng,zoomz`` viewport of a search URL's path, read as the scraper reads it."""
    viewport = url_viewport(path, width_px, height_px)
    return viewport if viewport is not None and viewport.zoom >= 1 else None


def population_size(query: str, locality: Locality, max_results: int) -> int:
    base = answer_set_size(query, max_results)
    if base < max_results:
        return base  # "rare" and "place:" searches are small everywhere
    folded = " ".join(query.casefold().split())
    digest = hashlib.sha256(f"{folded}|{locality.label.casefold()}".encode()).digest()
    size = 260 + int.from_bytes(digest[:4], "big") % 340
    if any(word in folded for word in _COMMON):
        size *= 2
    if locality.label.casefold() in _BIG_CITIES:
        size *= 3
    return max(max_results, size)


@dataclass(frozen=True, slots=True)
class _Layout:
    downtown: tuple[float, float]
    clusters: tuple[tuple[float, float], ...]


def _layout(locality: Locality) -> _Layout:
    rng = _rng("layout", locality.label.casefold())
    lat, lng = locality.latitude, locality.longitude
    downtown = (lat + rng.uniform(-0.015, 0.015), lng + rng.uniform(-0.02, 0.02))
    clusters = tuple(
        (lat + rng.uniform(-0.09, 0.09), lng + rng.uniform(-0.11, 0.11)) for _ in range(rng.randint(3, 5))
    )
    return _Layout(downtown, clusters)


def _place(business: Business, key: str, layout: _Layout, box: Bbox) -> Business:
    rng = _rng(key, business.rank, "where")
    lat = lng = 0.0
    for _ in range(20):
        roll = rng.random()
        if roll < 0.45:
            lat, lng = rng.gauss(layout.downtown[0], 0.022), rng.gauss(layout.downtown[1], 0.028)
        elif roll < 0.75:
            c_lat, c_lng = rng.choice(layout.clusters)
            lat, lng = rng.gauss(c_lat, 0.006), rng.gauss(c_lng, 0.008)
        else:
            lat, lng = rng.uniform(box.south, box.north), rng.uniform(box.west, box.east)
        if box.contains(lat, lng):
            break
    lat = round(min(max(lat, box.south), box.north), 7)
    lng = round(min(max(lng, box.west), box.east), 7)
    loc = business.locality
    plus = None
    if business.plus_code is not None:
        plus = short_plus_code(lat, lng, f"{loc.city}, {loc.state_name}")
    return replace(business, latitude=lat, longitude=lng, plus_code=plus, global_plus_code=encode_plus_code(lat, lng))


def generate_population(query: str, locality: Locality, seed: int, max_results: int) -> AnswerSet:
    """Every business of ``query`` in ``locality``, in rank order (the plain search's first)."""
    size = population_size(query, locality, max_results)
    generated = generate_answer_set(query, locality.label, seed, size)
    key = f"{seed}\x1f{' '.join(query.casefold().split())}\x1f{locality.label.casefold()}"
    layout, box = _layout(locality), extent(locality)
    businesses = tuple(
        b if b.rank < _EVEN_RANKS else _place(b, key, layout, box) for b in generated.businesses
    )
    return AnswerSet(query=generated.query, location=locality, businesses=businesses)


class Geography:
    """The replica's world for area searches: populations by (query, locality), generated on demand."""

    def __init__(self, seed: int, max_results: int) -> None:
        self.seed = seed
        self.max_results = max_results
        self._populations: OrderedDict[tuple[str, str], AnswerSet] = OrderedDict()
        self._localities: dict[str, Locality] = {loc.label.casefold(): loc for loc in known_localities()}
        self._by_place: dict[str, tuple[Business, AnswerSet]] = {}

    def remember(self, locality: Locality) -> None:
        self._localities.setdefault(locality.label.casefold(), locality)

    def population(self, query: str, locality: Locality) -> AnswerSet:
        """Every business of ``query`` in ``locality`` (generated once, then kept while in use)."""
        self.remember(locality)
        key = (" ".join(query.casefold().split()), locality.label.casefold())
        found = self._populations.get(key)
        if found is not None:
            self._populations.move_to_end(key)
            return found
        generated = generate_population(query, locality, self.seed, self.max_results)
        self._populations[key] = generated
        for business in generated.businesses:
            self._by_place.setdefault(business.place_id, (business, generated))
        while len(self._populations) > _MAX_POPULATIONS:
            _, old = self._populations.popitem(last=False)
            for business in old.businesses:
                if self._by_place.get(business.place_id, (None, None))[1] is old:
                    del self._by_place[business.place_id]
        return generated

    def place(self, place_id: str) -> tuple[Business, AnswerSet] | None:
        """A business of a population generated here, for its place page."""
        return self._by_place.get(place_id)

    def localities_in(self, box: Bbox) -> list[Locality]:
        return sorted(
            (loc for loc in self._localities.values() if extent(loc).intersects(box)), key=lambda loc: loc.label
        )

    def in_box(self, query: str, box: Bbox) -> list[tuple[Business, AnswerSet]]:
        """Every business of ``query`` inside ``box``, best-ranked first, with its population."""
        found: list[tuple[Business, AnswerSet]] = []
        for locality in self.localities_in(box):
            population = self.population(query, locality)
            found.extend((b, population) for b in population.businesses if box.contains(b.latitude, b.longitude))
        found.sort(key=lambda pair: (pair[0].rank, pair[0].locality.label))
        return found

    def viewport_list(self, query: str, viewport: Viewport) -> list[tuple[Business, AnswerSet]]:
        """What a search of ``viewport`` lists: its best-ranked businesses and some just outside it."""
        return self.in_box(query, viewport.bbox.expanded(OUTSIDE_BAND))[: self.max_results]
