"""Every Prometheus metric the daemon exports (docs/interfaces.md), on a registry of its own.

Each daemon (and each test) builds its own :class:`Metrics`, so nothing leaks between them.
Hot paths (actor message handling) keep plain counters and are read at scrape time by a
collector; see ``actors.stats``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "BreakerState", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class BreakerState:
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, process: bool = True) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        if process:
            ProcessCollector(registry=r)
        self.jobs = Counter("leadlawk_jobs", "Jobs by terminal or entry status", ["status"], registry=r)
        self.leads = Counter("leadlawk_leads", "Leads through each stage", ["stage"], registry=r)
        self.stage_duration = Histogram(
            "leadlawk_stage_duration_seconds",
            "Time per unit of work in each stage",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.breaker_state = Gauge(
            "leadlawk_circuit_breaker_state", "0 closed, 1 half-open, 2 open", ["breaker"], registry=r
        )
        self.maps_view = Counter(
            "leadlawk_maps_view", "Google Maps pages read, by the view Google showed (full, limited)", ["view"],
            registry=r,
        )
        self.maps_view_limited = Gauge(
            "leadlawk_maps_view_limited", "1 while the last Google Maps page read was the limited view", registry=r
        )
        self.retries = Counter("leadlawk_retries", "Retried calls by dependency", ["dependency"], registry=r)
        self.rate_limit_wait = Histogram(
            "leadlawk_rate_limit_wait_seconds",
            "Time spent waiting for a rate limiter",
            ["limiter"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter("leadlawk_dead_letters", "Dead letters by kind", ["kind"], registry=r)
        self.dependency_up = Gauge(
            "leadlawk_dependency_up", "1 when the dependency passes its health probes", ["dependency"], registry=r
        )
        self.loop_lag = Histogram(
            "leadlawk_event_loop_lag_seconds", "Event-loop scheduling lag", buckets=_LAG_BUCKETS, registry=r
        )
        self.browser_restarts = Counter("leadlawk_browser_restarts", "Browser processes replaced", registry=r)
        # Chromium's own loads the egress policy refused (docs/egress-policy.md); the log names the hosts.
        self.browser_refused = Counter(
            "leadlawk_browser_refused", "Requests of the browser's pages refused by the egress policy, by kind",
            ["kind"], registry=r,
        )
        self.in_flight = Gauge("leadlawk_in_flight", "Calls in flight per dependency", ["dependency"], registry=r)
        self.pagespeed_in_flight_limit = Gauge(
            "leadlawk_pagespeed_in_flight_limit",
            "PageSpeed calls that may hold a slot now, sized from measured latency",
            registry=r,
        )
        self.pagespeed_latency = Gauge(
            "leadlawk_pagespeed_latency_seconds",
            "PageSpeed call latency, decaying percentile per strategy",
            ["strategy", "quantile"],
            registry=r,
        )
        self.pagespeed_latency_mean = Gauge(
            "leadlawk_pagespeed_latency_mean_seconds",
            "PageSpeed call latency, decaying mean per strategy: what the in-flight limit is sized from",
            ["strategy"],
            registry=r,
        )
        self.site_in_flight_limit = Gauge(
            "leadlawk_site_in_flight_limit",
            "Site reads that may run at once now, sized from their measured latency and the demand",
            registry=r,
        )
        self.site_latency_mean = Gauge(
            "leadlawk_site_latency_mean_seconds",
            "Site read latency, decaying mean: what the site in-flight limit is sized from",
            registry=r,
        )
        self.memory_limit = Gauge(
            "leadlawk_memory_limit_bytes", "Memory this process may use (0: unknown)", registry=r
        )
        self.browser_memory = Gauge(
            "leadlawk_browser_memory_bytes", "Proportional set size of the browser's processes", registry=r
        )
        # The egress pool (docs/egress-pool.md), labelled by the exit's name, never its URL.
        self.egress_state = Gauge(
            "leadlawk_egress_state", "Each Maps exit: 0 closed, 1 half-open, 2 open (cooling down)", ["egress"],
            registry=r,
        )
        self.egress_navigations = Counter(
            "leadlawk_egress_navigations", "Google Maps requests through each exit", ["egress"], registry=r
        )
        self.egress_blocks = Counter(
            "leadlawk_egress_blocks", "Blocks and proxy failures that opened or kept open an exit", ["egress"],
            registry=r,
        )
        # Deliveries (docs/deliveries.md): outcome delivered, retried (the destination down), dead
        # (refused: dead-lettered), skipped (nothing new and the schedule's deliver_empty false).
        self.deliveries = Counter(
            "leadlawk_deliveries", "Delivery attempts by destination and outcome", ["destination", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "leadlawk_delivery_latency_seconds",
            "From a delivery made (its job finished) to its destination having it",
            ["destination"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        # Schedules (docs/schedules.md): each due time's outcome, and how late a fire's job was queued.
        self.schedule_fires = Counter(
            "leadlawk_schedule_fires", "Due times of schedules by outcome (fired, skipped_overlap, missed, queued)",
            ["outcome"], registry=r,
        )
        self.schedule_fire_lag = Histogram(
            "leadlawk_schedule_fire_lag_seconds", "From a schedule's due time to its job queued (or its fire queued)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0), registry=r,
        )
        self.schedule_overdue = Gauge(
            "leadlawk_schedule_overdue_seconds",
            "How far past its due time the most overdue schedule is, as this daemon's firing loop last saw",
            registry=r,
        )
        self.asyncio_tasks = Gauge("leadlawk_asyncio_tasks", "asyncio tasks alive in the daemon's loop", registry=r)
        self.asyncio_tasks.set_function(_tasks_alive)

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)



def _tasks_alive() -> float:
    # Read at scrape time, on the loop's own thread (the HTTP handler); elsewhere there is no loop.
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:
        return 0.0


def memory_limit_bytes(configured_mb: int | None) -> int:
    """The configured limit, else the cgroup's (v2, then v1) when it is finite; 0 when unknown."""
    if configured_mb is not None:
        return configured_mb * 1024 * 1024
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:
            return int(raw)
    return 0
