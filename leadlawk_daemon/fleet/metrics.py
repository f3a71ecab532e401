"""The metrics that tell daemons apart: each carries ``instance``, the daemon's fleet id.

The id is short and hostless on purpose: ``/metrics`` is public and reveals no hostname. Behind a
platform's router (Heroku) one scrape reaches any one daemon, so the scrape's own ``instance``
target label cannot tell them apart; this one can. (Prometheus renames an exposed ``instance`` to
``exported_instance`` unless the scrape job sets ``honor_labels: true``; see docs/runbook.md.)
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from leadlawk_daemon.fleet.registry import FleetRegistry

__all__ = ["FleetCollector"]

_STATES = {"closed": 0, "half_open": 1, "open": 2}


class FleetCollector(Collector):
    """``leadlawk_daemon_info``, ``leadlawk_jobs_held``, ``leadlawk_fleet_daemons`` and
    ``leadlawk_daemon_breaker_state``, read from the registry at scrape time."""

    def __init__(self, registry: FleetRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        registry = self._registry
        instance = registry.identity.id
        info = GaugeMetricFamily(
            "leadlawk_daemon_info", "1 per daemon: its fleet id and version", labels=["instance", "version"]
        )
        info.add_metric([instance, registry.identity.version], 1)
        record = registry.record()
        held = GaugeMetricFamily("leadlawk_jobs_held", "Jobs this daemon runs now", labels=["instance"])
        held.add_metric([instance], record["jobs_held"])
        alive = GaugeMetricFamily(
            "leadlawk_fleet_daemons",
            "Daemons this one saw alive at its last fleet heartbeat (itself included)",
            labels=["instance"],
        )
        alive.add_metric([instance], registry.last_seen_alive())
        breakers = GaugeMetricFamily(
            "leadlawk_daemon_breaker_state",
            "leadlawk_circuit_breaker_state with the daemon's instance: 0 closed, 1 half-open, 2 open",
            labels=["instance", "breaker"],
        )
        for name, state in sorted(record["breakers"].items()):
            value = _STATES.get(str(state))
            if value is not None:
                breakers.add_metric([instance, name], value)
        yield from (info, held, alive, breakers)
