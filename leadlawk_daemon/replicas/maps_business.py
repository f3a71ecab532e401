"""The businesses the Maps replica serves, generated deterministically from (query, location, seed).

Every value comes from a ``random.Random`` seeded with a SHA-256 of the inputs (never Python's
salted ``hash()``), so ``"plumbers" in "Omaha, NE"`` has the same answer set on every run and
machine. Business ``i`` depends only on the search key and ``i``: a smaller ``max_results``
yields a prefix of a larger one.

What a scraper must cope with is generated on purpose: about a third of businesses have no
website, some no phone, service-area businesses no address; chains share a name across
branches (deduplicate by place id, never by name); some review counts pass 1,000; some cards
are compact (no phone or website shown: the place page has them); some website links are
wrapped in ``/url?q=`` redirects; some places show a booking link that is not their website.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from leadlawk_daemon.replicas.maps_abroad import PlaceAddress, foreign_address, foreign_phone
from leadlawk_daemon.replicas.maps_address_result import address_in_query
from leadlawk_daemon.replicas.maps_locale import Locale
from leadlawk_daemon.replicas.maps_location import Locality, resolve_location
from leadlawk_daemon.replicas.plus_codes import encode_plus_code, short_plus_code

__all__ = [
    "DAYS",
    "RARE_RESULTS",
    "AnswerSet",
    "Business",
    "generate_answer_set",
    "place_data_segment",
    "search_key",
    "split_search",
]

RARE_RESULTS = 7
"""Size of the answer set of a query containing the word "rare": a feed that ends early."""

PLACE_PREFIX = "place:"

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# keyword in the query → (category shown, word used in business names, other categories seen)
_TRADES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("plumb", "Plumber", "Plumbing", ("Water heater installation service", "Drainage service")),
    ("paint", "Painter", "Painting", ("Painting contractor", "House painter")),
    ("dent", "Dentist", "Dental", ("Cosmetic dentist", "Pediatric dentist")),
    ("roof", "Roofing contractor", "Roofing", ("Gutter service",)),
    ("electric", "Electrician", "Electric", ("Lighting contractor",)),
    ("barber", "Barber shop", "Barbers", ("Hair salon",)),
    ("hair", "Hair salon", "Salon", ("Beauty salon", "Barber shop")),
    ("salon", "Beauty salon", "Salon", ("Hair salon", "Nail salon")),
    ("pizza", "Pizza restaurant", "Pizza", ("Italian restaurant",)),
    ("coffee", "Coffee shop", "Coffee", ("Cafe", "Espresso bar")),
    ("cafe", "Cafe", "Cafe", ("Coffee shop", "Breakfast restaurant")),
    ("restaurant", "Restaurant", "Kitchen", ("American restaurant", "Family restaurant")),
    ("lawyer", "Law firm", "Law", ("Personal injury attorney", "Family law attorney")),
    ("attorney", "Attorney", "Law", ("Law firm",)),
    ("hvac", "HVAC contractor", "Heating & Air",
     ("Air conditioning repair service", "Furnace repair service")),
    ("heating", "HVAC contractor", "Heating & Cooling", ("Furnace repair service",)),
    ("landscap", "Landscaper", "Landscaping", ("Lawn care service", "Landscape designer")),
    ("lawn", "Lawn care service", "Lawn Care", ("Landscaper",)),
    ("mechanic", "Auto repair shop", "Auto Repair", ("Brake shop", "Oil change service")),
    ("auto", "Auto repair shop", "Automotive", ("Auto body shop", "Tire shop")),
    ("clean", "House cleaning service", "Cleaning", ("Janitorial service", "Carpet cleaning service")),
    ("vet", "Veterinarian", "Animal Hospital", ("Pet groomer", "Emergency veterinarian service")),
    ("gym", "Gym", "Fitness", ("Fitness center", "Personal trainer")),
    ("fitness", "Fitness center", "Fitness", ("Gym", "Yoga studio")),
    ("bakery", "Bakery", "Bakery", ("Cake shop", "Donut shop")),
    ("florist", "Florist", "Flowers", ("Flower delivery", "Wedding service")),
    ("pest", "Pest control service", "Pest Control", ("Termite control service",)),
    ("pottery", "Pottery classes", "Clay Studio", ("Art studio", "Pottery store")),
)

_SURNAMES = (
    "Anderson", "Bennett", "Carter", "Dalton", "Ellis", "Fischer", "Garcia", "Hansen", "Iverson",
    "Jensen", "Keller", "Larsen", "Morales", "Nguyen", "Olsen", "Patel", "Quinn", "Reyes", "Schultz",
    "Thompson", "Underwood", "Vasquez", "Walsh", "Young", "Zimmerman", "Kowalski", "O'Brien", "Novak",
    "Becker", "Mendoza", "Svoboda", "Lindqvist", "Haddad", "Okafor", "Nakamura", "Dubois",
)
_FIRST_NAMES = ("Mike", "Dave", "Rosa", "Jim", "Ana", "Tom", "Linh", "Sam", "Grace", "Omar", "Kate", "Luis")
_ADJECTIVES = (
    "Reliable", "Precision", "Premier", "Heartland", "Prairie", "Summit", "Blue Ribbon", "Golden",
    "Evergreen", "Northside", "Keystone", "Liberty", "Pioneer", "Cornerstone", "Elite", "Honest",
    "Rapid", "True North", "All-Star", "Riverfront", "Straight Line", "Perceptive", "Bright Side",
    "Old Market", "Maple Leaf", "Ironwood",
)
_SUFFIXES = ("LLC", "Co.", "Inc.", "& Sons", "Services", "Group", "Pros", "Experts", "Company", "")
_STREETS = (
    "Washington", "Maple", "Dodge", "Pacific", "Center", "Leavenworth", "Farnam", "Blondo", "Cedardale",
    "Harrison", "Giles", "Oak", "Park", "Main", "Lincoln", "Jefferson", "Elm", "Cass", "Military",
)
_STREET_TYPES = ("St", "Ave", "Rd", "Blvd", "Dr", "Cir", "Plaza", "Pkwy")
_DIRECTIONS = ("N", "S", "E", "W", "")


@dataclass(frozen=True, slots=True)
class Business:
    """One generated business. ``address`` is the street line a feed card shows;
    ``full_address`` is what the place panel and the embedded state show."""

    rank: int
    place_id: str
    cid: str
    kg_id: str
    name: str
    category: str
    categories: tuple[str, ...]
    address: str | None
    full_address: str | None
    locality: Locality
    phone: str | None
    phone_e164: str | None
    website: str | None
    website_wrapped: bool
    booking_url: str | None
    rating: float | None
    review_count: int | None
    latitude: float
    longitude: float
    plus_code: str | None
    global_plus_code: str
    hours: tuple[tuple[str, str], ...] | None
    compact: bool
    # The address as Google's place data splits it (docs/addresses.md); None without an address.
    place_address: PlaceAddress | None = None
    # Ground truth for company grouping: the place id of the first branch of this business's chain
    # (its head), the same on every branch; None for an independent business.
    chain: str | None = None

    def place_path(self) -> str:
        """``/maps/place/<name>/data=…`` as Google's card links spell it."""
        return f"/maps/place/{quote_plus(self.name, safe='')}/{place_data_segment(self)}"

    def maps_url(self, base_url: str, hl: str) -> str:
        """The place URL exactly as this business's feed card links it."""
        return f"{base_url}{self.place_path()}?authuser=0&hl={quote(hl, safe='')}&rclk=1"

    def answer(self, base_url: str, locale: Locale) -> dict[str, Any]:
        """This business as ``GET /_answers`` lists it, in the words of ``locale`` (as its pages)."""
        hours = None
        if self.hours is not None:
            hours = [[locale.day(day), locale.hours_text(text)] for day, text in self.hours]
        return {
            "place_id": self.place_id,
            "cid": self.cid,
            "name": self.name,
            "category": self.category,
            "address": self.address,
            "full_address": self.full_address,
            "phone": self.phone,
            "phone_e164": self.phone_e164,
            "website": self.website,
            "rating": self.rating,
            "review_count": self.review_count,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "maps_url": self.maps_url(base_url, locale.code),
            "plus_code": self.plus_code,
            "hours": hours,
            "compact": self.compact,
            "chain": self.chain,
            # The address parts Google's place data carries for it (docs/addresses.md).
            **_parts_answer(self.place_address),
        }


def _parts_answer(address: PlaceAddress | None) -> dict[str, Any]:
    return {
        "street": address.street if address else None,
        "locality": address.locality if address else None,
        "region": address.region if address else None,
        "postal_code": address.postal_code if address else None,
        "country_code": address.country_code if address else None,
    }


def place_data_segment(business: Business) -> str:
    """The ``data=!4m7!3m6!1s<cid>!8m2!3d<lat>!4d<lng>!16s<kg>!19s<place_id>`` path segment."""
    kg = quote(business.kg_id, safe="")
    return (
        f"data=!4m7!3m6!1s{business.cid}!8m2!3d{business.latitude!r}!4d{business.longitude!r}"
        f"!16s{kg}!19s{business.place_id}"
    )


@dataclass(frozen=True, slots=True)
class AnswerSet:
    query: str
    location: Locality
    businesses: tuple[Business, ...]


_IN = re.compile(r"\s+in\s+", re.IGNORECASE)


def split_search(text: str) -> tuple[str, str | None]:
    """``"plumbers in Omaha, NE"`` → ``("plumbers", "Omaha, NE")``: the last " in " separates."""
    text = " ".join(text.split())
    matches = list(_IN.finditer(text))
    if not matches:
        return text, None
    last = matches[-1]
    query, location = text[: last.start()].strip(), text[last.end():].strip()
    if not query or not location:
        return text, None
    return query, location


def search_key(query: str, location: str | None, seed: int) -> str:
    locality = resolve_location(location)
    return f"{seed}\x1f{' '.join(query.casefold().split())}\x1f{locality.label.casefold()}"


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _trade(query: str) -> tuple[str, str, tuple[str, ...]]:
    folded = query.casefold()
    for keyword, category, word, others in _TRADES:
        if keyword in folded:
            return category, word, others
    words = [w for w in re.split(r"[^\w&'-]+", query) if w]
    if not words:
        return "Business", "Services", ()
    title = " ".join(w[:1].upper() + w[1:] for w in words)
    singular = title[:-1] if title.endswith("s") and not title.endswith("ss") else title
    return singular, title, ()


def _place_id(cid_high: int, cid_low: int) -> str:
    # Google's ChIJ ids are a small protobuf carrying the two halves of the cid, base64url-encoded.
    raw = b"\x0a\x12\x09" + cid_high.to_bytes(8, "little") + b"\x11" + cid_low.to_bytes(8, "little")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-") or "business"


def _name(rng: random.Random, word: str, locality: Locality) -> str:
    pattern = rng.randrange(7)
    surname, other = rng.sample(_SURNAMES, 2)
    adjective = rng.choice(_ADJECTIVES)
    suffix = rng.choice(_SUFFIXES)
    if pattern == 0:
        name = f"{surname} {word}"
    elif pattern == 1:
        name = f"{adjective} {word} {suffix}"
    elif pattern == 2:
        name = f"{locality.city} {word} {suffix}"
    elif pattern == 3:
        name = f"{surname} & {other} {word}"
    elif pattern == 4:
        name = f"{adjective} {word} of {locality.city}"
    elif pattern == 5:
        name = f"{rng.choice(_FIRST_NAMES)}'s {word}"
    else:
        name = f"{surname} {word} {suffix}"
    return " ".join(name.split())


def _unique_name(rng: random.Random, word: str, locality: Locality, taken: set[str]) -> str:
    # Accidental namesakes would blur the deliberate chains; Google disambiguates with a branch.
    for _ in range(12):
        name = _name(rng, word, locality)
        if name not in taken:
            return name
    return f"{name} - {rng.choice(_STREETS)} {rng.choice(_STREET_TYPES)}"


def _hours(rng: random.Random) -> tuple[tuple[str, str], ...] | None:
    kind = rng.randrange(10)
    if kind < 3:
        return None
    if kind == 3:
        return tuple((day, "Open 24 hours") for day in DAYS)
    opens, closes = rng.choice((7, 8, 9)), rng.choice((4, 5, 6))
    week = f"{opens} AM–{closes} PM"
    if kind in (4, 5):
        saturday, sunday = f"{opens + 1} AM–1 PM", "Closed"
    elif kind == 6:
        saturday = sunday = "Closed"
    else:
        saturday, sunday = week, f"10 AM–{closes - 1} PM"
    return (*((day, week) for day in DAYS[:5]), ("Saturday", saturday), ("Sunday", sunday))


def _review_count(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.1:
        return rng.randrange(1000, 9800)
    if roll < 0.3:
        return rng.randrange(100, 1000)
    return rng.randrange(1, 100)


def _business(
    key: str, rank: int, query: str, locality: Locality, chain_name: str | None, taken: set[str]
) -> Business:
    rng = _rng(key, rank)
    category, word, others = _trade(query)
    if others and rng.random() < 0.15:
        category = rng.choice(others)
    name = chain_name or _unique_name(rng, word, locality, taken)
    cid_high, cid_low = rng.getrandbits(64), rng.getrandbits(64)
    kg_id = "/g/11" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(7))
    latitude = round(locality.latitude + rng.uniform(-0.12, 0.12), 7)
    longitude = round(locality.longitude + rng.uniform(-0.15, 0.15), 7)
    zip_code = f"{locality.zip_prefix}{rng.randrange(1, 60):02d}"
    service_area = rng.random() < 0.15
    street: str | None = None
    full: str | None = None
    if not service_area:
        direction = rng.choice(_DIRECTIONS)
        street_name = rng.choice(_STREETS) if rng.random() < 0.7 else f"{rng.randrange(10, 180)}th"
        street = " ".join(
            part for part in (str(rng.randrange(100, 20000)), direction, street_name,
                              rng.choice(_STREET_TYPES)) if part
        )
        if rng.random() < 0.12:
            street += f" Suite {rng.randrange(100, 400)}"
        full = f"{street}, {locality.city}, {locality.state} {zip_code}"
    phone = phone_e164 = None
    if rng.random() >= 0.1:
        line = f"01{rng.randrange(0, 100):02d}"
        area = locality.area_code
        phone, phone_e164 = f"({area}) 555-{line}", f"+1{area}555{line}"
    place_address: PlaceAddress | None = None
    if locality.country != "US":
        # Written as the country writes them, from a draw of their own: US answer sets are unchanged.
        abroad = _rng(key, rank, "abroad")
        if street is not None:
            place_address = foreign_address(
                abroad, locality.country, locality.city, locality.state_name or None, locality.zip_prefix
            )
            street, full = place_address.street, place_address.formatted
        if phone is not None:
            phone, phone_e164 = foreign_phone(abroad, locality.country, locality.area_code) or (None, None)
    elif street is not None and full is not None:
        place_address = PlaceAddress(street, locality.city, locality.state, zip_code, "US", None, full)
    website = None
    if rng.random() >= 1 / 3:
        website = f"http://{_slug(name)}.example/"
    rating: float | None = None
    review_count: int | None = None
    if rng.random() >= 0.04:
        review_count = _review_count(rng)
        rating = round(min(5.0, max(1.0, rng.gauss(4.4, 0.55))), 1)
    plus_code = None
    if full is not None:
        plus_code = short_plus_code(latitude, longitude, f"{locality.city}, {locality.state_name}")
    categories = (category, *[c for c in others if c != category][: rng.randrange(0, 2)])
    return Business(
        rank=rank,
        place_id=_place_id(cid_high, cid_low),
        cid=f"0x{cid_high:x}:0x{cid_low:x}",
        kg_id=kg_id,
        name=name,
        category=category,
        categories=categories,
        address=street,
        full_address=full,
        locality=locality,
        phone=phone,
        phone_e164=phone_e164,
        website=website,
        website_wrapped=website is not None and rng.random() < 0.2,
        booking_url=f"http://book.example/{_slug(name)}" if rng.random() < 0.1 else None,
        rating=rating,
        review_count=review_count,
        latitude=latitude,
        longitude=longitude,
        plus_code=plus_code,
        global_plus_code=encode_plus_code(latitude, longitude),
        hours=_hours(rng),
        compact=rng.random() < 0.1,
        place_address=place_address,
    )


def answer_set_size(query: str, max_results: int) -> int:
    if query.casefold().startswith(PLACE_PREFIX):
        return 1
    if re.search(r"\brare\b", query, re.IGNORECASE):
        return min(RARE_RESULTS, max_results)
    return max_results


def generate_answer_set(query: str, location: str | None, seed: int, max_results: int) -> AnswerSet:
    """The businesses of one search, in feed order."""
    query = " ".join(query.split())
    locality = resolve_location(location)
    key = search_key(query, location, seed)
    size = answer_set_size(query, max_results)
    single = query.casefold().startswith(PLACE_PREFIX)
    businesses: list[Business] = []
    taken: set[str] = set()
    lines = _PhoneLines(key)
    for rank in range(size):
        chain_name: str | None = None
        head: Business | None = None
        if single:
            chain_name = query[len(PLACE_PREFIX):].strip() or "Unnamed place"
        elif rank >= 5 and _rng(key, rank, "chain").random() < 0.04:
            # A branch of a chain seen earlier in the feed: same name, another place, and the
            # chain's one website and central phone (what groups it: docs/chains.md).
            pick = _rng(key, rank, "of")
            chains = [b for b in businesses if b.chain == b.place_id]
            # Most branches join a chain already seen, so chains have several locations, not two.
            heads = chains if chains and pick.random() < 0.6 else [
                b for b in businesses if b.chain is None and (b.website or b.phone)
            ]
            if heads:
                head = heads[pick.randrange(len(heads))]
                chain_name = head.name
        business = _business(key, rank, query, locality, chain_name, taken)
        if head is not None:
            business = dataclasses.replace(
                business, website=head.website, phone=head.phone, phone_e164=head.phone_e164, chain=head.place_id
            )
            businesses[head.rank] = dataclasses.replace(head, chain=head.place_id)
        else:
            business = lines.own(business)
        taken.add(business.name)
        businesses.append(business)
    if (street := address_in_query(query)) is not None and businesses and not single:
        # The address the query names is listed first, as Google lists it: not a business.
        businesses[0] = dataclasses.replace(
            businesses[0], name=street, category=locality.label, categories=(locality.label,), address=None,
            full_address=None, place_address=None, phone=None, phone_e164=None, website=None,
            website_wrapped=False, booking_url=None, rating=None, review_count=None, plus_code=None,
            hours=None, compact=False, chain=None,
        )
    return AnswerSet(query=query, location=locality, businesses=tuple(businesses))


class _PhoneLines:
    """One phone per business of an answer set: the fictional 555-0100 to 555-0199 has 100 lines,
    so drawn at random two unrelated businesses would share one, which reads as a chain. A line
    taken already is replaced by the next free one; with none left the business shows no phone."""

    def __init__(self, key: str) -> None:
        self._free = list(range(100))
        _rng(key, "lines").shuffle(self._free)
        self._taken: set[str] = set()

    def own(self, business: Business) -> Business:
        if business.phone_e164 is None:
            return business
        if business.phone_e164 not in self._taken or not business.phone_e164.startswith("+1"):
            # (Abroad, a landline is eight random digits: two never meet.)
            self._taken.add(business.phone_e164)
            return business
        area = business.phone_e164[2:5]
        while self._free:
            line = f"01{self._free.pop():02d}"
            if f"+1{area}555{line}" not in self._taken:
                self._taken.add(f"+1{area}555{line}")
                return dataclasses.replace(business, phone=f"({area}) 555-{line}", phone_e164=f"+1{area}555{line}")
        return dataclasses.replace(business, phone=None, phone_e164=None)
