"""How a send ends when it does not deliver: the two kinds the failure model tells apart."""

from __future__ import annotations

__all__ = ["DeliveryRejected", "DestinationDown"]


class DestinationDown(Exception):
    """An outage (refused, reset, timed out, 5xx, 429): the delivery waits and is tried again, with
    backoff, however long; the destination's breaker counts it. Nobody's failure."""


class DeliveryRejected(Exception):
    """The destination refused this delivery (a 4xx other than 429, a redirect, an address the
    egress policy refuses, a missing secret): retrying cannot fix it, so it is dead-lettered
    (kind ``delivery``) and replayed by hand once the cause is fixed."""
