"""The job spec: what a client submits over Redis, HTTP or the CLI, validated into a :class:`JobSpec`.

Validation is strict and hand-written rather than delegated to a schema library, because its
messages are the user interface of a rejection: every problem is named at once, by field path,
with the offending value (``limit: must be between 1 and 500 (got 900)``). Strict means no
coercion: ``"5"`` is not ``5``, ``true`` is not ``1`` and ``50.0`` is not an integer, so what is
stored and run is exactly what the client wrote.

A batch (``queries`` and/or ``locations`` instead of ``query``/``location``) is one parent spec
whose children are every (query, location) pair; a child's id is ``<parent id>.<index>``, so
resubmitting the same batch id yields the same children and runs nothing twice.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from leadlawk_daemon.logs import redact
from leadlawk_daemon.maps.area import Area, area_problems, area_to_dict
from leadlawk_daemon.sites.report import known_site_tech

__all__ = [
    "AREA_LIMIT",
    "DEFAULT_LIMIT",
    "DEFAULT_MAX_AREA_KM2",
    "DEFAULT_MAX_RUNTIME_S",
    "DEFAULT_PRIORITY",
    "ID_PATTERN",
    "MAX_BATCH_CHILDREN",
    "MAX_RUNTIME_CAP_S",
    "JobSpec",
    "JobSpecError",
    "PageSpeedSpec",
    "Website",
    "new_job_id",
    "parse_job_spec",
]

Website = Literal["any", "required", "none"]
Coverage = Literal["first", "area"]
WhenHidden = Literal["reject", "accept"]
Strategy = Literal["mobile", "desktop"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
AREA_LIMIT = 10_000
"""The limit of a ``coverage: "area"`` job: every business of an area can be thousands."""
DEFAULT_MAX_AREA_KM2 = 10_000.0
"""``maps.max_area_km2``'s default; callers holding the settings pass theirs."""
DEFAULT_MAX_RUNTIME_S = 1800.0
# A job that needs more than a day is a mistake (or an attack on the browser pool), not a job.
MAX_RUNTIME_CAP_S = 86_400.0
# Leasing takes the highest priority first, then the oldest: 0 lowest, 9 highest.
DEFAULT_PRIORITY = 5
MAX_PRIORITY = 9
MAX_TEXT = 200
MAX_BATCH_LIST = 100
MAX_BATCH_CHILDREN = 1000
# Far above any real business; keeps the value a 32-bit integer in every store.
MAX_REVIEWS = 1_000_000_000
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DESTINATION_PATTERN = ID_PATTERN  # settings.DESTINATION_NAME: the same shape
MAX_NOTIFY = 16
# max_branches: more than any chain a job could find (an area job finds at most AREA_LIMIT leads).
MAX_BRANCHES = 10_000
_ID_MAX = 64
_STRATEGIES: tuple[Strategy, ...] = ("mobile", "desktop")
_TOP_FIELDS = (
    "id",
    "query",
    "queries",
    "location",
    "locations",
    "limit",
    "min_rating",
    "min_reviews",
    "min_reviews_when_hidden",
    "website",
    "pagespeed",
    "max_runtime_s",
    "coverage",
    "area",
    "site",
    "priority",
    "notify",
    "independent_only",
    "max_branches",
    "include_addresses",
)
_PAGESPEED_FIELDS = ("enabled", "strategies", "max_score")
_SITE_FIELDS = ("enabled", "require_email", "status", "built_with", "older_than_year", "no_https", "no_mobile_viewport",
                "email", "exclude_free_mail")
# site.email (docs/email-verdicts.md): "any" address at all, or one at a domain that accepts mail.
SITE_EMAIL_RULES = ("any", "deliverable")
SITE_STATUSES = ("ok", "dead", "parked", "blocked", "unreadable", "blocked_by_policy")
SITE_BUILDERS = ("wix", "squarespace", "godaddy", "wordpress", "weebly", "shopify", "other", "handwritten")
_SHOWN = 60


class JobSpecError(ValueError):
    """A rejected job spec. ``problems`` names each one; ``too_large`` is the size limit (HTTP 413)."""

    def __init__(self, problems: list[str], *, too_large: bool = False) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.too_large = too_large


@dataclass(frozen=True, slots=True)
class PageSpeedSpec:
    enabled: bool = True
    strategies: tuple[Strategy, ...] = ("mobile",)
    max_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enabled": self.enabled, "strategies": list(self.strategies)}
        if self.max_score is not None:
            out["max_score"] = self.max_score
        return out


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """``"site": {...}``: read each lead's website (``enabled``), and qualify leads by what it says."""

    enabled: bool = True
    require_email: bool = False
    status: tuple[str, ...] = ()
    built_with: tuple[str, ...] = ()
    older_than_year: int | None = None
    no_https: bool = False
    no_mobile_viewport: bool = False
    # Email verdicts (docs/email-verdicts.md): "any" or "deliverable"; free-mail addresses not counted.
    email: str | None = None
    exclude_free_mail: bool = False

    @property
    def filtering(self) -> bool:
        return bool(self.require_email or self.status or self.built_with or self.older_than_year is not None
                    or self.no_https or self.no_mobile_viewport or self.email or self.exclude_free_mail)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enabled": self.enabled}
        for name in ("require_email", "no_https", "no_mobile_viewport"):
            if getattr(self, name):
                out[name] = True
        if self.email is not None:
            out["email"] = self.email
        if self.exclude_free_mail:
            out["exclude_free_mail"] = True
        if self.status:
            out["status"] = list(self.status)
        if self.built_with:
            out["built_with"] = list(self.built_with)
        if self.older_than_year is not None:
            out["older_than_year"] = self.older_than_year
        return out


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A valid job: one of ``query`` / ``queries`` is set; a batch has ``queries`` or ``locations``."""

    id: str
    query: str | None = None
    location: str | None = None
    queries: tuple[str, ...] | None = None
    locations: tuple[str, ...] | None = None
    limit: int = DEFAULT_LIMIT
    min_rating: float | None = None
    min_reviews: int | None = None
    # A min_reviews that Google's limited view hides: reject or accept the lead (None: the
    # configuration's maps.min_reviews_when_hidden).
    min_reviews_when_hidden: WhenHidden | None = None
    website: Website = "any"
    pagespeed: PageSpeedSpec = field(default_factory=PageSpeedSpec)
    max_runtime_s: float = DEFAULT_MAX_RUNTIME_S
    # "area": every business inside ``area`` (None: the location's own extent), up to ``limit``.
    coverage: Coverage = "first"
    area: Area | None = None
    site: SiteSpec = field(default_factory=SiteSpec)
    priority: int = DEFAULT_PRIORITY
    # Destinations (by configured name) its digest goes to when it ends (docs/deliveries.md); a
    # batch's digest is its parent's, so its children carry none.
    notify: tuple[str, ...] = ()
    # Chains (docs/chains.md): only leads whose company has one branch, or at most this many.
    independent_only: bool = False
    max_branches: int | None = None
    # Results that are a street address or a locality (kind "address", docs/addresses.md) are
    # kept out of the leads unless this is set.
    include_addresses: bool = False
    # Set on the children of a batch; not part of the spec a client writes.
    parent_id: str | None = None

    @property
    def is_batch(self) -> bool:
        return self.queries is not None or self.locations is not None

    def children(self) -> tuple[JobSpec, ...]:
        """One spec per (query, location) pair of a batch, ids ``<id>.<i>``; empty for a single job."""
        if not self.is_batch:
            return ()
        queries = self.queries if self.queries is not None else (self.query,)
        locations: tuple[str | None, ...] = self.locations if self.locations is not None else (self.location,)
        pairs = [(q, loc) for q in queries for loc in locations]
        return tuple(
            replace(
                self,
                id=f"{self.id}.{i}",
                query=q,
                location=loc,
                queries=None,
                locations=None,
                parent_id=self.id,
                notify=(),
            )
            for i, (q, loc) in enumerate(pairs)
        )

    def to_dict(self) -> dict[str, Any]:
        """The canonical spec, defaults filled in: what is stored, and what parses back to this spec."""
        out: dict[str, Any] = {"id": self.id}
        if self.queries is not None:
            out["queries"] = list(self.queries)
        else:
            out["query"] = self.query
        if self.locations is not None:
            out["locations"] = list(self.locations)
        elif self.location is not None:
            out["location"] = self.location
        out["limit"] = self.limit
        if self.min_rating is not None:
            out["min_rating"] = self.min_rating
        if self.min_reviews is not None:
            out["min_reviews"] = self.min_reviews
        if self.min_reviews_when_hidden is not None:
            out["min_reviews_when_hidden"] = self.min_reviews_when_hidden
        out["website"] = self.website
        out["pagespeed"] = self.pagespeed.to_dict()
        out["max_runtime_s"] = self.max_runtime_s
        if self.coverage != "first":
            # Written only when not the default, so a "first" job's stored spec is as it always was.
            out["coverage"] = self.coverage
            if self.area is not None:
                out["area"] = area_to_dict(self.area)
        if self.site != SiteSpec():
            out["site"] = self.site.to_dict()  # only when set: other jobs' stored specs are as they were
        if self.priority != DEFAULT_PRIORITY:
            out["priority"] = self.priority  # likewise: a default job's stored spec is as it always was
        if self.notify:
            out["notify"] = list(self.notify)
        if self.independent_only:
            out["independent_only"] = True  # only when set, as above
        if self.max_branches is not None:
            out["max_branches"] = self.max_branches
        if self.include_addresses:
            out["include_addresses"] = True  # only when set, as above
        return out


def new_job_id() -> str:
    """A fresh id that sorts by creation time: 12 hex digits of milliseconds, then 10 random ones."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


def _flag(c: _Checker, obj: Mapping[str, Any], name: str) -> bool:
    """A true/false field, false when absent or null; anything else is a problem named by ``name``."""
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        return value is True
    c.fail(name, f"must be true or false, not {_json_type(value)}", value)
    return False


def parse_job_spec(
    raw: bytes | str | Mapping[str, Any],
    max_bytes: int,
    *,
    max_area_km2: float = DEFAULT_MAX_AREA_KM2,
    destinations: Collection[str] | None = None,
) -> JobSpec:
    """Validate a submitted job spec (JSON text, UTF-8 bytes, or already-decoded JSON object).
    ``max_area_km2`` bounds a ``coverage: "area"`` job's area (``maps.max_area_km2``);
    ``destinations`` (the configured names, where the settings are known) bounds ``notify``.

    Raises :class:`JobSpecError` naming every problem; never anything else, whatever ``raw`` is.
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
        _check_size(len(data), max_bytes)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JobSpecError([f"the job spec is not UTF-8 text (bad byte at offset {exc.start})"]) from None
        decoded = _loads(text)
    elif isinstance(raw, str):
        _check_size(len(raw.encode("utf-8", "surrogatepass")), max_bytes)
        decoded = _loads(raw)
    elif isinstance(raw, Mapping):
        try:
            size = len(orjson.dumps(raw))
        except (TypeError, orjson.JSONEncodeError):
            size = 0  # not JSON-shaped: the field checks below name what is wrong
        _check_size(size, max_bytes)
        decoded = raw
    else:
        raise JobSpecError([f"the job spec must be a JSON object (got {type(raw).__name__})"])
    if not isinstance(decoded, Mapping):
        raise JobSpecError([f"the job spec must be a JSON object (got {_json_type(decoded)})"])
    return _validate(decoded, max_area_km2, destinations)


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise JobSpecError([f"the job spec is {size} bytes; the limit is {max_bytes} bytes"], too_large=True)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise JobSpecError([f"the job spec is not valid JSON: {exc}"]) from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _shown(value: Any) -> str:
    """The offending value as the client wrote it, shortened and stripped of secrets."""
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 1] + "…"
    return redact(text)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _Checker:
    """Collects problems instead of stopping at the first, so a client fixes everything in one go."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str, value: Any = None, *, show: bool = True) -> None:
        self.problems.append(f"{path}: {message} (got {_shown(value)})" if show else f"{path}: {message}")

    def text(self, path: str, value: Any) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"must be a string, not {_json_type(value)}", value)
            return None
        if not value.strip():
            self.fail(path, "must not be empty", value)
            return None
        if len(value) > MAX_TEXT:
            self.fail(path, f"must be at most {MAX_TEXT} characters (got {len(value)})", show=False)
            return None
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            self.fail(path, "must be valid Unicode text (it holds a lone surrogate)", show=False)
            return None
        return value

    def text_list(self, path: str, value: Any) -> tuple[str, ...] | None:
        if not isinstance(value, list | tuple):
            self.fail(path, f"must be an array of strings, not {_json_type(value)}", value)
            return None
        if not 1 <= len(value) <= MAX_BATCH_LIST:
            self.fail(path, f"must hold between 1 and {MAX_BATCH_LIST} entries (got {len(value)})", show=False)
            return None
        items = [self.text(f"{path}[{i}]", item) for i, item in enumerate(value)]
        if any(item is None for item in items):
            return None
        seen: set[str] = set()
        for i, item in enumerate(items):
            assert item is not None
            if item in seen:
                self.fail(f"{path}[{i}]", "is a duplicate", item)
                return None
            seen.add(item)
        return tuple(item for item in items if item is not None)

    def integer(self, path: str, value: Any, low: int, high: int | None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, not {_json_type(value)}", value)
            return None
        return value if self._in_range(path, value, low, high) else None

    def number(self, path: str, value: Any, low: float, high: float, *, exclusive_low: bool = False) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"must be a number, not {_json_type(value)}", value)
            return None
        if not math.isfinite(value):
            self.fail(path, "must be a finite number", value)
            return None
        if exclusive_low and value <= low:
            self.fail(path, f"must be greater than {_num(low)} and at most {_num(high)}", value)
            return None
        return float(value) if self._in_range(path, value, low, high) else None

    def _in_range(self, path: str, value: float, low: float, high: float | None) -> bool:
        if high is None and value < low:
            self.fail(path, f"must be at least {_num(low)}", value)
            return False
        if high is not None and not low <= value <= high:
            self.fail(path, f"must be between {_num(low)} and {_num(high)}", value)
            return False
        return True

    def unknown(self, path: str, obj: Mapping[Any, Any], known: tuple[str, ...]) -> None:
        for key in obj:
            if key not in known:
                name = key if isinstance(key, str) else repr(key)
                if len(name) > _SHOWN or not name.isprintable():
                    name = _shown(name)
                self.problems.append(f"{path}.{name}: unknown field" if path else f"{name}: unknown field")


def _validate(obj: Mapping[Any, Any], max_area_km2: float, destinations: Collection[str] | None = None) -> JobSpec:
    c = _Checker()
    c.unknown("", obj, _TOP_FIELDS)

    job_id: str | None
    if "id" in obj and obj["id"] is not None:
        raw_id = obj["id"]
        if not isinstance(raw_id, str):
            c.fail("id", f"must be a string, not {_json_type(raw_id)}", raw_id)
            job_id = None
        elif not ID_PATTERN.match(raw_id):
            c.fail("id", "must be 1-64 characters of letters, digits, '_', '.' or '-'", raw_id)
            job_id = None
        else:
            job_id = raw_id
    else:
        job_id = new_job_id()

    query = queries = location = locations = None
    if "query" in obj and "queries" in obj:
        c.fail("query", "give either 'query' or 'queries', not both", show=False)
    elif "queries" in obj:
        queries = c.text_list("queries", obj["queries"])
    elif "query" in obj:
        query = c.text("query", obj["query"])
    else:
        c.fail("query", "is required (or 'queries' for a batch)", show=False)
    if "location" in obj and "locations" in obj:
        c.fail("location", "give either 'location' or 'locations', not both", show=False)
    elif "locations" in obj:
        locations = c.text_list("locations", obj["locations"])
    elif obj.get("location") is not None:
        location = c.text("location", obj["location"])

    n_children = (len(queries) if queries else 1) * (len(locations) if locations else 1)
    if (queries or locations) and n_children > MAX_BATCH_CHILDREN:
        c.fail("queries", f"a batch makes at most {MAX_BATCH_CHILDREN} jobs (got {n_children})", show=False)
    if (queries or locations) and job_id is not None:
        room = _ID_MAX - len(f".{n_children - 1}")
        if len(job_id) > room:
            c.fail("id", f"a batch's id must be at most {room} characters so its children's ids fit", job_id)

    coverage: Coverage = "first"
    area: Area | None = None
    if "coverage" in obj:
        if obj["coverage"] == "area":
            coverage = "area"
        elif obj["coverage"] != "first":
            c.fail("coverage", "must be 'first' or 'area'", obj["coverage"])
    if obj.get("area") is not None:
        if coverage != "area":
            c.fail("area", "is only for coverage 'area' (add \"coverage\": \"area\")", show=False)
        else:
            area, problems = area_problems(obj["area"], max_area_km2)
            c.problems.extend(problems)
    no_location = obj.get("location") is None and obj.get("locations") is None
    if coverage == "area" and obj.get("area") is None and no_location:
        c.fail("area", "is required for coverage 'area' without a location (whose own map is the area)", show=False)
    max_limit = AREA_LIMIT if coverage == "area" else MAX_LIMIT
    # An area job is asked for "every business there": without a limit, it gets the largest.
    default_limit = AREA_LIMIT if coverage == "area" else DEFAULT_LIMIT
    limit = c.integer("limit", obj["limit"], 1, max_limit) if "limit" in obj else default_limit
    min_rating = c.number("min_rating", obj["min_rating"], 0, 5) if obj.get("min_rating") is not None else None
    min_reviews = (
        c.integer("min_reviews", obj["min_reviews"], 0, MAX_REVIEWS) if obj.get("min_reviews") is not None else None
    )
    when_hidden: WhenHidden | None = None
    if obj.get("min_reviews_when_hidden") is not None:
        value = obj["min_reviews_when_hidden"]
        if value == "reject":
            when_hidden = "reject"
        elif value == "accept":
            when_hidden = "accept"
        else:
            c.fail("min_reviews_when_hidden", "must be 'reject' or 'accept'", value)
    website: Website = "any"
    if "website" in obj:
        value = obj["website"]
        if value == "required":
            website = "required"
        elif value == "none":
            website = "none"
        elif value != "any":
            c.fail("website", "must be one of 'any', 'required', 'none'", value)
    pagespeed = _pagespeed(c, obj["pagespeed"]) if "pagespeed" in obj else PageSpeedSpec()
    site = _site(c, obj["site"]) if "site" in obj else SiteSpec()
    max_runtime_s = (
        c.number("max_runtime_s", obj["max_runtime_s"], 0, MAX_RUNTIME_CAP_S, exclusive_low=True)
        if "max_runtime_s" in obj
        else DEFAULT_MAX_RUNTIME_S
    )
    priority = (
        c.integer("priority", obj["priority"], 0, MAX_PRIORITY)
        if obj.get("priority") is not None
        else DEFAULT_PRIORITY
    )
    notify = _notify(c, obj["notify"], destinations) if obj.get("notify") is not None else ()
    independent_only = _flag(c, obj, "independent_only")
    max_branches = (
        c.integer("max_branches", obj["max_branches"], 1, MAX_BRANCHES) if obj.get("max_branches") is not None else None
    )
    include_addresses = _flag(c, obj, "include_addresses")

    if c.problems:
        raise JobSpecError(c.problems)
    assert job_id is not None
    assert limit is not None
    assert max_runtime_s is not None
    assert pagespeed is not None
    assert site is not None
    assert priority is not None
    return JobSpec(
        id=job_id,
        query=query,
        location=location,
        queries=queries,
        locations=locations,
        limit=limit,
        min_rating=min_rating,
        min_reviews=min_reviews,
        min_reviews_when_hidden=when_hidden,
        website=website,
        pagespeed=pagespeed,
        max_runtime_s=max_runtime_s,
        coverage=coverage,
        area=area,
        site=site,
        priority=priority,
        notify=notify,
        independent_only=independent_only,
        include_addresses=include_addresses,
        max_branches=max_branches,
    )


def _notify(c: _Checker, value: Any, destinations: Collection[str] | None) -> tuple[str, ...]:
    """``notify``: destination names, each once; configured ones when the configuration is known."""
    if not isinstance(value, list | tuple) or len(value) > MAX_NOTIFY:
        c.fail("notify", f"must be an array of at most {MAX_NOTIFY} destination names", value)
        return ()
    names: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not DESTINATION_PATTERN.match(item):
            c.fail(f"notify[{i}]", "must be a destination name (1-64 letters, digits, '_', '.' or '-')", item)
        elif destinations is not None and item not in destinations:
            known = ", ".join(sorted(destinations)) or "none"
            c.fail(f"notify[{i}]", f"no destination of that name is configured (configured: {known})", item)
        elif item not in names:
            names.append(item)
    return tuple(names)


def _choices(c: _Checker, path: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        c.fail(path, f"must be a non-empty array of {', '.join(repr(a) for a in allowed)}", value)
        return ()
    picked: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or item not in allowed:
            c.fail(f"{path}[{i}]", f"must be one of {', '.join(repr(a) for a in allowed)}", item)
        elif item not in picked:
            picked.append(item)
    return tuple(picked)


def _built_with(c: _Checker, value: Any) -> tuple[str, ...]:
    """site.built_with: any technology the fingerprints know, by its slug (docs/site-enrichment.md)."""
    if not isinstance(value, list | tuple) or not value:
        c.fail("site.built_with", f"must be a non-empty array of technologies, such as {list(SITE_BUILDERS)}", value)
        return ()
    known = known_site_tech()
    picked: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or item not in known:
            c.fail(f"site.built_with[{i}]", "must be a technology the fingerprints know, by its slug "
                   "('wordpress', 'woocommerce', 'calendly', 'google-analytics'; docs/site-enrichment.md)", item)
        elif item not in picked:
            picked.append(item)
    return tuple(picked)


def _site(c: _Checker, value: Any) -> SiteSpec | None:
    if not isinstance(value, Mapping):
        c.fail("site", f"must be an object, not {_json_type(value)}", value)
        return None
    c.unknown("site", value, _SITE_FIELDS)
    before = len(c.problems)
    flags: dict[str, bool] = {}
    for name, default in (("enabled", True), ("require_email", False), ("no_https", False),
                          ("no_mobile_viewport", False), ("exclude_free_mail", False)):
        flag = value.get(name, default)
        if not isinstance(flag, bool):
            c.fail(f"site.{name}", f"must be true or false, not {_json_type(flag)}", flag)
        flags[name] = bool(flag)
    status = _choices(c, "site.status", value["status"], SITE_STATUSES) if "status" in value else ()
    built = _built_with(c, value["built_with"]) if "built_with" in value else ()
    year = (
        c.integer("site.older_than_year", value["older_than_year"], 1990, 2100)
        if value.get("older_than_year") is not None else None
    )
    email = value.get("email")
    if email is not None and email not in SITE_EMAIL_RULES:
        c.fail("site.email", f"must be one of {', '.join(repr(r) for r in SITE_EMAIL_RULES)}", email)
    if len(c.problems) > before:
        return None
    return SiteSpec(status=status, built_with=built, older_than_year=year, email=email, **flags)


def _pagespeed(c: _Checker, value: Any) -> PageSpeedSpec | None:
    if not isinstance(value, Mapping):
        c.fail("pagespeed", f"must be an object, not {_json_type(value)}", value)
        return None
    c.unknown("pagespeed", value, _PAGESPEED_FIELDS)
    before = len(c.problems)
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        c.fail("pagespeed.enabled", f"must be true or false, not {_json_type(enabled)}", enabled)
    strategies: tuple[Strategy, ...] = ("mobile",)
    if "strategies" in value:
        raw = value["strategies"]
        if not isinstance(raw, list | tuple) or not raw:
            c.fail("pagespeed.strategies", "must be a non-empty array of 'mobile' and/or 'desktop'", raw)
        else:
            picked: list[Strategy] = []
            for i, item in enumerate(raw):
                if not isinstance(item, str) or item not in _STRATEGIES:
                    c.fail(f"pagespeed.strategies[{i}]", "must be 'mobile' or 'desktop'", item)
                elif item in picked:
                    c.fail(f"pagespeed.strategies[{i}]", "is a duplicate", item)
                else:
                    picked.append("mobile" if item == "mobile" else "desktop")
            strategies = tuple(picked)
    max_score = (
        c.number("pagespeed.max_score", value["max_score"], 0, 100) if value.get("max_score") is not None else None
    )
    if len(c.problems) > before:
        return None
    return PageSpeedSpec(enabled=bool(enabled), strategies=strategies, max_score=max_score)
