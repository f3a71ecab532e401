"""The egress pool built from the settings (docs/egress-pool.md): ``maps.egress`` resolved into
exits, each with its politeness budget: under ``politeness_scope: egress`` (the default with more
than one exit) its own, shared over Redis by every daemon going out through the same exit;
otherwise the budget the scope names, shared by all the exits of this daemon."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from actors.clock import Clock
from leadlawk_daemon.events import EventSink
from leadlawk_daemon.maps.egress_exits import Exit, resolve_exits
from leadlawk_daemon.maps.egress_pool import EgressPool
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.quota.pace import Pacer
from leadlawk_daemon.settings import MapsSettings

__all__ = ["ExitBudgets", "egress_pool"]


class ExitBudgets(Protocol):
    """The quotas shared over Redis (``SharedQuotas``): one exit's Maps budget by its hash."""

    def maps_exit(self, exit_hash: str) -> Pacer: ...


def egress_pool(
    maps: MapsSettings,
    *,
    clock: Clock,
    metrics: Metrics | None = None,
    events: EventSink | None = None,
    shared: ExitBudgets | None = None,
    environ: Mapping[str, str] | None = None,
    hostname: str | None = None,
) -> EgressPool:
    exits = resolve_exits(maps, environ, hostname)
    pacers: Callable[[Exit], Pacer | None] | None = None
    if maps.scope == "egress" and shared is not None:
        budgets = shared

        def pacers(exit: Exit) -> Pacer | None:
            return budgets.maps_exit(exit.hash)

    return EgressPool(
        exits,
        clock=clock,
        max_in_flight=maps.egress_max_in_flight,
        cooldown=maps.egress_cooldown,
        max_cooldown=maps.egress_max_cooldown,
        metrics=metrics,
        events=events,
        pacers=pacers,
    )
