"""One HTTP call to PageSpeed Insights v5, classified.

A call ends in exactly one of: a :class:`PageSpeedResult` (scores, or a site Lighthouse could not
load: a fact about the lead), :class:`TransientError` (429 per-100-s, 5xx, timeout, connection
error, garbled body: worth retrying), :class:`DailyQuotaExhaustedError` (429 naming a per-day
limit: wait for the reset, do not retry) or :class:`RequestRejectedError` (any other 4xx: retrying
cannot help).

The API key travels in the query string. No message made here contains a URL or a library
exception's text: every message is ours, built from the status, the error code and the site.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from leadlawk_daemon.logs import redact, register_secret
from leadlawk_daemon.pagespeed.result import (
    CATEGORIES,
    MalformedResponseError,
    PageSpeedResult,
    lighthouse_error_in,
    parse_response,
)

__all__ = [
    "API_PATH",
    "DailyQuotaExhaustedError",
    "PageSpeedClient",
    "PageSpeedError",
    "RequestRejectedError",
    "TransientError",
]

API_PATH = "/pagespeedonline/v5/runPagespeed"
STRATEGIES = ("mobile", "desktop")


class PageSpeedError(Exception):
    """A PageSpeed call that produced no result. ``status`` is the HTTP status, 0 if none."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(redact(message))
        self.status = status


class TransientError(PageSpeedError):
    """Worth retrying: the service is busy, slow or briefly broken."""

    def __init__(self, message: str, status: int = 0, *, counts_against_breaker: bool = True) -> None:
        super().__init__(message, status)
        # A per-100-s 429 says the service is alive and we were early: not the breaker's business.
        self.counts_against_breaker = counts_against_breaker


class DailyQuotaExhaustedError(PageSpeedError):
    """The per-day quota is spent; calls resume when it resets."""


class RequestRejectedError(PageSpeedError):
    """The service refused the request itself (bad URL, bad key...): retrying cannot help."""


def _error_message(body: Any) -> tuple[str, str, str]:
    """(message, status word, text to search for quota names) from a Google API error body."""
    if not isinstance(body, Mapping) or not isinstance(body.get("error"), Mapping):
        return "", "", ""
    error = body["error"]
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    status = error.get("status") if isinstance(error.get("status"), str) else ""
    try:
        details = orjson.dumps(error.get("details", [])).decode()
    except TypeError:
        details = ""
    return message, status, f"{message} {details}"


def _is_per_day(text: str) -> bool:
    lowered = text.lower()
    return "per day" in lowered or "perday" in lowered


class PageSpeedClient:
    """``GET {base_url}/pagespeedonline/v5/runPagespeed``; an async context manager owning its session."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connections: int = 0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        # connections 0: no pool cap of its own. The Enricher's in-flight limit bounds the calls; a
        # smaller pool would hold calls the pacer has already let go, and they would reach the
        # service in a bunch when connections free up (100 was below what 40 s calls need).
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"pagespeed.base_url must start with http:// or https:// (got {base_url!r})")
        self._endpoint = base_url.rstrip("/") + API_PATH
        self._api_key = api_key
        register_secret(api_key)
        self._connections = connections
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> PageSpeedClient:
        if self._session is None:
            # Timeouts are the caller's (on the injected clock); only connecting is bounded here.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
                connector=aiohttp.TCPConnector(limit=self._connections),
            )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def params(self, url: str, strategy: str) -> list[tuple[str, str]]:
        params = [("url", url), ("strategy", strategy)]
        params += [("category", lh_id.upper().replace("-", "_")) for lh_id in CATEGORIES]
        if self._api_key:
            params.append(("key", self._api_key))
        return params

    async def run(
        self, url: str, strategy: str, *, place_id: str | None, tested_at: datetime
    ) -> PageSpeedResult:
        if strategy not in STRATEGIES:
            raise RequestRejectedError(f"pagespeed: unknown strategy {strategy!r} (use mobile or desktop)")
        if self._session is None:
            raise RuntimeError("PageSpeedClient used outside 'async with'")
        site = redact(url)
        try:
            async with self._session.get(self._endpoint, params=self.params(url, strategy)) as response:
                status = response.status
                raw = await response.read()
        except aiohttp.ClientError as exc:
            raise TransientError(
                f"pagespeed {strategy} {site}: connection failed ({type(exc).__name__})"
            ) from None
        except OSError as exc:
            raise TransientError(
                f"pagespeed {strategy} {site}: network error ({type(exc).__name__})"
            ) from None
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if status == 200:
            if body is None:
                raise TransientError(f"pagespeed {strategy} {site}: the answer is not JSON", status)
            try:
                return parse_response(
                    body, place_id=place_id, strategy=strategy, url=url, tested_at=tested_at
                )
            except MalformedResponseError as exc:
                raise TransientError(f"pagespeed {strategy} {site}: {exc}", status) from None
        message, status_word, searchable = _error_message(body)
        code = lighthouse_error_in(message)
        if code is not None and status in (400, 500):
            return PageSpeedResult(
                place_id=place_id,
                strategy=strategy,
                url=url,
                tested_at=tested_at,
                error=code,
                error_message=redact(message)[:500],
            )
        if status == 429:
            if _is_per_day(searchable):
                raise DailyQuotaExhaustedError(
                    f"pagespeed: daily quota exhausted ({status_word or '429'})", 429
                )
            raise TransientError(
                f"pagespeed {strategy} {site}: rate limited (429 {status_word})".rstrip(),
                429,
                counts_against_breaker=False,
            )
        if status >= 500 or status == 408:
            raise TransientError(f"pagespeed {strategy} {site}: server error {status}", status)
        # Google's own message for a refused request is safe to show once redacted (no URL in it).
        reason = redact(message)[:200] or f"HTTP {status}"
        raise RequestRejectedError(f"pagespeed {strategy} {site}: rejected {status}: {reason}", status)
