"""The egress pool: which exit a search goes out through, and each exit's own block breaker.

Each exit is *closed* (in use), *open* (cooling down after a block or a proxy failure) or
*half-open* (its cool-down is over and one search is its trial). A block signal (``/sorry/``, a
consent loop, an empty soft-blocked feed) or a proxy failure (unreachable, ``407``, a TLS error)
opens that exit alone; its cool-down is ``maps.egress_cooldown`` doubled for each block in a row up
to ``maps.egress_max_cooldown``, with full jitter over the upper half (:class:`Backoff`, EQUAL),
so exits blocked together do not come back together. The trial's success closes it; its failure
opens it again for longer.

Routing is *least loaded*: a lease goes to the closed exit with the fewest searches in flight,
below ``maps.egress_max_in_flight``, ties to the one leased longest ago. Searches per exit are the
load because each exit's politeness budget spaces its navigations: an exit with fewer searches in
flight starts its next navigation sooner. Round robin would queue work behind a slow (far, or
slow proxy) exit; a random pick would too, by chance.

While some exit is usable, a failure on another is that exit's business only: the search is told
:class:`ExitUnavailable` and goes again through a healthy exit, and the Google Maps breaker
hears nothing. Only when every exit is open is Google's refusal an outage: the last exit's calls
then pass the Maps breaker (:class:`ExitBreaker`), which opens as it always has and makes jobs
wait on ``google_maps``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from actors.clock import Clock
from leadlawk_daemon.events import EventSink
from leadlawk_daemon.maps.blocking import BlockedError
from leadlawk_daemon.maps.browser import UnreachableError
from leadlawk_daemon.maps.egress_exits import Exit
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.quota.pace import Pacer
from leadlawk_daemon.resilience.breaker import BreakerState
from supervisors.backoff import Backoff, Jitter

__all__ = ["EXIT_FAILURES", "EgressPool", "ExitBreaker", "ExitHealth", "ExitState", "ExitUnavailable"]

log = logging.getLogger("leadlawk.egress")
T = TypeVar("T")

# What an exit's failure looks like from a search: Google turning it away, or the way out broken
# (a proxy down, refusing our credentials, a TLS error: Chromium's net::ERR_PROXY_*, TUNNEL_*).
EXIT_FAILURES: tuple[type[Exception], ...] = (BlockedError, UnreachableError)


# An exit's states are a breaker's (and so are their gauge values).
ExitState = BreakerState


class ExitUnavailable(Exception):
    """The exit a search went out through failed while others are healthy: search again, elsewhere."""

    def __init__(self, exit_name: str, reason: str) -> None:
        super().__init__(f"exit {exit_name} unavailable: {reason}")
        self.exit_name = exit_name
        self.reason = reason


@dataclass(eq=False)
class ExitHealth:
    exit: Exit
    pacer: Pacer | None = None
    state: ExitState = ExitState.CLOSED
    in_flight: int = 0
    blocks_in_row: int = 0
    open_until: float = 0.0
    trial_running: bool = False
    reason: str | None = None
    navigations: int = 0
    blocks: int = 0
    last_lease: int = 0
    last_error: BaseException | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.exit.name


class EgressPool:
    """Leases exits to searches; hears their successes and failures."""

    def __init__(
        self,
        exits: Sequence[Exit],
        *,
        clock: Clock,
        max_in_flight: int,
        cooldown: float,
        max_cooldown: float,
        metrics: Metrics | None = None,
        events: EventSink | None = None,
        pacers: Callable[[Exit], Pacer | None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not exits:
            raise ValueError("the egress pool needs at least one exit")
        self.clock = clock
        self.max_in_flight = max_in_flight
        self.backoff = Backoff(cooldown, max_cooldown, jitter=Jitter.EQUAL)
        self.metrics = metrics
        self.events = events
        self._rng = rng or random.Random()
        self.exits = [ExitHealth(e, pacer=pacers(e) if pacers is not None else None) for e in exits]
        self._leases = 0
        self._changed = asyncio.Event()
        for health in self.exits:
            self._gauge(health)

    @property
    def width(self) -> int:
        """How many searches of one job may run at once: one per exit."""
        return len(self.exits)

    # -- leasing --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[ExitHealth]:
        """An exit for one search; waits while every usable exit is at its cap."""
        while True:
            health = self._pick()
            if health is not None:
                break
            await self._wait_for_change()
        health.in_flight += 1
        self._leases += 1
        health.last_lease = self._leases
        try:
            yield health
        finally:
            health.in_flight -= 1
            if health.trial_running and health.state is ExitState.HALF_OPEN:
                # The trial ended without a verdict (cancelled, a browser crash): try again later.
                health.trial_running = False
                self._set(health, ExitState.OPEN, health.reason)
                health.open_until = self.clock.monotonic()
            self._notify()

    def _pick(self) -> ExitHealth | None:
        now = self.clock.monotonic()
        # A cooled-down exit's trial first: it is how the exit comes back, and it is one search.
        # (With every exit open the Maps breaker paces the tries instead: below.)
        if not self.all_open:
            for health in self.exits:
                if health.state is ExitState.OPEN and now >= health.open_until and health.in_flight == 0:
                    health.trial_running = True
                    self._set(health, ExitState.HALF_OPEN, health.reason)
                    return health
        closed = [h for h in self.exits if h.state is ExitState.CLOSED and h.in_flight < self.max_in_flight]
        if closed:
            return min(closed, key=lambda h: (h.in_flight, h.last_lease))
        if all(h.state is ExitState.OPEN for h in self.exits):
            # Every exit is cooling down: Google's outage, paced by the Maps breaker (ExitBreaker),
            # through the exit that comes back first.
            free = [h for h in self.exits if h.in_flight < self.max_in_flight]
            if free:
                return min(free, key=lambda h: h.open_until)
        return None

    async def _wait_for_change(self) -> None:
        now = self.clock.monotonic()
        cooling = [h.open_until - now for h in self.exits if h.state is ExitState.OPEN and h.in_flight == 0]
        waiter = asyncio.ensure_future(self._changed.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(max(0.0, min(cooling)))) if cooling else None
        pending = {waiter} if sleeper is None else {waiter, sleeper}
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- verdicts -------------------------------------------------------------------------------

    def navigated(self, health: ExitHealth) -> None:
        health.navigations += 1
        if self.metrics is not None:
            self.metrics.egress_navigations.labels(egress=health.name).inc()

    def succeeded(self, health: ExitHealth) -> None:
        health.blocks_in_row = 0
        health.last_error = None
        if health.state is not ExitState.CLOSED:
            health.trial_running = False
            self._set(health, ExitState.CLOSED, None)
            self._notify()

    def failed(self, health: ExitHealth, error: BaseException) -> None:
        """A block or a proxy failure at ``health``'s exit: it opens (again), for longer each time."""
        if error is health.last_error:
            return  # the same failure, heard twice on its way up
        health.last_error = error
        health.blocks += 1
        if self.metrics is not None:
            self.metrics.egress_blocks.labels(egress=health.name).inc()
        if health.state is ExitState.OPEN:
            return  # a search that started before it opened: the cool-down already runs
        health.blocks_in_row += 1
        health.trial_running = False
        health.open_until = self.clock.monotonic() + self.backoff.delay(health.blocks_in_row - 1, self._rng)
        self._set(health, ExitState.OPEN, _reason(error))
        self._notify()

    def others_usable(self, health: ExitHealth) -> bool:
        """Whether a search failing at ``health`` could go out through another exit."""
        return any(h is not health and h.state is not ExitState.OPEN for h in self.exits)

    @property
    def all_open(self) -> bool:
        return all(h.state is ExitState.OPEN for h in self.exits)

    def _set(self, health: ExitHealth, state: ExitState, reason: str | None) -> None:
        old, health.state, health.reason = health.state, state, reason
        if old is state:
            return
        extra: dict[str, Any] = {"egress": health.name, "from": old.value, "to": state.value}
        if reason is not None:
            extra["reason"] = reason
        if state is ExitState.OPEN:
            extra["cooldown_s"] = round(max(0.0, health.open_until - self.clock.monotonic()), 1)
        # Logged once per state change, with the exit's name and never its URL or credentials.
        (log.warning if state is ExitState.OPEN else log.info)("egress exit changed", extra=extra)
        self._gauge(health)
        if self.events is not None:
            self.events.publish("egress.changed", **extra)

    def _gauge(self, health: ExitHealth) -> None:
        if self.metrics is not None:
            self.metrics.egress_state.labels(egress=health.name).set(health.state.metric_value)

    # -- visibility -----------------------------------------------------------------------------

    def report(self) -> list[dict[str, Any]]:
        """Each exit's state, for /health/ready, /fleet, the console and ``leadlawk status``."""
        now = self.clock.monotonic()
        return [
            {
                "egress": h.name,
                "kind": h.exit.kind,
                "state": h.state.value,
                "in_flight": h.in_flight,
                "navigations": h.navigations,
                "blocks": h.blocks,
                "reason": h.reason,
                "cooldown_s": round(max(0.0, h.open_until - now), 1) if h.state is ExitState.OPEN else 0.0,
            }
            for h in self.exits
        ]

    def summary(self) -> list[dict[str, Any]] | None:
        """Each exit's name and state (and why it is open), for a job's progress; None with one exit."""
        if len(self.exits) < 2:
            return None
        return [
            {"egress": h.name, "state": h.state.value, **({"reason": h.reason} if h.reason else {})}
            for h in self.exits
        ]

    def note(self) -> str | None:
        """What /health/ready says while some exit is open (degraded; down only when all are)."""
        open_names = [h.name for h in self.exits if h.state is ExitState.OPEN]
        if not open_names:
            return None
        return f"{len(open_names)} of {len(self.exits)} Maps exits cooling down: {', '.join(open_names)}"


def _reason(error: BaseException) -> str:
    if isinstance(error, BlockedError):
        return error.reason
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class Guard(Protocol):
    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...


class ExitBreaker:
    """The breaker a Maps scraper pinned to one exit calls through (``MapsScraper.breaker``).

    With another exit usable, a failure opens this exit and becomes :class:`ExitUnavailable`; the
    last exit standing calls through the Google Maps breaker, so that an outage of every exit is
    Google's outage, counted and waited out as before the pool.
    """

    def __init__(
        self,
        pool: EgressPool,
        health: ExitHealth,
        maps_breaker: Guard,
        responsive: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.pool = pool
        self.health = health
        self.maps_breaker = maps_breaker
        self._responsive = responsive

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self.pool.others_usable(self.health):
            try:
                return await self._accounted(fn, *args)
            except EXIT_FAILURES as exc:
                raise ExitUnavailable(self.health.name, _reason(exc)) from exc
        return await self.maps_breaker.call(self._accounted, fn, *args)

    async def _accounted(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            result = await fn(*args)
        except EXIT_FAILURES as exc:
            self.pool.failed(self.health, exc)
            raise
        self.pool.succeeded(self.health)
        return result
