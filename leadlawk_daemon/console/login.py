"""Signing in to the console when ``LEADLAWK_ADMIN_TOKEN`` is set.

A browser cannot easily send ``Authorization: Bearer``; instead the operator types the token once
into the login form, and the console sets an HttpOnly, ``SameSite=Strict`` cookie carrying a proof
of it: ``EXPIRY.HMAC(token, "leadlawk-console-session:" + EXPIRY)``. The token itself is never
stored in the browser; the proof expires (``SESSION_S``) and stops working when the token changes.
Token and proof are compared in constant time. The cookie proves the token for the console's
pages only (``/`` and ``/console/…``), never for the JSON API, which keeps its bearer header.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

__all__ = ["SESSION_COOKIE", "SESSION_S", "ConsoleLogin", "is_console_path"]

SESSION_COOKIE = "leadlawk_session"
SESSION_S = 12 * 3600


def is_console_path(path: str) -> bool:
    return path == "/" or path.startswith("/console/")


class ConsoleLogin:
    """A :class:`leadlawk_daemon.http_api.TokenProof`: the session cookie, and the login redirect."""

    def __init__(self, token: str, wall: Callable[[], float] = time.time) -> None:
        self._token = token.encode()
        self._wall = wall

    def _sign(self, expires: int) -> str:
        return hmac.new(self._token, f"leadlawk-console-session:{expires}".encode(), hashlib.sha256).hexdigest()

    def token_matches(self, supplied: str) -> bool:
        return hmac.compare_digest(supplied.encode(), self._token)

    def session_cookie(self, response: web.StreamResponse, secure: bool) -> None:
        expires = int(self._wall()) + SESSION_S
        response.set_cookie(
            SESSION_COOKIE, f"{expires}.{self._sign(expires)}",
            max_age=SESSION_S, httponly=True, samesite="Strict", path="/", secure=secure,
        )

    def proves(self, request: web.Request) -> bool:
        if not is_console_path(request.path):
            return False
        expires_text, _, proof = request.cookies.get(SESSION_COOKIE, "").partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12:
            return False
        expires = int(expires_text)
        valid = hmac.compare_digest(proof.encode(), self._sign(expires).encode())
        return valid and expires > self._wall()

    def refuse(self, request: web.Request, status: int) -> web.StreamResponse | None:
        """A browser asking for a console page without a session goes to the login form."""
        if status != 401 or request.method != "GET" or not is_console_path(request.path):
            return None
        if "text/html" not in request.headers.get("Accept", ""):
            return None
        raise web.HTTPSeeOther(f"/console/login?next={quote(request.path_qs, safe='')}")
