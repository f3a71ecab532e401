"""The one admission: the queue bound, the counts and events every path shares, content-derived ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leadlawk_daemon.intake.admission import Admission, QueueFull, content_id
from leadlawk_daemon.jobspec import parse_job_spec
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import open_store


class Announced:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, type: Any, /, **context: Any) -> None:
        self.events.append((type, context))


def queued(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("leadlawk_jobs_total", {"status": "queued"}) or 0.0


async def test_every_path_is_bounded_counted_and_announced_alike(tmp_path: Path) -> None:
    settings = load_settings(environ={"LEADLAWK__RESILIENCE__BULKHEAD__QUEUE_SIZE": "3"})
    metrics, announced = Metrics(process=False), Announced()
    async with open_store(f"sqlite:///{tmp_path / 'a.db'}", migrate=True) as store:
        admission = Admission.from_settings(settings, store, announced, metrics)
        http = await admission.admit_spec(parse_job_spec({"id": "from-http", "query": "a"}, 65536), "http")
        cli = await admission.admit_spec(parse_job_spec({"id": "from-cli", "query": "b"}, 65536), "cli")
        stream = await admission.admit(b'{"query": "c"}', "stream", delivery="1700000000000-0")
        assert [a.outcome for a in (http, cli, stream)] == ["accepted"] * 3
        assert queued(metrics) == 3
        assert [(t, c["source"]) for t, c in announced.events] == [
            ("job.accepted", "http"),
            ("job.accepted", "cli"),
            ("job.accepted", "stream"),
        ]
        for source in ("http", "cli", "pubsub"):
            with pytest.raises(QueueFull, match=r"3 jobs are waiting.*queue_size is 3"):
                await admission.admit_spec(parse_job_spec({"query": "d"}, 65536), source)
        with pytest.raises(QueueFull):
            await admission.admit(b'{"query": "e"}', "stream", delivery="1700000000000-1")
        assert await store.count_jobs("queued") == 3  # nothing refused was written
        assert queued(metrics) == 3
        refused = metrics.registry.get_sample_value("leadlawk_jobs_total", {"status": "refused"})
        assert refused == 4


def test_a_content_id_is_the_same_for_one_delivery_and_differs_across_deliveries() -> None:
    spec = parse_job_spec({"query": "plumbers", "location": "Omaha, NE", "limit": 20}, 65536)
    reordered = parse_job_spec({"limit": 20, "location": "Omaha, NE", "query": "plumbers"}, 65536)
    assert spec.id != reordered.id  # parsing alone mints random ids
    assert content_id(spec, "1700000000000-0") == content_id(reordered, "1700000000000-0")
    assert content_id(spec, "1700000000000-0") != content_id(spec, "1700000000000-1")
    other = parse_job_spec({"query": "roofers", "location": "Omaha, NE", "limit": 20}, 65536)
    assert content_id(spec, "1700000000000-0") != content_id(other, "1700000000000-0")
    batch = parse_job_spec({"queries": [f"q{i}" for i in range(10)], "locations": [f"l{i}" for i in range(100)]}, 65536)
    derived = content_id(batch, "1700000000000-0")
    assert len(f"{derived}.999") <= 64  # a batch's children's ids still fit


async def test_a_spec_with_its_own_id_keeps_it_whatever_the_delivery(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'b.db'}", migrate=True) as store:
        admission = Admission(store, store, Announced(), max_bytes=65536)
        first = await admission.admit(b'{"id": "client-key", "query": "a"}', "stream", delivery="1-0")
        again = await admission.admit(b'{"id": "client-key", "query": "a"}', "stream", delivery="2-0")
    assert (first.outcome, first.job_id) == ("accepted", "client-key")
    assert (again.outcome, again.job_id) == ("duplicate", "client-key")


async def test_every_path_holds_area_jobs_to_the_configured_maximum(tmp_path: Path) -> None:
    settings = load_settings(environ={"LEADLAWK__MAPS__MAX_AREA_KM2": "50"})
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}", migrate=True) as store:
        admission = Admission.from_settings(settings, store, Announced())
        # About 11 km by 8 km: some 90 km², over this daemon's 50.
        spec = b'{"query": "plumbers", "coverage": "area", "area": {"bbox": [41.2, -96.0, 41.3, -95.9]}}'
        admitted = await admission.admit(spec, "stream", delivery="1-0")
    assert admitted.outcome == "rejected"
    assert admitted.problems == ("area: covers 93 km², more than the configured maximum of 50 km² (maps.max_area_km2)",)
