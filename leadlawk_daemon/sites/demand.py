"""How many site reads a second the site actor must carry: the rate its in-flight limit is sized for.

PageSpeed has a quota, so its limit is sized for the quota pacer's rate. Websites have none: the
pace is whatever the jobs bring. The demand is

    rate = throughput + backlog / DRAIN_HORIZON

``throughput`` is the decaying rate of finished reads (time constant ``decay``), and ``backlog``
the reads waiting for a slot (in the mailbox, or taken by a worker and waiting). With no backlog
the limit carries what is being done, with the limit's margin above it; a backlog raises the
rate, so the limit, until the backlog is read within about ``DRAIN_HORIZON`` seconds, and the
throughput it brings keeps the limit there while reads keep coming. With nothing to read the
rate decays to nothing and the limit to its floor: idle, the actor holds no connections open
that it does not use, and a burst is met within a few reads (the backlog term sees it at once).

This is a proportional controller, not an exact model: the limit's ceiling
(``sites.max_in_flight``) and the client's per-host caps bound it whatever the estimate says.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from actors.clock import Clock
from leadlawk_daemon.resilience.inflight import DecayingLatency, InFlightLimit
from leadlawk_daemon.settings import SitesSettings

__all__ = ["DEMAND_DECAY", "DRAIN_HORIZON", "SITE_READ", "SiteDemand", "site_limit"]

SITE_READ = "read"
"""The limit's one "strategy": a site read, whatever pages it takes."""

SITE_FLOOR = 2
"""Reads in flight however little the demand: one slow site never holds every read up."""

DRAIN_HORIZON = 30.0
"""Seconds in which a backlog is to be read: long enough that one burst does not open the
ceiling's worth of connections for reads a few slots would finish soon, short enough that a
job's leads do not wait minutes for their websites."""

DEMAND_DECAY = 10.0
"""Seconds: the time constant of the throughput estimate. Longer than the latency's (5 s): site
reads finish a few a second, and a shorter window would read their gaps as a fall in demand."""


class SiteDemand:
    """The demand for site reads, read as :attr:`rate` by the site actor's in-flight limit."""

    def __init__(
        self,
        *,
        clock: Clock,
        backlog: Callable[[], int],
        decay: float = DEMAND_DECAY,
        horizon: float = DRAIN_HORIZON,
    ) -> None:
        if decay <= 0 or horizon <= 0:
            raise ValueError(f"site demand: decay and horizon must be positive (got {decay}, {horizon})")
        self._clock = clock
        self._backlog = backlog
        self._decay = decay
        self._horizon = horizon
        self._weight = 0.0  # finished reads, each decayed by exp(-age / decay)
        self._at = clock.monotonic()

    def _decay_to(self, now: float) -> None:
        elapsed = now - self._at
        if elapsed > 0:
            self._weight *= math.exp(-elapsed / self._decay)
            self._at = now

    def finished(self) -> None:
        """One read ended (whatever its outcome: a dead site is read as much as a live one)."""
        self._decay_to(self._clock.monotonic())
        self._weight += 1.0

    @property
    def throughput(self) -> float:
        """Reads finished per second, recently: the decayed count over the kernel's area (``decay``)."""
        self._decay_to(self._clock.monotonic())
        return self._weight / self._decay

    def rate(self) -> float:
        return self.throughput + max(0, self._backlog()) / self._horizon


def site_limit(
    settings: SitesSettings,
    *,
    clock: Clock,
    backlog: Callable[[], int],
    on_limit: Callable[[int], None] | None = None,
    on_latency: Callable[[DecayingLatency], None] | None = None,
) -> InFlightLimit:
    """The site actor's in-flight limit: sized for :class:`SiteDemand`, ``sites.max_in_flight`` at most.

    ``backlog`` counts the reads waiting, in the actor's mailbox or for a slot. A read holds its
    slot for its home page and up to ``max_pages`` more, each cut at ``timeout``: that is the
    longest latency the estimate may learn. The first guess is 2 s, or the timeout if shorter (a
    site read is a few requests of well under a second each; measured reads replace the guess
    within seconds).
    """
    holder: list[InFlightLimit] = []

    def waiting() -> int:
        return backlog() - (holder[0].held if holder else 0)

    demand = SiteDemand(clock=clock, backlog=waiting)

    def measured(strategy: str, estimate: DecayingLatency) -> None:
        demand.finished()
        if on_latency is not None:
            on_latency(estimate)

    limit = InFlightLimit(
        clock=clock,
        rate=demand.rate,
        expected_latency=min(settings.timeout, 2.0),
        request_timeout=settings.timeout * (1 + settings.max_pages),
        ceiling=settings.max_in_flight,
        floor=SITE_FLOOR,
        on_limit=on_limit,
        on_latency=measured,
    )
    holder.append(limit)
    return limit
