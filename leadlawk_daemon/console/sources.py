"""What the console reads from the running daemon, in one place.

The health page shows what ``/health/ready`` and ``/metrics`` already compute: the dependency
probes and readiness conditions (:meth:`Health.ready`), the breakers the pipeline owns, the
PageSpeed quotas, and the actors' restarts and mailbox depths (the same numbers the
``ActorStatsCollector`` exports). Nothing here keeps state of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.http_api import JobsApi
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store import Store

if TYPE_CHECKING:
    from leadlawk_daemon.assembly import LeadLawkDaemon

__all__ = ["ActorRow", "BreakerRow", "ConsoleSources", "HealthView", "QuotaRow"]


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


@dataclass
class ConsoleSources:
    """The daemon's parts the console reads; built by :meth:`from_daemon`."""

    settings: Settings
    jobs: JobsApi
    bus: EventBus
    store: Callable[[], Store | None]
    health: Callable[[], HealthView]
    notify: Callable[[], None]  # wake the pipeline (a replayed dead letter made a job runnable)

    @classmethod
    def from_daemon(cls, daemon: LeadLawkDaemon) -> ConsoleSources:
        assert daemon.jobs is not None

        def notify() -> None:
            pipeline = daemon.pipeline_service.pipeline
            if pipeline is not None:
                pipeline.notify()

        return cls(
            settings=daemon.settings,
            jobs=daemon.jobs,
            bus=daemon.bus,
            store=lambda: daemon.database.store,
            health=lambda: _health_view(daemon),
            notify=notify,
        )


def _breaker_row(name: str, breaker: CircuitBreaker, wall: float) -> BreakerRow:
    state = breaker.state
    wait = breaker.seconds_until_trial() if state is BreakerState.OPEN else 0.0
    next_trial = datetime.fromtimestamp(wall + wait, UTC) if state is BreakerState.OPEN else None
    return BreakerRow(name, state.value, breaker.failures, next_trial)


def _health_view(daemon: LeadLawkDaemon) -> HealthView:
    ready, checks = daemon.health.ready()
    live, reason = daemon.health.live()
    view = HealthView(ready=ready, checks=dict(checks), live=live, live_reason=reason)
    pipeline = daemon.pipeline_service.pipeline
    if pipeline is None:
        return view
    view.pipeline_running = True
    wall = daemon.clock.wall()
    breakers: Mapping[str, CircuitBreaker | None] = {
        "google_maps": pipeline.maps_breaker,
        "pagespeed": pipeline.pagespeed.breaker,
        "database": pipeline.db_breaker,
        "sites": pipeline.sites_breaker,
    }
    view.breakers = [_breaker_row(name, b, wall) for name, b in breakers.items() if b is not None]
    daily = pipeline.pagespeed.daily
    view.quotas = [
        QuotaRow(
            "PageSpeed queries today", daily.used, daily.limit, timedelta(seconds=int(daily.seconds_until_reset()))
        )
    ]
    view.actors = [
        ActorRow(stats.name, stats.restarts, depth, capacity, stats.ok, stats.failed, stats.dead_lettered)
        for stats, depth, capacity in daemon.actor_stats()
    ]
    return view
