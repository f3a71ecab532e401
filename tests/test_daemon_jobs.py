"""Jobs end to end through a real daemon process: Redis pub/sub, the stream and HTTP in; PostgreSQL out.

Real PostgreSQL, Redis and Chromium; Google is the offline replicas, served by the test process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.replicas.pagespeed import serve_pagespeed_replica
from tests.conftest import REDIS_TEST_URL
from tests.daemon_process import DaemonProcess
from tests.waiting import eventually

MAX_RESULTS = 30


pytestmark = [
    pytest.mark.browser,
    pytest.mark.maps_replica(max_results=MAX_RESULTS),
    pytest.mark.pagespeed_replica(faults={"latency_ms": {"min": 20, "max": 80}}),
]


def daemon_env(maps_url: str, pagespeed_url: str, pg: str, prefix: str | None, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": pg,
        "LEADLAWK__MAPS__BASE_URL": maps_url,
        "LEADLAWK__PAGESPEED__BASE_URL": pagespeed_url,
        "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "6000",
        "LEADLAWK__RESILIENCE__HEALTH_CHECK__INTERVAL": "500ms",
        "LEADLAWK__JOBS__HEARTBEAT": "1s",
        "LEADLAWK__JOBS__LEASE_TTL": "5s",
        "LEADLAWK__DATABASE__COMMAND_TIMEOUT": "3s",  # under jobs.lease_ttl, as the settings require
        "LEADLAWK__CHAOS__ENABLED": "true",
        "PAGESPEED_API_KEY": "AIzaTestKeyNeverLogged",
        **extra,
    }
    if prefix is not None:
        env["REDIS_URL"] = REDIS_TEST_URL
        env["LEADLAWK__REDIS__PREFIX"] = prefix
    return env


async def answers(maps_url: str, query: str, location: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(
        f"{maps_url}/_answers", params={"q": query, "location": location}
    ) as response:
        body = await response.json()
    result: list[dict[str, Any]] = body["answers"]
    return result


async def wait_job(daemon: DaemonProcess, job_id: str, within: float = 90.0) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        code, job = await daemon.get(f"/jobs/{job_id}")
        return dict(job) if code == 200 and job["status"] in ("succeeded", "failed", "cancelled", "partial") else None

    return await eventually(finished, within, lambda: f"job {job_id} finished (log:\n{daemon.log_text()[-3000:]})",
                            every=0.2)


async def stored(pg: str, job_id: str) -> tuple[list[str], list[tuple[str, int]]]:
    """The place_ids in ``leads`` for this job's rows, and the job's (place_id, rank) rows."""
    conn = await asyncpg.connect(pg)
    try:
        job_rows = await conn.fetch("SELECT place_id, rank FROM job_leads WHERE job_id = $1 ORDER BY rank", job_id)
        ids = [r["place_id"] for r in job_rows]
        leads = await conn.fetch("SELECT place_id FROM leads WHERE place_id = ANY($1::text[])", ids)
    finally:
        await conn.close()
    return [r["place_id"] for r in leads], [(r["place_id"], r["rank"]) for r in job_rows]


async def assert_exact_answer_set(pg: str, maps_url: str, job_id: str, query: str, location: str) -> None:
    expected = [a["place_id"] for a in await answers(maps_url, query, location)]
    leads, job_rows = await stored(pg, job_id)
    assert [place_id for place_id, _ in job_rows] == expected  # in feed order, none missing, none extra
    assert [rank for _, rank in job_rows] == list(range(1, len(expected) + 1))
    assert sorted(leads) == sorted(expected)  # one row per business


async def test_jobs_over_pubsub_stream_and_http_each_yield_the_answer_set(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    env = daemon_env(maps_url, pagespeed_url, fresh_pg, redis_prefix)
    async with DaemonProcess(tmp_path, env=env) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        specs = {
            "via-pubsub": {"id": "via-pubsub", "query": "plumbers", "location": "Omaha, NE", "limit": 100},
            "via-stream": {"id": "via-stream", "query": "roofers", "location": "Lincoln, NE", "limit": 100},
            "via-http": {"id": "via-http", "query": "painters", "location": "Omaha, NE", "limit": 100},
        }
        await eventually(lambda: True)
        # Pub/sub is fire-and-forget: publish until a subscriber (the daemon) received it.
        receivers = await redis_client.publish(f"{redis_prefix}:jobs", orjson.dumps(specs["via-pubsub"]))
        assert receivers == 1
        await redis_client.xadd(f"{redis_prefix}:jobs:stream", {"job": orjson.dumps(specs["via-stream"])})
        code, body = await daemon.post("/jobs", specs["via-http"])
        assert (code, body["id"]) == (202, "via-http")
        for job_id, spec in specs.items():
            job = await wait_job(daemon, job_id)
            assert job["status"] == "succeeded", job
            assert job["counters"]["found"] == MAX_RESULTS
            assert job["counters"]["written"] == MAX_RESULTS
            await assert_exact_answer_set(fresh_pg, maps_url, job_id, str(spec["query"]), str(spec["location"]))
        # The same id again runs once: nothing new is created.
        code, body = await daemon.post("/jobs", specs["via-http"])
        assert (code, body["created"]) == (202, False)
        code, text = await daemon.get("/metrics")
        assert 'leadlawk_leads_total{stage="written"}' in text
    assert "AIzaTestKeyNeverLogged" not in daemon.log_text()


async def test_cancel_stops_a_running_job_within_5_s(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str
) -> None:
    # Slow the replica so that the job is surely still running when it is cancelled.
    async with aiohttp.ClientSession() as http, http.post(f"{maps_url}/_faults", json={"slow_ms": 400}) as r:
        assert r.status == 200
    env = daemon_env(maps_url, pagespeed_url, fresh_pg, None)
    async with DaemonProcess(tmp_path, env=env) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        code, _ = await daemon.post("/jobs", {"id": "to-cancel", "query": "dentists", "location": "Omaha, NE"})
        assert code == 202
        async def running() -> bool:
            return bool((await daemon.get("/jobs/to-cancel"))[1]["status"] == "running")

        await eventually(running, 30, "the job running", every=0.05)
        asked = time.monotonic()
        code, _ = await daemon.post("/jobs/to-cancel/cancel")
        assert code == 202
        job = await wait_job(daemon, "to-cancel", within=5.0)
        assert time.monotonic() - asked < 5.0
        assert job["status"] == "cancelled"
        leads, job_rows = await stored(fresh_pg, "to-cancel")
        assert job["counters"]["written"] == len(job_rows)
        assert len(leads) == len(job_rows) < MAX_RESULTS
        code, _ = await daemon.post("/jobs/nope/cancel")
        assert code == 404


async def test_two_daemons_share_ten_jobs_each_run_exactly_once(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    env = daemon_env(maps_url, pagespeed_url, fresh_pg, redis_prefix, LEADLAWK__BROWSER__PAGES="1")
    first = DaemonProcess(tmp_path, env=env, name="first")
    second = DaemonProcess(tmp_path, env=env, name="second")
    async with first, second:
        await first.wait_status("/health/ready", 200, within=60)
        await second.wait_status("/health/ready", 200, within=60)
        towns = ["Omaha, NE", "Lincoln, NE", "Des Moines, IA", "Kansas City, MO", "Denver, CO"]
        jobs = {f"shared-{i}": ("electricians" if i % 2 else "bakeries", towns[i // 2]) for i in range(10)}
        for job_id, (query, location) in jobs.items():
            spec = {"id": job_id, "query": query, "location": location, "limit": 10,
                    "pagespeed": {"enabled": False}}
            await redis_client.xadd(f"{redis_prefix}:jobs:stream", {"job": orjson.dumps(spec)})
        for job_id in jobs:
            job = await wait_job(first, job_id, within=120)
            assert job["status"] == "succeeded", job
            assert job["attempts"] == 1  # leased once, by one daemon
        started = [
            e.get("job_id") for d in (first, second) for e in d.log_lines() if e.get("event") == "job started"
        ]
        assert sorted(j for j in started if j) == sorted(jobs)
        conn = await asyncpg.connect(fresh_pg)
        try:
            rows = await conn.fetch("SELECT job_id, count(*) AS n, count(DISTINCT place_id) AS d FROM job_leads "
                                    "GROUP BY job_id")
        finally:
            await conn.close()
        assert {r["job_id"]: (r["n"], r["d"]) for r in rows} == {j: (10, 10) for j in jobs}


job_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
invalid_specs = st.one_of(
    job_values.map(lambda v: orjson.dumps(v)),  # any JSON at all: almost never a valid spec
    st.binary(max_size=200),  # not JSON, maybe not UTF-8
    st.fixed_dictionaries(
        {"query": st.text(min_size=1, max_size=20)},
        optional={"limit": st.integers(501, 10**9) | st.text(max_size=5), "website": st.text(max_size=5),
                  "bogus_field": job_values},
    ).filter(lambda d: len(d) > 1).map(lambda d: orjson.dumps(d)),
    st.integers(65_537, 70_000).map(lambda n: b'{"query": "' + b"x" * n + b'"}'),  # over 64 KiB
)


async def test_fuzzed_messages_never_hurt_the_daemon(tmp_path: Path, fresh_pg: str, redis_prefix: str) -> None:
    """Thousands of generated messages into the channel and the stream: the daemon stays live and
    ready, every invalid one is dead-lettered with a reason, every valid one runs."""
    from leadlawk_daemon.jobspec import JobSpecError, parse_job_spec

    invalid_sent = 0
    pubsub_payloads: set[bytes] = set()

    def fuzz_in_a_thread() -> None:
        import redis as sync_redis

        client = sync_redis.Redis.from_url(REDIS_TEST_URL)

        @settings(max_examples=700, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(batch=st.lists(invalid_specs, min_size=2, max_size=8), via_stream=st.booleans())
        def send(batch: list[bytes], via_stream: bool) -> None:
            nonlocal invalid_sent
            for raw in batch:
                try:
                    parse_job_spec(raw, 65_536)
                    continue  # a valid spec by chance: the known valid ones are sent below
                except JobSpecError:
                    pass
                if via_stream:
                    client.xadd(f"{redis_prefix}:jobs:stream", {"job": raw})
                    invalid_sent += 1
                elif raw not in pubsub_payloads:
                    # Pub/sub claims each distinct message once across daemons: repeats are one message.
                    pubsub_payloads.add(raw)
                    client.publish(f"{redis_prefix}:jobs", raw)
                    invalid_sent += 1

        try:
            send()
        finally:
            client.close()

    valid = [orjson.dumps({"id": f"fuzz-ok-{i}", "query": f"florists {i}", "location": "Omaha, NE", "limit": 2,
                           "pagespeed": {"enabled": False}}) for i in range(6)]
    redis = aioredis.Redis.from_url(REDIS_TEST_URL)
    try:
        async with serve_maps_replica("127.0.0.1", 0, max_results=5) as maps_url, serve_pagespeed_replica(
            "127.0.0.1", 0
        ) as psi_url, DaemonProcess(tmp_path, env=daemon_env(maps_url, psi_url, fresh_pg, redis_prefix)) as daemon:
            await daemon.wait_status("/health/ready", 200, within=60)
            await asyncio.to_thread(fuzz_in_a_thread)
            assert invalid_sent > 1000
            for i, raw in enumerate(valid):
                if i % 2:
                    await redis.xadd(f"{redis_prefix}:jobs:stream", {"job": raw})
                else:
                    await redis.publish(f"{redis_prefix}:jobs", raw)
            for i in range(len(valid)):
                job = await wait_job(daemon, f"fuzz-ok-{i}", within=120)
                assert job["status"] == "succeeded", job
            conn = await asyncpg.connect(fresh_pg)
            try:
                async def letters() -> int:
                    value = await conn.fetchval("SELECT count(*) FROM dead_letters WHERE kind = 'message'")
                    return int(value)

                lettered = 0

                async def all_lettered() -> bool:
                    nonlocal lettered
                    lettered = await letters()
                    return lettered >= invalid_sent

                await eventually(
                    all_lettered, 60, lambda: f"all dead-lettered ({lettered} of {invalid_sent})", every=0.2
                )
                assert await letters() == invalid_sent
                assert await conn.fetchval("SELECT count(*) FROM dead_letters WHERE reason = ''") == 0
            finally:
                await conn.close()
            assert (await daemon.get("/health/live"))[0] == 200
            assert (await daemon.get("/health/ready"))[0] == 200
            assert "Traceback" not in daemon.log_text()
    finally:
        await redis.aclose()
