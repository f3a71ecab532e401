"""What the console reads from the running daemon, in one place.

The health page shows what ``/health/ready`` and ``/metrics`` already compute: the dependency
probes and readiness conditions (:meth:`Health.ready`), every breaker of the dependency registry,
the PageSpeed quotas, and the actors' restarts and mailbox depths (the same numbers the
``ActorStatsCollector`` exports). Nothing here keeps state of its own.

The composition root (:mod:`leadlawk_daemon.assembly`) fills these in: the console knows the
parts it reads, never the daemon that holds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.stats import ActorStats
from leadlawk_daemon.dependencies import Dependency
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import JobsApi
from leadlawk_daemon.pagespeed.quota import DailyQuota
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store import Store

__all__ = ["ActorRow", "BreakerRow", "ConsoleSources", "HealthView", "QuotaRow", "health_view"]


@dataclass(frozen=True)
class BreakerRow:
    name: str
    state: str
    failures: int
    next_trial: datetime | None  # open: when the one trial call may go


@dataclass(frozen=True)
class QuotaRow:
    name: str
    used: int
    limit: int
    resets_in: timedelta

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class ActorRow:
    name: str
    restarts: int
    depth: int
    capacity: int
    ok: int
    failed: int
    dead_lettered: int


@dataclass
class HealthView:
    ready: bool
    checks: dict[str, Any]
    live: bool
    live_reason: str | None
    breakers: list[BreakerRow] = field(default_factory=list)
    quotas: list[QuotaRow] = field(default_factory=list)
    actors: list[ActorRow] = field(default_factory=list)
    pipeline_running: bool = False
    # The Google Maps exits (docs/egress-pool.md), as /health/ready lists them: names, never URLs.
    egress: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ConsoleSources:
    """The daemon's parts the console reads; built by the composition root."""

    settings: Settings
    jobs: JobsApi
    bus: EventBus
    store: Callable[[], Store | None]
    health: Callable[[], HealthView]
    notify: Callable[[], None]  # wake the pipeline (a replayed dead letter made a job runnable)


def _breaker_row(name: str, breaker: CircuitBreaker, wall: float) -> BreakerRow:
    state = breaker.state
    wait = breaker.seconds_until_trial() if state is BreakerState.OPEN else 0.0
    next_trial = datetime.fromtimestamp(wall + wait, UTC) if state is BreakerState.OPEN else None
    return BreakerRow(name, state.value, breaker.failures, next_trial)


def health_view(
    health: Health,
    *,
    wall: float,
    dependencies: Iterable[Dependency],
    daily: DailyQuota | None,
    actor_stats: list[tuple[ActorStats, int, int]],
) -> HealthView:
    """The health page: ``daily`` is the running pipeline's PageSpeed quota, None while none runs."""
    ready, checks = health.ready()
    live, reason = health.live()
    view = HealthView(ready=ready, checks=dict(checks), live=live, live_reason=reason)
    view.egress = [dict(exit) for exit in health.detail().get("egress") or ()]
    if daily is None:
        return view
    view.pipeline_running = True
    view.breakers = [_breaker_row(d.name, d.breaker, wall) for d in dependencies]
    view.quotas = [
        QuotaRow(
            "PageSpeed queries today", daily.used, daily.limit, timedelta(seconds=int(daily.seconds_until_reset()))
        )
    ]
    view.actors = [
        ActorRow(stats.name, stats.restarts, depth, capacity, stats.ok, stats.failed, stats.dead_lettered)
        for stats, depth, capacity in actor_stats
    ]
    return view
