"""Per-actor counters kept as plain numbers on the hot path and read by Prometheus at scrape time.

A ``prometheus_client`` call per message would cost more than our trivial handlers do; a
collector that reads these fields when ``/metrics`` is scraped costs nothing in between.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS", "ActorStats", "ActorStatsCollector", "Outcome"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
)

_FIRST_BUCKET = LATENCY_BUCKETS[0]


class Outcome:
    OK = "ok"  # handled
    FAILED = "failed"  # the handler crashed; the message was redelivered
    DEAD_LETTERED = "dead_lettered"  # crashed on its last attempt
    REJECTED = "rejected"  # refused at the door: the mailbox stayed full


@dataclass(slots=True)
class ActorStats:
    name: str
    ok: int = 0
    failed: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    restarts: int = 0
    latency_sum: float = 0.0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))

    def handled(self, seconds: float) -> None:
        """One message handled in ``seconds``: counted ok, and its latency observed."""
        self.ok += 1
        # Most handlings in the runtime's hot path fit the first bucket: no search for those.
        self.latency_counts[0 if seconds <= _FIRST_BUCKET else bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


class ActorStatsCollector(Collector):
    """Exports every registered actor's stats and its mailbox's depth and capacity."""

    def __init__(self, actors: Callable[[], Iterable[tuple[ActorStats, int, int]]]) -> None:
        self._actors = actors

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        messages = CounterMetricFamily(
            "leadlawk_actor_messages", "Messages by actor and outcome", labels=["actor", "outcome"]
        )
        restarts = CounterMetricFamily("leadlawk_actor_restarts", "Actor restarts", labels=["actor"])
        depth = GaugeMetricFamily(
            "leadlawk_mailbox_depth", "Messages accepted and not finished", labels=["actor"]
        )
        capacity = GaugeMetricFamily("leadlawk_mailbox_capacity", "Mailbox capacity", labels=["actor"])
        latency = HistogramMetricFamily(
            "leadlawk_actor_handle_seconds", "Time to handle one message", labels=["actor"]
        )
        for stats, mailbox_depth, mailbox_capacity in self._actors():
            for outcome in (Outcome.OK, Outcome.FAILED, Outcome.DEAD_LETTERED, Outcome.REJECTED):
                messages.add_metric([stats.name, outcome], getattr(stats, outcome))
            restarts.add_metric([stats.name], stats.restarts)
            depth.add_metric([stats.name], mailbox_depth)
            capacity.add_metric([stats.name], mailbox_capacity)
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), stats.latency_counts, strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            latency.add_metric([stats.name], buckets, stats.latency_sum)
        yield from (messages, restarts, depth, capacity, latency)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)
