"""Backoff: the one formula every retry loop in the tree waits by, and the supervisors' restarts.

The n-th wait's ceiling is ``min(cap, base * factor ** n)``; a jitter mode then spreads it:

* ``NONE``: the ceiling itself (a lone client: a database connection, a store call in an outage);
* ``FULL``: uniform in ``[0, ceiling]`` (AWS Architecture Blog, "Exponential Backoff and Jitter"),
  which keeps many clients that failed together from retrying together;
* ``EQUAL``: uniform in ``[ceiling / 2, ceiling]``, for a loop that must not retry at once but
  should still not retry in step (the writer's flushes);
* ``STRETCH``: the ceiling times a factor in ``[1, 1 + spread]``, as Akka's BackoffSupervisor
  does it: never shorter than the ceiling, so siblings restart apart yet no sooner than asked.

``n`` is the caller's count, so each loop keeps its own first exponent. It lives in the runtime
because the supervisors use it and the runtime imports nothing of the product; the product's
loops import it from here (``resilience/retry.py`` builds its policy on it).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Backoff", "BackoffSequence", "Jitter", "RandomSource", "RestartBackoff", "Sleeper"]

# Past this exponent any factor above 1 has long reached any cap; it bounds the work and keeps
# ``factor ** n`` from overflowing a float.
_MAX_EXPONENT = 1024


class RandomSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


class Sleeper(Protocol):
    """A clock's sleep: injected, so a test moves time instead of waiting for it."""

    async def sleep(self, seconds: float) -> None: ...


class Jitter(enum.Enum):
    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    STRETCH = "stretch"


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float
    cap: float
    factor: float = 2.0
    jitter: Jitter = Jitter.NONE
    spread: float = 0.0  # STRETCH only: the largest extra fraction of the ceiling

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"backoff: base and cap must not be negative (got {self.base}, {self.cap})")
        if self.factor < 1:
            raise ValueError(f"backoff: factor must be at least 1 (got {self.factor})")
        if self.spread < 0:
            raise ValueError(f"backoff: spread must not be negative (got {self.spread})")

    @property
    def upper(self) -> float:
        """No delay is ever longer than this."""
        return self.cap * (1.0 + self.spread) if self.jitter is Jitter.STRETCH else self.cap

    def ceiling(self, n: int) -> float:
        """The n-th delay before jitter: ``min(cap, base * factor ** n)``."""
        if self.base <= 0:
            return 0.0
        try:
            raw = self.base * self.factor ** min(max(n, 0), _MAX_EXPONENT)
        except OverflowError:
            return self.cap
        return min(self.cap, raw)

    def delay(self, n: int, rng: RandomSource) -> float:
        """The n-th delay, jittered; ``rng`` is drawn from only when the mode jitters."""
        ceiling = self.ceiling(n)
        match self.jitter:
            case Jitter.NONE:
                return ceiling
            case Jitter.FULL:
                return rng.uniform(0.0, ceiling)
            case Jitter.EQUAL:
                return rng.uniform(ceiling / 2, ceiling)
            case Jitter.STRETCH:
                return ceiling * (1.0 + rng.uniform(0.0, self.spread)) if self.spread else ceiling

    def sequence(self, rng: RandomSource | None = None) -> BackoffSequence:
        return BackoffSequence(self, rng if rng is not None else random.Random())


class BackoffSequence:
    """One loop's failures since its last success, and the wait each of them earns."""

    def __init__(self, backoff: Backoff, rng: RandomSource) -> None:
        self.backoff = backoff
        self._rng = rng
        self.failures = 0

    def next(self) -> float:
        """The wait after one more failure (the first failure waits the 0th delay)."""
        delay = self.backoff.delay(self.failures, self._rng)
        self.failures += 1
        return delay

    def current(self) -> float:
        """The wait the next failure would earn, without counting one."""
        return self.backoff.delay(self.failures, self._rng)

    def reset(self) -> None:
        """A success: the next failure waits the shortest delay again."""
        self.failures = 0

    async def wait(self, clock: Sleeper) -> float:
        """Count a failure and sleep its delay on ``clock``; returns the delay."""
        delay = self.next()
        await clock.sleep(delay)
        return delay


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    """A supervisor's restart delays: doubling from ``minimum`` to ``maximum``, stretched by up to
    ``jitter`` of themselves, and starting over once a child has run ``reset_after`` unharmed."""

    minimum: float = 0.0
    maximum: float = 0.0
    jitter: float = 0.0
    reset_after: float = 30.0

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.minimum, self.maximum, jitter=Jitter.STRETCH, spread=self.jitter)

    def delay(self, attempt: int, rng: RandomSource) -> float:
        """The delay before restart number ``attempt`` (0 for the first restart after a stable run)."""
        return self.backoff.delay(attempt, rng)

    def is_stable(self, ran_for: float) -> bool:
        """A child that ran this long before crashing starts over from ``minimum``."""
        return ran_for >= self.reset_after
