"""How many calls to a dependency may be in flight: sized from the latency calls take, not a setting.

Two users: PageSpeed (the rate is the quota pacer's) and the site actor (the rate is the demand
for site reads: see :mod:`leadlawk_daemon.sites.demand`). The text below speaks of PageSpeed.

The quota pacer alone decides when a call may start. This limit only bounds how many calls hold
a slot at once (running, or waiting for their turn at the pacer), and it is chosen so that it
never stands in the pacer's way and never holds many more slots than the pace can use:

    limit = ceil(margin x rate x latency), between ``floor`` and ``ceiling``

``rate`` is the pacer's sustained rate (calls per second) and ``latency`` is, by Little's law,
the mean time a call holds its slot. Two measurements give it, and the larger one wins:

- **completed calls**: per strategy, an exponentially decaying mean of call latency (time
  constant ``decay``, 5 s by default), weighted by each strategy's share of recent starts, so a
  job that adds desktop runs to mobile ones moves the limit at its first start. A call cut by
  the request timeout counts at the timeout, never more: a burst of timeouts raises the limit to
  at most ``margin x rate x request_timeout``, and never past the ceiling.
- **calls still running**: ``N`` calls in flight at a pace of ``rate`` mean that a call now
  takes at least ``N / rate``. Completed calls show a rise in latency only once the slower calls
  end (40 s after a change to 40 s calls); without this bound the limit would sit at what is in
  flight and stall the pacer until then. With it, the limit stays ``margin`` above what runs,
  so calls keep starting at the pacer's rate while latency climbs. It does not overstate
  latency: the pacer never starts more than ``rate`` calls a second (and it too stops at the
  request timeout).

Why the mean and not a percentile: Little's law holds for the mean. Sizing from the median
would under-size a heavy tail (a lognormal's median is 20 % under its mean), a p90 would
over-size a flat spread (uniform 10-40 s: 48 % over). The decaying percentiles are measured
from the same samples, exported, and shown on the dashboard next to the limit.

Convergence: after latency falls from L1 to L2, completions of calls started before the change
keep arriving for L1 seconds; after that only new samples come in, and ``t`` seconds later the
estimate has ``exp(-t / decay)`` of the gap to L2 left. For Lighthouse's 10 to 40 s that is within a
minute of the change (40 s of old completions, then 20 s: 2 % of the gap left with the default
5 s, which still averages some 20 calls at Google's 4 a second). A rise shows in the running
calls at once, and in completions L2 seconds later.

``expected_latency`` is only the first guess: one sample per strategy, gone after a few calls.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from actors.clock import Clock

__all__ = ["DECAY", "MARGIN", "QUANTILES", "DecayingLatency", "InFlightLimit"]

MARGIN = 1.15
"""Slots per call the measured latency needs: room for latency's spread around its mean (in
flight fluctuates by a few calls at a steady pace), and for the estimate's noise and lag."""

DECAY = 5.0
"""Seconds: the time constant of the decaying latency estimate (see the convergence note)."""

QUANTILES = (0.5, 0.9, 0.99)
"""The decaying percentiles exported per strategy."""

_BUCKET_RATIO = 1.08  # histogram resolution: a quantile is read to within 4 %
_SMALLEST = 0.01  # seconds: the first bucket's upper bound


def _bucket(seconds: float) -> int:
    """The histogram bucket whose upper bound is the first at or above ``seconds``."""
    return max(0, math.ceil(math.log(max(seconds, _SMALLEST) / _SMALLEST) / math.log(_BUCKET_RATIO)))


class DecayingLatency:
    """An exponentially decaying mean and histogram of one strategy's call latencies.

    Every sample's weight falls by ``exp(-age / decay)``; the mean and the quantiles are over
    those weights. Decay by itself changes neither (all weights shrink alike), so the weights
    are decayed only when a sample arrives.
    """

    def __init__(self, decay: float, cap: float, first_guess: float, now: float) -> None:
        if decay <= 0 or cap <= 0:
            raise ValueError(f"latency estimate: decay and cap must be positive (got {decay}, {cap})")
        self._decay = decay
        self._cap = cap
        buckets = max(1, math.ceil(math.log(cap / _SMALLEST) / math.log(_BUCKET_RATIO)) + 1)
        self._bounds = [_SMALLEST * _BUCKET_RATIO**i for i in range(buckets)]
        self._weights = [0.0] * buckets
        self._total = 0.0
        self._sum = 0.0
        self._at = now
        self.samples = 0
        self.observe(first_guess, now)
        self.samples = 0  # the guess is not a measurement

    def _decay_to(self, now: float) -> None:
        elapsed = now - self._at
        if elapsed <= 0:
            return
        factor = math.exp(-elapsed / self._decay)
        self._weights = [w * factor for w in self._weights]
        self._total *= factor
        self._sum *= factor
        self._at = now

    def observe(self, seconds: float, now: float) -> None:
        """One call's latency, capped at ``cap`` (a call cut by the timeout took the timeout)."""
        value = min(max(seconds, 0.0), self._cap)
        self._decay_to(now)
        index = min(len(self._bounds) - 1, _bucket(value))
        self._weights[index] += 1.0
        self._total += 1.0
        self._sum += value
        self.samples += 1

    @property
    def mean(self) -> float:
        return self._sum / self._total if self._total > 0 else 0.0

    def quantile(self, q: float) -> float:
        """The decaying ``q``-quantile, interpolated within its bucket."""
        target = q * self._total
        seen = 0.0
        for index, weight in enumerate(self._weights):
            if weight > 0 and seen + weight >= target:
                upper = self._bounds[index]
                lower = upper / _BUCKET_RATIO if index else 0.0
                return min(self._cap, lower + (upper - lower) * (target - seen) / weight)
            seen += weight
        return self._bounds[-1]


class _DecayingCount:
    """Recent starts per strategy, decaying like the latencies: each strategy's share of them."""

    def __init__(self, decay: float, now: float) -> None:
        self._decay = decay
        self._counts: dict[str, float] = {}
        self._at = now

    def add(self, key: str, now: float) -> None:
        elapsed = now - self._at
        if elapsed > 0:
            factor = math.exp(-elapsed / self._decay)
            self._counts = {k: v * factor for k, v in self._counts.items()}
            self._at = now
        self._counts[key] = self._counts.get(key, 0.0) + 1.0

    def shares(self) -> dict[str, float]:
        total = sum(self._counts.values())
        return {k: v / total for k, v in self._counts.items()} if total > 0 else {}


OnLimit = Callable[[int], None]
OnLatency = Callable[[str, DecayingLatency], None]
Rate = float | Callable[[], float]
"""Calls per second the limit must carry: a constant (a quota pacer's), or read at each update
(a demand that changes: the site actor's)."""

_SLOWEST = 1e-6  # calls per second: a rate read as zero (no demand yet) still sizes to the floor


class InFlightLimit:
    """An adaptive semaphore: :meth:`slot` waits while ``limit`` slots are held.

    Waiters are served first come, first served. A limit that falls takes no slot back: calls
    holding one finish, and no new call starts until fewer than the new limit are held.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        rate: Rate,
        expected_latency: float,
        request_timeout: float,
        ceiling: int,
        floor: int = 2,
        margin: float = MARGIN,
        decay: float = DECAY,
        on_limit: OnLimit | None = None,
        on_latency: OnLatency | None = None,
    ) -> None:
        if not callable(rate) and rate <= 0:
            raise ValueError(f"in-flight limit: the pacer's rate must be positive (got {rate})")
        if ceiling < 1:
            raise ValueError(f"in-flight limit: the ceiling (max_in_flight) must be at least 1 (got {ceiling})")
        if margin < 1:
            raise ValueError(f"in-flight limit: margin must be at least 1 (got {margin})")
        self._clock = clock
        self._rate = rate
        self.ceiling = ceiling
        self.floor = max(1, min(floor, ceiling))
        self.margin = margin
        self._decay = decay
        self._timeout = request_timeout
        self._first_guess = min(expected_latency, request_timeout)
        self._latency: dict[str, DecayingLatency] = {}
        self._starts = _DecayingCount(decay, clock.monotonic())
        self._on_limit = on_limit
        self._on_latency = on_latency
        self._held = 0
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.limit = self.floor
        self._update()

    @staticmethod
    def default_ceiling(rate: float, request_timeout: float, margin: float = MARGIN) -> int:
        """The most slots the pace could ever use: every call running until the request timeout."""
        return max(1, math.ceil(margin * rate * request_timeout))

    @property
    def rate(self) -> float:
        """Calls per second the limit is sized for, now."""
        rate = self._rate() if callable(self._rate) else self._rate
        return max(rate, _SLOWEST)

    @property
    def held(self) -> int:
        """Slots held now: calls running, and calls waiting for the pacer."""
        return self._held

    def estimate(self, strategy: str) -> DecayingLatency:
        found = self._latency.get(strategy)
        if found is None:
            found = DecayingLatency(self._decay, self._timeout, self._first_guess, self._clock.monotonic())
            self._latency[strategy] = found
        return found

    @property
    def latency(self) -> float:
        """Seconds a call holds its slot, as measured: the larger of the two bounds (module docstring)."""
        shares = self._starts.shares()
        completed = (
            sum(share * self.estimate(s).mean for s, share in shares.items()) if shares else self._first_guess
        )
        # No call holds its slot past the timeout (running / rate may overshoot it by a call or two).
        return min(self._timeout, max(completed, self.running / self.rate))

    def refresh(self) -> None:
        """Size the limit again: a rate read from a callable may have changed since the last call."""
        self._update()

    def _update(self) -> None:
        need = self.margin * self.rate * self.latency
        limit = min(self.ceiling, max(self.floor, math.ceil(need - 1e-9)))
        if limit != self.limit:
            self.limit = limit
            if self._on_limit is not None:
                self._on_limit(limit)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._held < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._held += 1  # handed over here, so that no later caller overtakes it
                waiter.set_result(None)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body: a call and its wait at the pacer."""
        if self._held < self.limit and not self._waiters:
            self._held += 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # granted and cancelled in the same turn: give it back
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self._held -= 1
        self._wake()

    def started(self, strategy: str) -> float:
        """A call went out (past the pacer); returns its start time on the clock."""
        now = self._clock.monotonic()
        self._starts.add(strategy, now)
        self.running += 1
        self._update()
        return now

    def finished(self, strategy: str, started: float, *, measured: bool = True) -> None:
        """A call ended; ``measured`` is False when it was cancelled before it ended or timed out
        (its job stopped): its latency is unknown, and a short sample would be a wrong one."""
        self.running -= 1
        if measured:
            now = self._clock.monotonic()
            estimate = self.estimate(strategy)
            estimate.observe(now - started, now)
            if self._on_latency is not None:
                self._on_latency(strategy, estimate)
        self._update()
