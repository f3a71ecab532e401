"""The dependencies a job waits on, each with its breaker: the one list every reader shares.

Before this registry, the breakers were named by hand wherever they were read (readiness, the
console, the fleet entry, the driver's outages) and each breaker had its own change handler, so
a breaker added in one place was missing from the others (the Maps breaker never announced
``breaker.changed``; ``/health/ready`` never showed ``sites``). Now whoever builds a breaker adds it
here, with :meth:`Dependencies.changed` as its ``on_change``, and every reader iterates the registry.

The registry outlives the pipeline that fills it: a pipeline rebuilt after a restart adds its new
breakers under the same names, and while none is running the names it had are reported as such
rather than vanishing from ``/health/ready``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from leadlawk_daemon.intake.events import EventSink
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker

__all__ = ["Dependencies", "Dependency"]

log = logging.getLogger("leadlawk.dependencies")

ChangeHook = Callable[[BreakerState, BreakerState], None]


def _breaker_not_open(breaker: CircuitBreaker) -> str | None:
    # Half-open is a trial under way: the dependency may be back, so work may still be sent here.
    return f"circuit breaker {breaker.name} is open" if breaker.state is BreakerState.OPEN else None


@dataclass(frozen=True, slots=True)
class Dependency:
    """One dependency: its breaker, what readiness asks of it, and what else hears its changes."""

    name: str
    breaker: CircuitBreaker
    # None when ready, else why not, in words (Health turns it into a short code).
    ready: Callable[[CircuitBreaker], str | None] = _breaker_not_open
    on_change: ChangeHook | None = None

    @property
    def down(self) -> bool:
        """Jobs that need it wait while its breaker is not closed (a half-open trial included)."""
        return self.breaker.state is not BreakerState.CLOSED


class Dependencies:
    """The registry: breakers by dependency name, and the one handler of their state changes."""

    def __init__(self, metrics: Metrics, events: EventSink) -> None:
        self._metrics = metrics
        self._events = events
        self._entries: dict[str, Dependency] = {}
        self._known: list[str] = []  # every name ever added, in order: shown even while absent

    def add(self, dependency: Dependency) -> CircuitBreaker:
        """Register (or replace, for a rebuilt pipeline) one dependency; returns its breaker.

        The breaker must have been built with :meth:`changed` as its ``on_change``.
        """
        if dependency.breaker.name != dependency.name:
            raise ValueError(f"breaker {dependency.breaker.name!r} registered as {dependency.name!r}")
        self._entries[dependency.name] = dependency
        if dependency.name not in self._known:
            self._known.append(dependency.name)
        self._metrics.breaker_state.labels(breaker=dependency.name).set(dependency.breaker.state.metric_value)
        return dependency.breaker

    def clear(self) -> None:
        """The pipeline that owned the breakers stopped: they no longer guard anything."""
        self._entries.clear()

    def __iter__(self) -> Iterator[Dependency]:
        return iter(list(self._entries.values()))

    def __getitem__(self, name: str) -> Dependency:
        return self._entries[name]

    @property
    def names(self) -> list[str]:
        return list(self._known)

    def changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        """Every breaker's ``on_change``: the gauge, the log, the dependency's own hook, the event."""
        self._metrics.breaker_state.labels(breaker=name).set(new.metric_value)
        log.warning("circuit breaker changed", extra={"breaker": name, "from": old.value, "to": new.value})
        entry = self._entries.get(name)
        if entry is not None and entry.on_change is not None:
            entry.on_change(old, new)
        self._events.publish("breaker.changed", breaker=name, old=old.value, new=new.value)

    # -- what the readers ask -------------------------------------------------------------------

    def outages(self) -> frozenset[str]:
        """The dependencies whose breakers are not closed: jobs that need them wait."""
        return frozenset(d.name for d in self._entries.values() if d.down)

    def states(self) -> dict[str, str]:
        """Each breaker's state (closed, half_open, open): the fleet entry."""
        return {d.name: d.breaker.state.value for d in self._entries.values()}

    def conditions(self) -> dict[str, str | None]:
        """Readiness of each dependency ever added: None when ready, else why not."""
        answers: dict[str, str | None] = {}
        for name in self._known:
            entry = self._entries.get(name)
            answers[name] = "pipeline not running" if entry is None else entry.ready(entry.breaker)
        return answers
