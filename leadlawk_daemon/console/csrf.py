"""Cross-site request forgery: every console POST carries a token and comes from our own origin.

Two independent checks, both required (on top of the HTTP boundary's cross-site rule, which every
state-changing request meets first: :mod:`leadlawk_daemon.http_boundary`):

* **A signed, dated double-submit token.** The browser holds a random nonce in an HttpOnly,
  ``SameSite=Strict`` cookie (``Secure`` when the console is reached over HTTPS); each form carries
  ``ISSUED.HMAC(secret, nonce, ISSUED)``. A page on another site can neither read the cookie nor
  compute the HMAC (the secret never leaves the process), and a cookie planted by a sibling
  subdomain does not match a token it cannot sign. A token is good for ``TOKEN_S`` after the page
  was rendered: a form copied out of a page (a log, a screenshot, a shared machine) stops working.
  The secret is random per process: a restart only means reloading the form.
* **The same origin.** ``Origin`` (or, without it, ``Referer``) must name this host, as the
  ``Host`` header does. Only the host and port are compared: a TLS-terminating proxy in front
  turns https into http, not the host. A POST with neither header is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from aiohttp import web

from leadlawk_daemon.http_boundary import origin_is_host

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "TOKEN_S", "Csrf", "same_origin"]

CSRF_COOKIE = "leadlawk_csrf"
CSRF_FIELD = "csrf_token"
# How long a page's forms can be sent: a working day's open tab would be longer, but reloading
# costs nothing and the form says so.
TOKEN_S = 2 * 3600
_NONCE_CHARS = 43  # secrets.token_urlsafe(32)


def same_origin(request: web.BaseRequest) -> bool:
    """``Origin`` (else ``Referer``) names the host this request was sent to."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    return origin_is_host(source, request.host)


class Csrf:
    def __init__(self, secret: bytes | None = None, wall: Callable[[], float] = time.time) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._wall = wall

    def _sign(self, nonce: str, issued: int) -> str:
        message = f"leadlawk-console-csrf:{nonce}:{issued}".encode()
        return f"{issued}.{hmac.new(self._secret, message, hashlib.sha256).hexdigest()}"

    def token(self, request: web.Request, response: web.StreamResponse, *, secure: bool = False) -> str:
        """The token for the forms of this page; sets the nonce cookie when the browser has none."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if len(nonce) != _NONCE_CHARS:
            nonce = secrets.token_urlsafe(32)
            response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="Strict", path="/", secure=secure)
        return self._sign(nonce, int(self._wall()))

    def problem(self, request: web.Request, supplied: str) -> str | None:
        """Why this POST is refused, or None when its token and origin are right."""
        if not same_origin(request):
            return "the request does not come from this console's own origin"
        nonce = request.cookies.get(CSRF_COOKIE, "")
        issued_text = supplied.partition(".")[0]
        if not nonce or not supplied or not issued_text.isdigit() or len(issued_text) > 12:
            return "the form's security token is missing; reload the page and try again"
        if not hmac.compare_digest(self._sign(nonce, int(issued_text)).encode(), supplied.encode()):
            return "the form's security token is wrong; reload the page and try again"
        if not 0 <= self._wall() - int(issued_text) <= TOKEN_S:
            return "the form has expired; reload the page and try again"
        return None
