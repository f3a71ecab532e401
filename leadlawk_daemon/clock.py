"""Injected time, as the product imports it: the clock is the runtime's (``actors/clock.py``).

Every timer in the daemon (backoff, breakers, limiters, supervisors) reads a :class:`Clock`;
the generic runtime owns the type so that it imports nothing of the product.
"""

from __future__ import annotations

from actors.clock import Clock, FakeClock, MonotonicClock

__all__ = ["Clock", "FakeClock", "MonotonicClock"]
