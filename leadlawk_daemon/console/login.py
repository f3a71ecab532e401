"""Signing in to the console when ``LEADLAWK_ADMIN_TOKEN`` is set.

A browser cannot easily send ``Authorization: Bearer``; instead the operator types the token once
into the login form, and the console sets an HttpOnly, ``SameSite=Strict`` cookie (``Secure`` when
reached over HTTPS) carrying a proof of it:
``EXPIRY.SESSION.HMAC(token, "leadlawk-console-session:" + EXPIRY + ":" + SESSION)``, SESSION a
random id. The token itself is never stored in the browser; the proof expires (``SESSION_S``),
stops working when the token changes, and stops working when its session signs out (the session id
is revoked in this process until the cookie would have expired). Token and proof are compared in
constant time. The cookie proves the token for the console's pages only (``/`` and
``/console/…``), never for the JSON API, which keeps its bearer header.

Sign-in attempts are limited per client (:class:`LoginAttempts`): guessing is slow even before the
token's length (24 characters at least, checked by the settings) makes it hopeless.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

__all__ = ["SESSION_COOKIE", "SESSION_S", "ConsoleLogin", "LoginAttempts", "is_console_path"]

SESSION_COOKIE = "leadlawk_session"
SESSION_S = 12 * 3600
# Revoked sessions remembered at once; a sign-out beyond it forgets the one closest to expiring.
# Only a holder of the token can sign out, so this bounds a mistake, not an attack.
_MAX_REVOKED = 10_000


def is_console_path(path: str) -> bool:
    return path == "/" or path.startswith("/console/")


class ConsoleLogin:
    """A :class:`leadlawk_daemon.http_api.TokenProof`: the session cookie, and the login redirect."""

    def __init__(self, token: str, wall: Callable[[], float] = time.time) -> None:
        self._token = token.encode()
        self._wall = wall
        self._revoked: dict[str, int] = {}  # session id -> when its cookie expires

    def _sign(self, expires: int, session: str) -> str:
        message = f"leadlawk-console-session:{expires}:{session}".encode()
        return hmac.new(self._token, message, hashlib.sha256).hexdigest()

    def token_matches(self, supplied: str) -> bool:
        return hmac.compare_digest(supplied.encode(), self._token)

    def session_cookie(self, response: web.StreamResponse, secure: bool) -> None:
        expires = int(self._wall()) + SESSION_S
        session = secrets.token_urlsafe(16)
        response.set_cookie(
            SESSION_COOKIE, f"{expires}.{session}.{self._sign(expires, session)}",
            max_age=SESSION_S, httponly=True, samesite="Strict", path="/", secure=secure,
        )

    def _session(self, request: web.BaseRequest) -> tuple[str, int] | None:
        """The session id and expiry of a valid, unexpired, unrevoked cookie; None otherwise."""
        expires_text, _, rest = request.cookies.get(SESSION_COOKIE, "").partition(".")
        session, _, proof = rest.partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12 or not session:
            return None
        expires = int(expires_text)
        if not hmac.compare_digest(proof.encode(), self._sign(expires, session).encode()):
            return None
        if expires <= self._wall() or session in self._revoked:
            return None
        return session, expires

    def proves(self, request: web.Request) -> bool:
        return is_console_path(request.path) and self._session(request) is not None

    def revoke(self, request: web.BaseRequest) -> None:
        """Sign out the session this request's cookie belongs to, here and now."""
        found = self._session(request)
        if found is None:
            return
        now = self._wall()
        self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
        if len(self._revoked) >= _MAX_REVOKED:
            del self._revoked[min(self._revoked, key=self._revoked.__getitem__)]
        session, expires = found
        self._revoked[session] = expires

    def refuse(self, request: web.Request, status: int) -> web.StreamResponse | None:
        """A browser asking for a console page without a session goes to the login form."""
        if status != 401 or request.method != "GET" or not is_console_path(request.path):
            return None
        if "text/html" not in request.headers.get("Accept", ""):
            return None
        raise web.HTTPSeeOther(f"/console/login?next={quote(request.path_qs, safe='')}")


class LoginAttempts:
    """Sign-in attempts per client: ``per_minute`` of them, a bucket refilled evenly over a minute.

    A client is an address (an IPv6 one by its /64: one host holds a whole /64). The table holds
    ``max_clients`` buckets, the least recently used forgotten first: a forgotten client only starts
    again with a full bucket."""

    def __init__(
        self, per_minute: int = 5, *, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    @staticmethod
    def _key(client: str) -> str:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return client
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return str(address)

    def attempt(self, client: str) -> float | None:
        """Count one attempt; None when allowed, else the seconds until the next one is."""
        key = self._key(client)
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self._rate

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))
