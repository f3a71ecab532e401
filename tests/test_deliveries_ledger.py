"""Deliveries made from finished jobs, on both backends: what is new to a schedule, once; the outbox."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from actors.clock import FakeClock
from leadlawk_daemon.deliveries.digest import digest_rows
from leadlawk_daemon.deliveries.ledger import delivery_id
from leadlawk_daemon.deliveries.service import DeliveryService
from leadlawk_daemon.dependencies import Dependencies
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store import Store, open_store
from tests.support.deliveries import ENV, Quiet, delivery_settings, finished_job, fired_by, listing
from tests.test_store import db_url  # noqa: F401  # the two backends, each test its own database


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:  # noqa: F811
    async with open_store(db_url, clock=FakeClock(), migrate=True) as opened:
        yield opened


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    hook = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"}
    drop = {"type": "file", "directory": str(tmp_path)}
    return delivery_settings(tmp_path, {"hook": hook, "drop": drop})


def service(settings: Settings, store: Store) -> DeliveryService:
    metrics, sink = Metrics(process=False), Quiet()
    return DeliveryService(
        settings, store, EventBus(sink), metrics, FakeClock(), Dependencies(metrics, sink), secrets=ENV
    )


async def test_an_ad_hoc_job_delivers_its_qualified_leads_once_per_destination(
    store: Store, settings: Settings
) -> None:
    progress = {"maps_view": "mixed", "filters_not_applied": {"count": 2, "reason": "review count hidden"}}
    await finished_job(store, "adhoc-1", [3, 1, 2], unqualified=[9], notify=["hook", "drop"], progress=progress)
    made = await service(settings, store).make("adhoc-1")
    assert sorted(d.destination for d in made) == ["drop", "hook"]
    for d in made:
        assert d.id == delivery_id("adhoc-1", d.destination)
        assert d.status == "pending"
        assert d.schedule_id is None
        assert d.leads == tuple(listing(n).place_id for n in (3, 1, 2))  # rank order, qualified only
        assert d.summary["found"] == 4
        assert d.summary["qualified"] == 3
        assert d.summary["new"] == 3
        assert d.summary["maps_view"] == "mixed"
        assert d.summary["filters_not_applied"]["count"] == 2
    # The outbox: made once, whoever asks again (the sweep, another daemon).
    assert await service(settings, store).make("adhoc-1") == []


async def test_the_sweep_finds_finished_jobs_whose_deliveries_were_never_made(store: Store, settings: Settings) -> None:
    await finished_job(store, "crashed-before-digest", [1], notify=["hook"])
    await finished_job(store, "no-notify", [2], notify=[])
    await store.create_job("still-queued", {"id": "still-queued", "query": "x", "notify": ["hook"]})
    ledger = service(settings, store).ledger
    assert await ledger.unmade() == ["crashed-before-digest"]
    await service(settings, store).make("crashed-before-digest")
    assert await ledger.unmade() == []


async def test_a_lead_is_new_to_a_schedule_once_whatever_order_its_runs_finish_in(
    store: Store, settings: Settings
) -> None:
    # Four runs of one schedule return overlapping, shuffled subsets of the same 30 places, as Google
    # does (gosom #295); they finish in an order other than the one they fired in.
    rng = random.Random(7)
    runs = {f"run-{i}": rng.sample(range(30), 18) for i in range(4)}
    for minute, (job_id, places) in enumerate(runs.items()):
        await finished_job(store, job_id, places, notify=["hook"])
        await fired_by(store, "nightly", job_id, due_minute=minute)
    # An ad-hoc job found some of them first: they are still new to the schedule.
    await finished_job(store, "adhoc", list(range(10)), notify=["hook"])
    await service(settings, store).make("adhoc")
    delivered: list[str] = []
    for job_id in ["run-2", "run-0", "run-3", "run-1"]:
        (made,) = await service(settings, store).make(job_id)
        assert made.schedule_id == "nightly"
        assert made.summary["new"] == len(made.leads)
        delivered += made.leads
    assert len(delivered) == len(set(delivered)), "a lead was delivered twice to one schedule"
    everything = {listing(n).place_id for places in runs.values() for n in places}
    assert set(delivered) == everything, "a lead found by a run was never delivered"
    assert await service(settings, store).ledger.ledger("nightly") == everything


async def test_nothing_new_still_delivers_the_summary_unless_deliver_empty_is_false(
    store: Store, settings: Settings
) -> None:
    for minute, (job_id, schedule, empty) in enumerate(
        [("a1", "loud", True), ("a2", "loud", True), ("b1", "quiet", False), ("b2", "quiet", False)]
    ):
        await finished_job(store, job_id, [1, 2], notify=["hook"])
        await fired_by(store, schedule, job_id, due_minute=minute, deliver_empty=empty)
    made = {job_id: (await service(settings, store).make(job_id))[0] for job_id in ("a1", "a2", "b1", "b2")}
    assert made["a2"].leads == ()
    assert made["a2"].status == "pending"
    assert made["a2"].summary["new"] == 0
    assert made["b2"].leads == ()
    assert made["b2"].status == "delivered"
    assert "skipped" in made["b2"].summary
    assert made["b1"].status == "pending"
    assert len(made["b1"].leads) == 2


async def test_concurrent_makers_of_one_job_make_one_delivery(store: Store, settings: Settings) -> None:
    await finished_job(store, "raced", [1, 2, 3], notify=["hook"])
    await fired_by(store, "s", "raced")
    results = await asyncio.gather(*(service(settings, store).make("raced") for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert len(await service(settings, store).ledger.list()) == 1


async def test_hurry_makes_a_waiting_delivery_due_unless_another_daemon_claimed_it(
    store: Store, settings: Settings
) -> None:
    await finished_job(store, "waits", [1], notify=["hook", "drop"])
    await service(settings, store).make("waits")
    ledger = service(settings, store).ledger
    waiting = {}
    for name in ("hook", "drop"):
        one = delivery_id("waits", name)
        assert await ledger.claim(one, hold_s=60)
        at = await ledger.retry_later(one, "answered 503", delay_s=300)
        assert at is not None
        waiting[one] = at
    assert await ledger.due(limit=10) == []
    # Another daemon claimed "drop" meanwhile (a claim moves its time): it keeps its claim.
    taken = delivery_id("waits", "drop")
    async with ledger.database.writing() as session:
        await session.execute(
            "UPDATE deliveries SET next_attempt_at = $2 WHERE id = $1", taken, waiting[taken] + timedelta(seconds=1)
        )
    assert await ledger.hurry(waiting) == 1
    assert [d.id for d in await ledger.due(limit=10)] == [delivery_id("waits", "hook")]


async def test_a_batch_delivers_once_as_its_parent_with_every_child_s_qualified_leads(
    store: Store, settings: Settings
) -> None:
    from leadlawk_daemon.jobspec import parse_job_spec
    from leadlawk_daemon.store import JobLead

    spec = parse_job_spec({"id": "batch", "queries": ["plumbers", "roofers"], "notify": ["hook"]}, 65_536)
    children = spec.children()
    assert all(not child.notify for child in children)  # the children deliver nothing of their own
    await store.create_batch(spec.id, spec.to_dict(), [(c.id, c.to_dict()) for c in children])
    await store.upsert_leads([listing(n) for n in (1, 2, 3)])
    for child, places in zip(children, ([1, 2], [2, 3]), strict=True):
        await store.upsert_job_leads(child.id, [JobLead(str(listing(n).place_id), i, True, []) for i, n in
                                                enumerate(places, 1)])  # fmt: skip
        job = await store.lease_next_job("owner", 60)
        assert job is not None
        assert await store.finish_job(job.id, "owner", "succeeded")
    await store.refresh_parent("batch")
    for child in children:
        assert await service(settings, store).make(child.id) == []
    (made,) = await service(settings, store).make("batch")
    assert sorted(made.leads) == sorted(str(listing(n).place_id) for n in (1, 2, 3))
    rows = await digest_rows(store, made)  # what is sent: the children's export rows, in the digest's order
    assert [row["place_id"] for row in rows] == list(made.leads)
    assert {row["name"] for row in rows} == {"Business 1", "Business 2", "Business 3"}
