"""The webhook signature: ``X-LeadLawk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

As Stripe and GitHub sign theirs: the MAC is over ``"<t>.<body>"`` with the destination's secret,
so a receiver checks the body is ours and unchanged, and refuses a replay outside its tolerance.
docs/deliveries.md shows a receiver's check; ``tests/test_deliveries_signing.py`` runs that snippet.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["DELIVERY_HEADER", "PAGE_HEADER", "SIGNATURE_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-LeadLawk-Signature"
DELIVERY_HEADER = "X-LeadLawk-Delivery"
PAGE_HEADER = "X-LeadLawk-Page"
_MAX_HEADER = 1024  # a signature header is about 80 characters; a longer one is not ours


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(header: str, body: bytes, secret: bytes, *, now: float, tolerance: float = 300.0) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of ``now``.
    Read in one pass over a bounded header; every ``v1`` is tried (a secret being rotated)."""
    if len(header) > _MAX_HEADER:
        return False
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs or abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, mac) for mac in macs)
