"""What the deliveries tests share: settings with destinations, finished jobs with leads, a service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from actors.clock import Clock
from leadlawk_daemon.deliveries.service import DeliveryService
from leadlawk_daemon.dependencies import Dependencies
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import Settings, load_settings
from leadlawk_daemon.store import JobLead, Store
from leadlawk_daemon.store.sql_store import SqlStore

SECRET = "whsec-test-0123456789"
ENV = {"HOOK_SECRET": SECRET}


class Quiet:
    """An event sink that keeps what it hears."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, type: str, /, **context: Any) -> None:
        self.events.append((type, context))


def delivery_settings(tmp_path: Path, destinations: Mapping[str, Any], **deliveries: Any) -> Settings:
    config = {
        "destinations": dict(destinations),
        "deliveries": {"retry_base": "1s", "retry_max": "30s", "sweep_interval": "10s", **deliveries},
        "sites": {"allowed_networks": ["127.0.0.0/8"]},  # the inbox replica listens on loopback
        "resilience": {"circuit_breaker": {"failure_threshold": 3, "reset_timeout": "20s"}},
    }
    path = tmp_path / "deliveries.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_settings(path, environ=ENV)


def listing(n: int) -> Listing:
    return Listing(
        name=f"Business {n}",
        place_id=f"ChIJplace{n:04d}",
        rating=4.5,
        review_count=10 + n,
        website=f"https://business{n}.example/",
        phone=f"+1 402-555-{n:04d}",
    )


async def finished_job(
    store: Store,
    job_id: str,
    places: Sequence[int],
    *,
    notify: Sequence[str],
    unqualified: Sequence[int] = (),
    progress: Mapping[str, Any] | None = None,
) -> None:
    """A job that found ``places`` (qualified) and ``unqualified``, and succeeded."""
    spec: dict[str, Any] = {"id": job_id, "query": "plumbers", "location": "Omaha, NE"}
    if notify:  # as a validated spec stores it: no notify key at all for none
        spec["notify"] = list(notify)
    await store.create_job(job_id, spec)
    everything = [*places, *unqualified]
    if everything:
        await store.upsert_leads([listing(n) for n in everything])
    rows = [
        JobLead(str(listing(n).place_id), rank, n in places, [] if n in places else ["rating"])
        for rank, n in enumerate(everything, start=1)
    ]
    await store.upsert_job_leads(job_id, rows)
    job = await store.lease_next_job("test-owner", ttl_s=60)
    assert job is not None
    assert job.id == job_id
    await store.update_job(
        job_id, "test-owner", found=len(everything), qualified=len(places), progress=dict(progress or {})
    )
    assert await store.finish_job(job_id, "test-owner", "succeeded")


async def fired_by(
    store: Store, schedule_id: str, job_id: str, *, due_minute: int = 0, deliver_empty: bool = True
) -> None:
    """Record ``job_id`` as the fire of ``schedule_id`` due ``due_minute`` minutes from now, in the
    schedules' own tables (migration 006)."""
    assert isinstance(store, SqlStore)
    now = store._now()
    due = now + timedelta(minutes=due_minute)
    async with store.database.writing() as session:
        await session.execute(
            "INSERT INTO schedules (id, name, spec, cron, tz, deliver, deliver_empty, created_at, updated_at, "
            "next_due_at) VALUES ($1, $1, $2, '0 2 * * *', 'UTC', $3, $4, $5, $5, $5) ON CONFLICT (id) DO NOTHING",
            schedule_id,
            {"query": "plumbers"},
            ["hook"],
            deliver_empty,
            now,
        )
        await session.execute(
            "INSERT INTO schedule_fires (schedule_id, due_at, job_id, outcome, fired_at) "
            "VALUES ($1, $2, $3, 'fired', $2)",
            schedule_id,
            due,
            job_id,
        )


@asynccontextmanager
async def running_service(
    settings: Settings, store: Store, clock: Clock, metrics: Metrics | None = None
) -> AsyncIterator[DeliveryService]:
    """The deliveries service running on ``store`` until the block ends."""
    sink = Quiet()
    metrics = metrics or Metrics(process=False)
    service = DeliveryService(
        settings, store, EventBus(sink, clock=clock), metrics, clock, Dependencies(metrics, sink), secrets=ENV
    )
    ready = asyncio.Event()
    task = asyncio.create_task(service.run(ready.set))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield service
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
