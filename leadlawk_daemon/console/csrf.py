"""Cross-site request forgery: every console POST carries a token and comes from our own origin.

Two independent checks, both required:

* **A signed double-submit token.** The browser holds a random nonce in an HttpOnly,
  ``SameSite=Strict`` cookie; each form carries ``HMAC(secret, nonce)``. A page on another site
  can neither read the cookie nor compute the HMAC (the secret never leaves the process), and a
  cookie planted by a sibling subdomain does not match a token it cannot sign. The secret is
  random per process: a restart only means reloading the form.
* **The same origin.** ``Origin`` (or, without it, ``Referer``) must name this host, as the
  ``Host`` header does. Only the host and port are compared: a TLS-terminating proxy in front
  turns https into http, not the host. A POST with neither header is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "Csrf", "same_origin"]

CSRF_COOKIE = "leadlawk_csrf"
CSRF_FIELD = "csrf_token"


def same_origin(request: web.BaseRequest) -> bool:
    """``Origin`` (else ``Referer``) names the host this request was sent to."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    origin = urlsplit(source)
    if origin.scheme not in ("http", "https") or not origin.netloc:
        return False
    return hmac.compare_digest(origin.netloc.lower().encode(), request.host.lower().encode())


class Csrf:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, b"leadlawk-console-csrf:" + nonce.encode(), hashlib.sha256).hexdigest()

    def token(self, request: web.Request, response: web.StreamResponse) -> str:
        """The token for the forms of this page; sets the nonce cookie when the browser has none."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if len(nonce) != 43:  # secrets.token_urlsafe(32)
            nonce = secrets.token_urlsafe(32)
            response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="Strict", path="/")
        return self._sign(nonce)

    def problem(self, request: web.Request, supplied: str) -> str | None:
        """Why this POST is refused, or None when its token and origin are right."""
        if not same_origin(request):
            return "the request does not come from this console's own origin"
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not nonce or not supplied:
            return "the form's security token is missing; reload the page and try again"
        if not hmac.compare_digest(self._sign(nonce).encode(), supplied.encode()):
            return "the form's security token is wrong; reload the page and try again"
        return None
