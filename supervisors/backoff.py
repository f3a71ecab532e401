"""Restart backoff between attempts, as Akka's BackoffSupervisor does it.

The delay doubles from ``minimum`` up to ``maximum`` with every restart of the same child,
stretched by a random factor in ``[0, jitter]`` so that siblings do not restart in lockstep,
and falls back to ``minimum`` once the child has run for ``reset_after`` without crashing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    minimum: float = 0.0
    maximum: float = 0.0
    jitter: float = 0.0
    reset_after: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before restart number ``attempt`` (0 for the first restart after a stable run)."""
        if self.minimum <= 0 and self.maximum <= 0:
            return 0.0
        base = min(self.maximum, self.minimum * (2.0 ** min(attempt, 62)))
        return base * (1.0 + rng.random() * self.jitter) if self.jitter else base

    def is_stable(self, ran_for: float) -> bool:
        """A child that ran this long before crashing starts over from ``minimum``."""
        return ran_for >= self.reset_after
