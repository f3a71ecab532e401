"""The PageSpeed Insights v5 stand-in: Google's response shape, deterministic scores per URL.

``GET /pagespeedonline/v5/runPagespeed`` answers like Google: ``lighthouseResult`` with the four
categories and the metric audits, ``loadingExperience`` field data for about two sites in three
(none for the rest, as for sites without Chrome UX Report data), and Google's error bodies:
429 ``RESOURCE_EXHAUSTED`` naming "Queries per 100 seconds" or "Queries per day", and 400/500
"Lighthouse returned error: FAILED_DOCUMENT_REQUEST..." for sites it cannot load.

Quotas are enforced as the real service does, on the stand-in's own clock: at most
``quota_per_window`` requests in any ``window_s`` seconds (sliding), at most ``quota_per_day``
per calendar day in ``day_tz``. ``GET /_stats`` counts what it saw (requests, 429s, the most
requests seen in any window); ``POST /_stats/reset`` zeroes it.

Faults (``POST /_faults``, ``GET /_faults``; ``{}`` clears), through the shared switchboard:
``latency_ms`` (``N`` or ``{"min": a, "max": b}``), ``quota_per_window``, ``window_s``,
``quota_per_day`` (override the constructor's), ``server_error`` (a fraction or a count of
requests answered 500/503), ``hang`` (fraction or count: never answer), ``malformed`` (fraction or
count: 200 with a broken body), ``lighthouse_errors`` (``{"url substring": "NO_FCP", ...}``),
``lighthouse_error_as`` (``"http"``: a 400/500 body, default; ``"runtime"``: a 200 with
``lighthouseResult.runtimeError``), ``require_key`` (a string: requests without that key get 400).
``latency_profile`` (instead of ``latency_ms``): ``{"uniform": {"min": a, "max": b}}``,
``{"lognormal": {"median": m, "p95": p}}`` (milliseconds: a heavy tail, 5 % of calls over ``p``) or
``{"steps": [{"at_s": 0, "latency_ms": ...}, {"at_s": 120, "latency_ms": ...}]}`` (latency that
changes ``at_s`` seconds after the first request under the profile; each step's ``latency_ms`` as
above). Latency and windows are multiplied by ``time_scale``, so tests and benchmarks run
Lighthouse-shaped timing fast; a profile's ``at_s`` too.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.replicas.faults import (
    Fault,
    FaultSwitchboard,
    add_fault_routes,
    counted,
    fraction_or_count,
    positive_int,
)
from leadlawk_daemon.replicas.foreground import serve_in_foreground

__all__ = [
    "REPLICA_KEY",
    "LatencyProfile",
    "PageSpeedReplica",
    "create_pagespeed_app",
    "parse_latency_profile",
    "run_pagespeed_replica",
    "serve_pagespeed_replica",
]

SERVICE = "pagespeedonline.googleapis.com"
_HTTP_400_CODES = {"ERRORED_DOCUMENT_REQUEST", "DNS_FAILURE", "INSECURE_DOCUMENT_REQUEST", "NOT_HTML"}
_UNABLE = (
    "Lighthouse was unable to reliably load the page you requested. Make sure you are testing the "
    "correct URL and that the server is properly responding to all requests."
)
_LH_MESSAGES = {
    "FAILED_DOCUMENT_REQUEST": f"{_UNABLE} (Details: net::ERR_CONNECTION_FAILED)",
    "ERRORED_DOCUMENT_REQUEST": f"{_UNABLE} (Status code: 404)",
    "NO_FCP": "The page did not paint any content. Please ensure you keep the browser window in the "
    "foreground during the load and try again. (NO_FCP)",
    "DNS_FAILURE": "DNS servers could not resolve the provided domain.",
}


def _latency(value: Any) -> tuple[float, float] | None:
    if isinstance(value, bool):
        raise ValueError(f"expected milliseconds or {{min, max}}, got {value!r}")
    if isinstance(value, int | float) and 0 <= value <= 600_000:
        return (float(value), float(value)) if value else None
    if isinstance(value, Mapping) and set(value) == {"min", "max"}:
        low, high = value["min"], value["max"]
        if (
            all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
            and 0 <= low <= high
        ):
            return float(low), float(high)
    raise ValueError(f'expected milliseconds or {{"min": a, "max": b}} with 0 <= a <= b, got {value!r}')


_Z95 = 1.6448536269514722  # the standard normal's 95th percentile


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """How long calls take, in unscaled seconds: uniform, lognormal, or steps over time."""

    shape: str
    low: float = 0.0
    high: float = 0.0
    median: float = 0.0
    sigma: float = 0.0
    steps: tuple[tuple[float, float, float], ...] = ()  # (from second, low, high)

    def draw(self, rng: random.Random, elapsed: float) -> float:
        """One call's latency; ``elapsed``: seconds since the profile's first request."""
        if self.shape == "lognormal":
            # Cut at ten minutes, the longest latency_ms takes: a tail that long only holds sockets.
            return min(600.0, self.median * math.exp(rng.gauss(0.0, self.sigma)))
        low, high = self.low, self.high
        if self.shape == "steps":
            _, low, high = next(step for step in reversed(self.steps) if step[0] <= elapsed)
        return rng.uniform(low, high)


def _steps(spec: Any) -> tuple[tuple[float, float, float], ...]:
    problem = ValueError(
        f'steps: expected [{{"at_s": 0, "latency_ms": ...}}, ...] from 0 s, in increasing order, got {spec!r}'
    )
    if not (isinstance(spec, list) and spec):
        raise problem
    steps: list[tuple[float, float, float]] = []
    for step in spec:
        if not (isinstance(step, Mapping) and set(step) == {"at_s", "latency_ms"}):
            raise problem
        at = step["at_s"]
        if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
            raise problem
        span = _latency(step["latency_ms"]) or (0.0, 0.0)
        steps.append((float(at), span[0] / 1000, span[1] / 1000))
    if steps[0][0] != 0 or any(a[0] >= b[0] for a, b in itertools.pairwise(steps)):
        raise problem
    return tuple(steps)


def parse_latency_profile(value: Any) -> LatencyProfile:
    """The ``latency_profile`` setting read, or ValueError naming what is wrong with it."""
    if not (isinstance(value, Mapping) and len(value) == 1):
        raise ValueError(f'expected {{"uniform": ...}}, {{"lognormal": ...}} or {{"steps": [...]}}, got {value!r}')
    shape, spec = next(iter(value.items()))
    if shape == "uniform":
        low, high = _latency(spec) or (0.0, 0.0)
        return LatencyProfile("uniform", low=low / 1000, high=high / 1000)
    if shape == "lognormal":
        if isinstance(spec, Mapping) and set(spec) == {"median", "p95"}:
            median, p95 = spec["median"], spec["p95"]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (median, p95)) and 0 < median <= p95:
                return LatencyProfile("lognormal", median=median / 1000, sigma=math.log(p95 / median) / _Z95)
        raise ValueError(f'lognormal: expected {{"median": ms, "p95": ms}} with 0 < median <= p95, got {spec!r}')
    if shape == "steps":
        return LatencyProfile("steps", steps=_steps(spec))
    raise ValueError(f"unknown latency profile {shape!r} (uniform, lognormal or steps)")


def _latency_profile(value: Any) -> dict[str, Any]:
    # The switchboard keeps the setting as given (GET /_faults shows it); the replica reads it.
    parse_latency_profile(value)
    return dict(value)


def _sometimes(value: Any) -> float | int | None:
    """``true``: every request; a count N: the next N; a fraction in (0, 1): that share at random."""
    if isinstance(value, bool):
        return counted(value)
    return fraction_or_count(value)


def _positive_number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError(f"expected a positive number, got {value!r}")


def _lighthouse_errors(value: Any) -> dict[str, str] | None:
    if (
        isinstance(value, Mapping)
        and all(isinstance(k, str) and k for k in value)
        and all(isinstance(v, str) and v.isupper() for v in value.values())
    ):
        return dict(value) or None
    raise ValueError(f'expected {{"url substring": "ERROR_CODE", ...}}, got {value!r}')


def _substrings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value) or None
    raise ValueError(f'expected ["url substring", ...], got {value!r}')


def _error_as(value: Any) -> str | None:
    if value in ("http", "runtime"):
        return str(value)
    raise ValueError(f"expected 'http' or 'runtime', got {value!r}")


def _key(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    raise ValueError("expected the API key the stand-in should accept, as a string")


FAULTS = (
    Fault("latency_ms", "N or {min, max}", "answer after this long (uniform in [min, max])", _latency),
    Fault(
        "latency_profile",
        "{uniform|lognormal|steps: ...}",
        "answer after a latency drawn from this profile (overrides latency_ms)",
        _latency_profile,
    ),
    Fault("quota_per_window", "N", "requests allowed in any window_s seconds", positive_int),
    Fault("window_s", "seconds", "length of the short quota window (Google: 100)", _positive_number),
    Fault("quota_per_day", "N", "requests allowed per calendar day in day_tz", positive_int),
    Fault("server_error", "true, count or fraction", "answer 500 or 503", _sometimes),
    Fault(
        "server_error_for",
        '["url substring", ...]',
        "always answer 500 for sites matching (a site Lighthouse's backend cannot run), others normally",
        _substrings,
    ),
    Fault("hang", "true, count or fraction", "never answer", _sometimes),
    Fault("malformed", "true, count or fraction", "answer 200 with a body that is not JSON", _sometimes),
    Fault(
        "lighthouse_errors", "{substring: CODE}", "Lighthouse cannot load sites matching", _lighthouse_errors
    ),
    Fault("lighthouse_error_as", "http | runtime", "how a Lighthouse error is reported", _error_as),
    Fault("require_key", "string", "answer 400 unless the request carries this key", _key),
)


def _quota_body(limit: str, value: int) -> dict[str, Any]:
    message = (
        f"Quota exceeded for quota metric 'Queries' and limit '{limit}' of service '{SERVICE}' "
        "for consumer 'project_number:583797351490'."
    )
    limit_id = "defaultPerDayPerProject" if "day" in limit else "defaultPer100SecondsPerProject"
    return {
        "error": {
            "code": 429,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "rateLimitExceeded"}],
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "quota_metric": f"{SERVICE}/default",
                        "quota_limit": limit_id,
                        "quota_limit_value": str(value),
                        "service": SERVICE,
                        "consumer": "projects/583797351490",
                    },
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Request a higher quota limit.",
                            "url": "https://cloud.google.com/docs/quotas/help/request_increase",
                        }
                    ],
                },
            ],
        }
    }


def _error_body(code: int, message: str, status: str, reason: str, domain: str = "global") -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": status,
        }
    }


def _digest(*parts: str) -> random.Random:
    seed = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def _category(value: float, good: float, poor: float) -> str:
    return "FAST" if value <= good else ("AVERAGE" if value <= poor else "SLOW")


def _audit(audit_id: str, title: str, value: float, unit: str, score: float) -> dict[str, Any]:
    shown = f"{value / 1000:.1f}\u00a0s" if unit == "millisecond" else f"{value:.3f}"
    return {
        "id": audit_id,
        "title": title,
        "description": f"{title}. [Learn more](https://developer.chrome.com/docs/lighthouse/performance/).",
        "score": round(score, 2),
        "scoreDisplayMode": "numeric",
        "displayValue": shown,
        "numericValue": value,
        "numericUnit": unit,
    }


def lighthouse_response(url: str, strategy: str, seed: int, fetched: datetime) -> dict[str, Any]:
    """A full ``runPagespeed`` answer for ``url``: the same on every run for the same seed."""
    rng = _digest(str(seed), url, strategy)
    site = _digest(str(seed), url)
    quality = site.random()  # how good the site is, shared by both strategies
    mobile = strategy == "mobile"
    slow = (1.0 - quality) * (2.2 if mobile else 1.0)
    fcp = 800 + slow * 3500 + rng.random() * 300
    lcp = fcp + 400 + slow * 5000 + rng.random() * 500
    tbt = slow * 1200 + rng.random() * 80
    si = fcp + slow * 3000 + rng.random() * 400
    tti = lcp + tbt + rng.random() * 600
    cls = round(max(0.0, (1 - quality) * 0.45 + rng.uniform(-0.03, 0.03)), 3)
    perf = max(0.01, min(1.0, 1.0 - slow * 0.62 + rng.uniform(-0.04, 0.04)))
    scores = {
        "performance": perf,
        "accessibility": min(1.0, 0.55 + quality * 0.45 + rng.uniform(0, 0.05)),
        "best-practices": min(1.0, 0.5 + quality * 0.5),
        "seo": min(1.0, 0.6 + quality * 0.4),
    }
    titles = {
        "performance": "Performance",
        "accessibility": "Accessibility",
        "best-practices": "Best Practices",
        "seo": "SEO",
    }
    final_url = url if url.endswith("/") or url.count("/") > 2 else url + "/"
    if site.random() < 0.2 and final_url.startswith("http://"):
        final_url = "https://" + final_url[len("http://") :]
    audits = {
        "first-contentful-paint": _audit(
            "first-contentful-paint", "First Contentful Paint", fcp, "millisecond", 1 - slow / 2.2
        ),
        "largest-contentful-paint": _audit(
            "largest-contentful-paint", "Largest Contentful Paint", lcp, "millisecond", 1 - slow / 2.2
        ),
        "total-blocking-time": _audit(
            "total-blocking-time", "Total Blocking Time", tbt, "millisecond", 1 - slow / 2.2
        ),
        "cumulative-layout-shift": _audit(
            "cumulative-layout-shift", "Cumulative Layout Shift", cls, "unitless", 1 - min(1.0, cls * 2)
        ),
        "speed-index": _audit("speed-index", "Speed Index", si, "millisecond", 1 - slow / 2.2),
        "interactive": _audit("interactive", "Time to Interactive", tti, "millisecond", 1 - slow / 2.2),
        "server-response-time": {
            "id": "server-response-time",
            "title": "Initial server response time was short",
            "score": 1,
            "scoreDisplayMode": "binary",
            "numericValue": 40 + slow * 400,
            "numericUnit": "millisecond",
        },
    }
    body: dict[str, Any] = {
        "captchaResult": "CAPTCHA_NOT_NEEDED",
        "kind": "pagespeedonline#result",
        "id": final_url,
        "lighthouseResult": {
            "requestedUrl": url,
            "finalUrl": final_url,
            "mainDocumentUrl": final_url,
            "finalDisplayedUrl": final_url,
            "lighthouseVersion": "12.2.1",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/131.0.0.0 Safari/537.36",
            "fetchTime": fetched.strftime("%Y-%m-%dT%H:%M:%S.") + f"{fetched.microsecond // 1000:03d}Z",
            "environment": {"networkUserAgent": "Mozilla/5.0 Chrome-Lighthouse", "benchmarkIndex": 2480},
            "runWarnings": (
                [
                    f"The page may not be loading as expected because your test URL ({url}) was "
                    f"redirected to {final_url}. Try testing the second URL directly."
                ]
                if final_url.rstrip("/") != url.rstrip("/")
                else []
            ),
            "configSettings": {
                "emulatedFormFactor": strategy,
                "formFactor": strategy,
                "locale": "en-US",
                "onlyCategories": list(scores),
                "channel": "lr",
            },
            "audits": audits,
            "categories": {
                cid: {"id": cid, "title": titles[cid], "score": round(score, 2), "auditRefs": []}
                for cid, score in scores.items()
            },
            "timing": {"total": 8000 + slow * 9000},
        },
        "analysisUTCTimestamp": fetched.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{fetched.microsecond // 1000:03d}Z",
    }
    if site.random() < 0.65:
        field_lcp = int(lcp * 0.8)
        field_inp = int(80 + slow * 300)
        field_cls = int(cls * 100)
        metrics = {
            "LARGEST_CONTENTFUL_PAINT_MS": (field_lcp, _category(field_lcp, 2500, 4000)),
            "INTERACTION_TO_NEXT_PAINT": (field_inp, _category(field_inp, 200, 500)),
            "CUMULATIVE_LAYOUT_SHIFT_SCORE": (field_cls, _category(field_cls, 10, 25)),
            "FIRST_CONTENTFUL_PAINT_MS": (int(fcp * 0.8), _category(fcp * 0.8, 1800, 3000)),
        }
        worst = max((cat for _, cat in metrics.values()), key=["FAST", "AVERAGE", "SLOW"].index)
        experience = {
            "id": url,
            "metrics": {
                name: {
                    "percentile": value,
                    "distributions": [
                        {"min": 0, "max": 1, "proportion": 0.7},
                        {"min": 1, "max": 2, "proportion": 0.2},
                        {"min": 2, "proportion": 0.1},
                    ],
                    "category": cat,
                }
                for name, (value, cat) in metrics.items()
            },
            "overall_category": worst,
            "initial_url": url,
        }
        body["loadingExperience"] = experience
        body["originLoadingExperience"] = {**experience, "id": url.split("/")[0] + "//" + url.split("/")[2]}
    else:
        body["loadingExperience"] = {"initial_url": url}
    return body


def runtime_error_response(url: str, strategy: str, code: str, fetched: datetime) -> dict[str, Any]:
    message = _LH_MESSAGES.get(code, f"Lighthouse returned error: {code}.")
    stamp = fetched.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "kind": "pagespeedonline#result",
        "id": url,
        "loadingExperience": {"initial_url": url},
        "lighthouseResult": {
            "requestedUrl": url,
            "finalUrl": url,
            "lighthouseVersion": "12.2.1",
            "fetchTime": stamp,
            "runtimeError": {"code": code, "message": message},
            "runWarnings": [],
            "configSettings": {"formFactor": strategy, "locale": "en-US"},
            "audits": {},
            "categories": {
                "performance": {"id": "performance", "title": "Performance", "score": None, "auditRefs": []}
            },
        },
        "analysisUTCTimestamp": stamp,
    }


class PageSpeedReplica:
    """The stand-in's state: its faults, quota counters and statistics."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        time_scale: float = 1.0,
        quota_per_window: int | None = None,
        window_s: float = 100.0,
        quota_per_day: int | None = None,
        day_tz: str = "America/Los_Angeles",
    ) -> None:
        self.seed = seed
        self.clock: Clock = clock or MonotonicClock()
        self.time_scale = time_scale
        self._defaults = {
            "quota_per_window": quota_per_window,
            "window_s": window_s,
            "quota_per_day": quota_per_day,
        }
        self._tz = ZoneInfo(day_tz)
        self.faults = FaultSwitchboard(FAULTS)
        self._rng = random.Random(seed)
        self._admitted: deque[float] = deque()
        self._seen: deque[float] = deque()
        self._day: str | None = None
        self._day_count = 0
        self._profile: tuple[dict[str, Any], LatencyProfile, float] | None = None
        self.closing = asyncio.Event()
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stats: dict[str, float] = {
            "requests": 0,
            "ok": 0,
            "status_429": 0,
            "status_429_window": 0,
            "status_429_day": 0,
            "status_5xx": 0,
            "hangs": 0,
            "malformed": 0,
            "lighthouse_errors": 0,
            "rejected_key": 0,
            "max_in_window": 0,
            "in_flight": 0,
            "max_in_flight": 0,
            "first_request_at": 0.0,
            "last_request_at": 0.0,
        }
        self._seen.clear()

    def setting(self, name: str) -> Any:
        value = self.faults.get(name)
        return value if value is not None else self._defaults.get(name)

    def _hit(self, name: str) -> bool:
        value = self.faults.get(name)
        if value is None:
            return False
        if isinstance(value, float):
            return self._rng.random() < value
        return self.faults.take(name)

    def _window(self) -> float:
        return float(self.setting("window_s")) * self.time_scale

    def _count(self, now: float) -> None:
        window = self._window()
        self._seen.append(now)
        while self._seen and self._seen[0] <= now - window:
            self._seen.popleft()
        self.stats["max_in_window"] = max(self.stats["max_in_window"], len(self._seen))

    def _quota_answer(self, now: float) -> dict[str, Any] | None:
        day = datetime.fromtimestamp(self.clock.wall(), self._tz).date().isoformat()
        if day != self._day:
            self._day, self._day_count = day, 0
        per_day = self.setting("quota_per_day")
        if per_day is not None and self._day_count >= per_day:
            self.stats["status_429_day"] += 1
            return _quota_body("Queries per day", per_day)
        per_window = self.setting("quota_per_window")
        if per_window is not None:
            window = self._window()
            while self._admitted and self._admitted[0] <= now - window:
                self._admitted.popleft()
            if len(self._admitted) >= per_window:
                self.stats["status_429_window"] += 1
                seconds = self.setting("window_s")
                return _quota_body(f"Queries per {seconds:g} seconds", per_window)
            self._admitted.append(now)
        self._day_count += 1
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        now = self.clock.monotonic()
        self.stats["requests"] += 1
        if self.stats["requests"] == 1:
            self.stats["first_request_at"] = now
        self.stats["last_request_at"] = now
        self._count(now)
        query = request.query
        url = query.get("url", "")
        strategy = query.get("strategy", "desktop").lower()
        required_key = self.faults.get("require_key")
        if required_key is not None and query.get("key") != required_key:
            self.stats["rejected_key"] += 1
            message = "API key not valid. Please pass a valid API key."
            return web.json_response(_error_body(400, message, "INVALID_ARGUMENT", "badRequest"), status=400)
        if not url.startswith(("http://", "https://")) or strategy not in ("mobile", "desktop"):
            message = (
                f"Invalid value at 'url' ({url!r})"
                if strategy in ("mobile", "desktop")
                else (f"Invalid value at 'strategy' ({strategy!r})")
            )
            return web.json_response(_error_body(400, message, "INVALID_ARGUMENT", "invalid"), status=400)
        quota = self._quota_answer(now)
        if quota is not None:
            self.stats["status_429"] += 1
            return web.json_response(quota, status=429)
        self.stats["in_flight"] += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        try:
            return await self._answer(url, strategy)
        finally:
            self.stats["in_flight"] -= 1

    async def _answer(self, url: str, strategy: str) -> web.StreamResponse:
        if self._hit("hang"):
            self.stats["hangs"] += 1
            await self.closing.wait()
            raise web.HTTPServiceUnavailable()
        delay = self._delay()
        if delay > 0:
            await self.clock.sleep(delay)
        always_failing = self.faults.get("server_error_for") or ()
        if self._hit("server_error") or any(part in url for part in always_failing):
            self.stats["status_5xx"] += 1
            status = self._rng.choice((500, 503))
            word = "INTERNAL" if status == 500 else "UNAVAILABLE"
            body = _error_body(
                status,
                "Internal error encountered." if status == 500 else "The service is currently unavailable.",
                word,
                "backendError",
            )
            return web.json_response(body, status=status)
        if self._hit("malformed"):
            self.stats["malformed"] += 1
            return web.Response(
                text='{"lighthouseResult": {"categories": {"performance": ',
                status=200,
                content_type="application/json",
            )
        fetched = datetime.fromtimestamp(self.clock.wall(), UTC)
        code = self._lighthouse_error(url)
        if code is not None:
            self.stats["lighthouse_errors"] += 1
            if self.setting("lighthouse_error_as") == "runtime":
                return web.json_response(runtime_error_response(url, strategy, code, fetched))
            status = 400 if code in _HTTP_400_CODES else 500
            message = f"Lighthouse returned error: {code}. {_LH_MESSAGES.get(code, '')}".strip()
            word = "INVALID_ARGUMENT" if status == 400 else "INTERNAL"
            body = _error_body(status, message, word, "lighthouseUserFacingError", domain="lighthouse")
            return web.json_response(body, status=status)
        self.stats["ok"] += 1
        return web.json_response(lighthouse_response(url, strategy, self.seed, fetched))

    def _delay(self) -> float:
        """Seconds (scaled) this answer waits: the latency profile's draw, else ``latency_ms``."""
        setting: dict[str, Any] | None = self.faults.get("latency_profile")
        if setting is not None:
            now = self.clock.monotonic()
            if self._profile is None or self._profile[0] is not setting:
                # A profile set anew starts its steps now.
                self._profile = (setting, parse_latency_profile(setting), now)
            _, profile, since = self._profile
            return profile.draw(self._rng, (now - since) / self.time_scale) * self.time_scale
        latency = self.setting("latency_ms")
        return self._rng.uniform(*latency) / 1000.0 * self.time_scale if latency is not None else 0.0

    def _lighthouse_error(self, url: str) -> str | None:
        table = self.faults.get("lighthouse_errors") or {}
        for fragment, code in table.items():
            if fragment in url:
                return str(code)
        return None


REPLICA_KEY = web.AppKey("pagespeed_replica", PageSpeedReplica)


def create_pagespeed_app(replica: PageSpeedReplica | None = None, **kwargs: Any) -> web.Application:
    """The stand-in as an aiohttp app; ``kwargs`` build a :class:`PageSpeedReplica` when none is given."""
    state = replica or PageSpeedReplica(**kwargs)
    app = web.Application()
    app[REPLICA_KEY] = state

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**state.stats, "window_s": state.setting("window_s")})

    async def reset(request: web.Request) -> web.Response:
        state.reset_stats()
        return web.json_response(state.stats)

    async def on_shutdown(app: web.Application) -> None:
        state.closing.set()

    app.router.add_get("/pagespeedonline/v5/runPagespeed", state.handle)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_stats/reset", reset)
    add_fault_routes(app, state.faults)
    app.on_shutdown.append(on_shutdown)
    return app


@asynccontextmanager
async def serve_pagespeed_replica(
    host: str = "127.0.0.1", port: int = 0, **kwargs: Any
) -> AsyncIterator[str]:
    """Run the stand-in on ``host:port`` (0: any free port) and yield its base URL."""
    app = create_pagespeed_app(**kwargs)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


async def run_pagespeed_replica(host: str = "127.0.0.1", port: int = 8092, seed: int = 0) -> None:
    """``leadlawk replica pagespeed``: serve until cancelled, printing the base URL."""
    await serve_in_foreground(serve_pagespeed_replica(host, port, seed=seed), lambda base_url: (base_url,))
