""" "Only new" across runs that return overlapping, shuffled subsets of an area, as Google does.

The Maps replica's ``partial`` fault makes every search a run listing a random 60 % of its answer
set, shuffled (replicas/maps_sampling.py). Each run's listing is read from the replica's own
results page and feed, as the scraper reads them, and stored as one scheduled job's qualified
leads; the runs then finish in another order than they fired. Every place any run listed is
delivered to the schedule once, and no place twice.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from actors.clock import FakeClock
from leadlawk_daemon.deliveries.service import DeliveryService
from leadlawk_daemon.dependencies import Dependencies
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.store import JobLead, Store, open_store
from tests.support.deliveries import ENV, Quiet, delivery_settings, fired_by

_PLACE = re.compile(r"!19s([A-Za-z0-9_-]{10,})")
RUNS = 5


@pytest.fixture
async def maps() -> AsyncIterator[str]:
    async with serve_maps_replica(seed=3, max_results=60, page_size=20) as url:
        yield url


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path / 'n.db'}", clock=FakeClock(), migrate=True) as opened:
        yield opened


async def one_run(client: aiohttp.ClientSession, base: str) -> list[str]:
    """The place ids one search lists, in order: its results page, then its feed to the end."""
    async with client.get(f"{base}/maps/search/{quote('plumbers in Omaha, NE')}") as page:
        html = await page.text()
    places = list(dict.fromkeys(_PLACE.findall(html)))
    offset = len(places)
    while True:
        query = {"q": "plumbers", "location": "Omaha, NE", "offset": str(offset)}
        async with client.get(f"{base}/maps/_feed", params=query) as feed:
            answer = await feed.json()
        places += [p for p in dict.fromkeys(_PLACE.findall(answer["html"])) if p not in places]
        if answer["end"] or answer["next_offset"] == offset:
            return places
        offset = answer["next_offset"]


async def test_new_holds_across_overlapping_shuffled_runs_finished_out_of_order(
    maps: str, store: Store, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{maps}/_faults", json={"partial": {"fraction": 0.6, "seed": 11}}) as answer:
            assert answer.status == 200
        runs = {f"night-{i}": await one_run(client, maps) for i in range(RUNS)}
        async with client.get(f"{maps}/_answers", params={"q": "plumbers", "location": "Omaha, NE"}) as answer:
            everything = {b["place_id"] for b in (await answer.json())["answers"]}

    # The runs are what gosom #295 saw: each a subset, none the same, in differing orders.
    listed = [set(places) for places in runs.values()]
    assert all(run < everything for run in listed)
    assert all(len(run) == round(len(everything) * 0.6) for run in listed)
    assert len({frozenset(run) for run in listed}) == RUNS
    assert len({tuple(places[:5]) for places in runs.values()}) == RUNS  # shuffled, not a fixed ranking

    for minute, (job_id, places) in enumerate(runs.items()):
        await store.create_job(job_id, {"id": job_id, "query": "plumbers", "notify": ["hook"]})
        await store.upsert_leads([Listing(name=f"Plumber {p[-6:]}", place_id=p) for p in places])
        await store.upsert_job_leads(job_id, [JobLead(p, rank, True, []) for rank, p in enumerate(places, 1)])
        job = await store.lease_next_job("owner", ttl_s=60)
        assert job is not None
        assert await store.finish_job(job_id, "owner", "succeeded")
        await fired_by(store, "omaha-plumbers", job_id, due_minute=minute)

    hook = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"}
    settings = delivery_settings(tmp_path, {"hook": hook})
    metrics, sink = Metrics(process=False), Quiet()
    service = DeliveryService(
        settings, store, EventBus(sink), metrics, FakeClock(), Dependencies(metrics, sink), secrets=ENV
    )
    delivered: list[str] = []
    seen: set[str] = set()
    for job_id in ["night-3", "night-0", "night-4", "night-1", "night-2"]:  # not the order they fired in
        (made,) = await service.make(job_id)
        assert set(made.leads) == set(runs[job_id]) - seen  # new: never delivered to this schedule before
        seen |= set(runs[job_id])
        delivered += made.leads
    assert len(delivered) == len(set(delivered)), "a lead was delivered twice to the schedule"
    assert set(delivered) == set().union(*listed), "a lead a run found was never delivered"
