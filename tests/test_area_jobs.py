"""Area jobs end to end through a real daemon: exact in-area ground truth once, SIGKILL, cancel, limit.

Real PostgreSQL and Chromium; Google is the Maps replica (its geography), served by this process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from leadlawk_daemon.maps.area import Circle
from leadlawk_daemon.maps.coverage import CoveragePlan
from tests.daemon_process import DaemonProcess
from tests.test_daemon_jobs import stored, wait_job
from tests.waiting import eventually

DOWNTOWN = {"center": [41.2565, -95.9345], "radius_km": 6}
CIRCLE = Circle(41.2565, -95.9345, 6.0)


pytestmark = [pytest.mark.browser, pytest.mark.maps_replica(seed=3)]


def env_for(maps_url: str, pagespeed_url: str, pg: str, per_minute: int = 6000) -> dict[str, str]:
    return {
        "DATABASE_URL": pg,
        "LEADLAWK__MAPS__BASE_URL": maps_url,
        "LEADLAWK__PAGESPEED__BASE_URL": pagespeed_url,
        "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": str(per_minute),
        "LEADLAWK__RESILIENCE__HEALTH_CHECK__INTERVAL": "500ms",
        "LEADLAWK__JOBS__HEARTBEAT": "1s",
        "LEADLAWK__JOBS__LEASE_TTL": "5s",
        "LEADLAWK__JOBS__PROGRESS_INTERVAL": "500ms",
        "LEADLAWK__DATABASE__COMMAND_TIMEOUT": "3s",
        "PAGESPEED_API_KEY": "AIzaTestKeyNeverLogged",
    }


def area_spec(job_id: str, query: str = "plumbers", **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "query": query, "location": "Omaha, NE", "coverage": "area", "area": DOWNTOWN,
            "limit": 10_000, "pagespeed": {"enabled": False}, **extra}


async def replica_get(maps_url: str, path: str, **params: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(maps_url + path, params=params) as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
        return body


async def in_area_truth(maps_url: str, query: str = "plumbers") -> set[str]:
    truth = await replica_get(maps_url, "/_answers", q=query, location="Omaha, NE", coverage="area")
    return {a["place_id"] for a in truth["answers"] if CIRCLE.contains(a["latitude"], a["longitude"])}


async def assert_stored_once(pg: str, job_id: str, expected: set[str]) -> None:
    """The job stored exactly ``expected``: nothing outside the area, nothing missing, nothing twice,
    and one ``leads`` row each."""
    leads, rows = await stored(pg, job_id)
    ids = [place_id for place_id, _ in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    assert sorted(leads) == sorted(ids)


async def persisted_progress(pg: str, job_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(pg)
    try:
        raw = await conn.fetchval("SELECT progress FROM jobs WHERE id = $1", job_id)
    finally:
        await conn.close()
    value = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return dict(value or {})


async def wait_cells(daemon: DaemonProcess, job_id: str, cells: int, within: float = 60.0) -> dict[str, Any]:
    async def searched() -> dict[str, Any] | None:
        code, job = await daemon.get(f"/jobs/{job_id}")
        area = (job.get("progress") or {}).get("area") if code == 200 else None
        return dict(area) if area and area.get("cells_done", 0) >= cells else None

    return await eventually(searched, within, f"job {job_id} searching {cells} cells", every=0.1)


async def test_an_area_job_stores_exactly_the_in_area_ground_truth_once(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str
) -> None:
    expected = await in_area_truth(maps_url)
    assert len(expected) > 120  # more than one search can hold
    async with DaemonProcess(tmp_path, env=env_for(maps_url, pagespeed_url, fresh_pg)) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        assert (await daemon.post("/jobs", area_spec("area-1")))[0] == 202
        job = await wait_job(daemon, "area-1")
    assert job["status"] == "succeeded", job
    await assert_stored_once(fresh_pg, "area-1", expected)
    progress = job["progress"]["area"]
    assert progress["cells_pending"] == 0
    assert progress["found"] == len(expected)
    stats = await replica_get(maps_url, "/_stats")
    assert set(stats["viewports"].values()) == {1}


async def test_an_area_job_killed_mid_area_resumes_without_revisiting_finished_cells(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str
) -> None:
    expected = await in_area_truth(maps_url, "dentists")
    env = env_for(maps_url, pagespeed_url, fresh_pg, per_minute=240)  # a search every 0.25 s
    daemon = DaemonProcess(tmp_path, env=env)
    async with daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        assert (await daemon.post("/jobs", area_spec("area-kill", "dentists")))[0] == 202
        await wait_cells(daemon, "area-kill", 4)
        daemon.kill()  # SIGKILL
    saved = (await persisted_progress(fresh_pg, "area-kill"))["area_plan"]
    plan = CoveragePlan.from_json(saved, seen=())
    assert plan.pending, "the job had finished before the kill"
    pending = {plan.viewport(cell).url_segment() for cell in plan.pending}
    before = dict((await replica_get(maps_url, "/_stats"))["viewports"])
    finished = {segment for segment in before if segment not in pending}
    assert finished, "no cell was persisted as finished before the kill"
    async with DaemonProcess(tmp_path, env=env, name="restarted") as again:
        await again.wait_status("/health/ready", 200, within=60)
        job = await wait_job(again, "area-kill")
    assert job["status"] == "succeeded", job
    after = (await replica_get(maps_url, "/_stats"))["viewports"]
    assert all(after[segment] == 1 for segment in finished), "a finished cell was searched again"
    await assert_stored_once(fresh_pg, "area-kill", expected)


async def test_cancelling_an_area_job_stops_it_within_five_seconds(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str
) -> None:
    env = env_for(maps_url, pagespeed_url, fresh_pg, per_minute=120)
    async with DaemonProcess(tmp_path, env=env) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        assert (await daemon.post("/jobs", area_spec("area-cancel", "dentists")))[0] == 202
        await wait_cells(daemon, "area-cancel", 1)
        asked = time.monotonic()
        assert (await daemon.post("/jobs/area-cancel/cancel"))[0] == 202
        job = await wait_job(daemon, "area-cancel", within=10)
        took = time.monotonic() - asked
        assert job["status"] == "cancelled"
        assert took < 5.0, f"cancel took {took:.1f}s"
        progress = job["progress"]["area"]
        assert progress["cells_pending"] > 0  # stopped mid-area, not run to its end


async def test_an_area_job_honours_its_limit(tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str) -> None:
    expected = await in_area_truth(maps_url)
    async with DaemonProcess(tmp_path, env=env_for(maps_url, pagespeed_url, fresh_pg)) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        assert (await daemon.post("/jobs", area_spec("area-limit", limit=130)))[0] == 202
        job = await wait_job(daemon, "area-limit")
    assert job["status"] == "succeeded", job
    _, rows = await stored(fresh_pg, "area-limit")
    ids = [place_id for place_id, _ in rows]
    assert len(ids) == len(set(ids)) == 130
    assert set(ids) <= expected


async def test_an_area_job_without_an_area_covers_the_locations_own_map(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str
) -> None:
    truth = await replica_get(maps_url, "/_answers", q="roofers", location="Lincoln, NE", coverage="area")
    expected = {a["place_id"] for a in truth["answers"]}
    assert len(expected) > 120
    spec = {"id": "area-all", "query": "roofers", "location": "Lincoln, NE", "coverage": "area", "limit": 10_000,
            "pagespeed": {"enabled": False}}
    async with DaemonProcess(tmp_path, env=env_for(maps_url, pagespeed_url, fresh_pg)) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        assert (await daemon.post("/jobs", spec))[0] == 202
        job = await wait_job(daemon, "area-all")
    assert job["status"] == "succeeded", job
    await assert_stored_once(fresh_pg, "area-all", expected)


async def test_an_area_job_waits_out_a_block_and_still_stores_exactly_the_ground_truth(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str
) -> None:
    expected = await in_area_truth(maps_url)
    async with DaemonProcess(tmp_path, env=env_for(maps_url, pagespeed_url, fresh_pg)) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        # The first searches meet Google's block page: an outage the job waits out, not a failure.
        async with aiohttp.ClientSession() as http, http.post(f"{maps_url}/_faults", json={"sorry": 3}) as response:
            assert response.status == 200
        assert (await daemon.post("/jobs", area_spec("area-sorry")))[0] == 202
        job = await wait_job(daemon, "area-sorry")
    assert job["status"] == "succeeded", job
    await assert_stored_once(fresh_pg, "area-sorry", expected)
    stats = await replica_get(maps_url, "/_stats")
    assert stats["requests"].get("sorry", 0) >= 1  # the block was met, through the Maps breaker
    assert set(stats["viewports"].values()) == {1}
