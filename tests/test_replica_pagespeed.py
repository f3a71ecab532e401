"""The PageSpeed stand-in, over HTTP: Google's shapes, determinism, faults, quotas, stats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from actors.clock import FakeClock
from leadlawk_daemon.pagespeed.client import API_PATH
from leadlawk_daemon.replicas.pagespeed import PageSpeedReplica, serve_pagespeed_replica


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def run(
    session: aiohttp.ClientSession, base: str, url: str, strategy: str = "mobile"
) -> tuple[int, Any]:
    async with session.get(base + API_PATH, params={"url": url, "strategy": strategy, "key": "k"}) as r:
        text = await r.text()
        try:
            return r.status, await r.json(content_type=None)
        except ValueError:
            return r.status, text


async def test_same_url_same_scores_across_instances_and_seeds_differ(session: aiohttp.ClientSession) -> None:
    bodies = []
    for seed in (1, 1, 2):
        async with serve_pagespeed_replica(seed=seed) as base:
            status, body = await run(session, base, "https://plumber.example/")
            assert status == 200
            bodies.append(body)
    scores = [{k: v["score"] for k, v in b["lighthouseResult"]["categories"].items()} for b in bodies]
    assert scores[0] == scores[1]
    assert scores[0] != scores[2]
    lighthouse = bodies[0]["lighthouseResult"]
    assert set(lighthouse["categories"]) == {"performance", "accessibility", "best-practices", "seo"}
    for audit_id in ("first-contentful-paint", "largest-contentful-paint", "total-blocking-time",
                     "cumulative-layout-shift", "speed-index", "interactive"):  # fmt: skip
        assert isinstance(lighthouse["audits"][audit_id]["numericValue"], float)
    assert lighthouse["finalUrl"].startswith("http")


async def test_some_sites_have_field_data_and_some_do_not(session: aiohttp.ClientSession) -> None:
    async with serve_pagespeed_replica(seed=3) as base:
        with_field = 0
        for n in range(30):
            _, body = await run(session, base, f"https://site{n}.example/")
            metrics = body["loadingExperience"].get("metrics")
            if metrics:
                with_field += 1
                assert body["loadingExperience"]["overall_category"] in ("FAST", "AVERAGE", "SLOW")
                assert isinstance(metrics["LARGEST_CONTENTFUL_PAINT_MS"]["percentile"], int)
    assert 5 < with_field < 29


async def test_faults_switch_on_list_and_clear(session: aiohttp.ClientSession) -> None:
    async with serve_pagespeed_replica() as base:
        async with session.post(base + "/_faults", json={"server_error": 1, "malformed": 1}) as r:
            assert r.status == 200
        async with session.get(base + "/_faults") as r:
            assert (await r.json())["active"] == {"server_error": 1, "malformed": 1}
        assert (await run(session, base, "https://a.example/"))[0] in (500, 503)
        status, text = await run(session, base, "https://a.example/")
        assert status == 200
        assert isinstance(text, str)
        assert (await run(session, base, "https://a.example/"))[0] == 200
        async with session.post(base + "/_faults", json={"latency_ms": "slow", "nope": 1}) as r:
            assert r.status == 400
            error = (await r.json())["error"]
            assert "latency_ms" in error
            assert "nope" in error
        async with session.post(base + "/_faults", json={}) as r:
            assert (await r.json())["active"] == {}


async def test_lighthouse_errors_by_url_substring(session: aiohttp.ClientSession) -> None:
    async with serve_pagespeed_replica() as base:
        faults = {"lighthouse_errors": {"dead": "FAILED_DOCUMENT_REQUEST", "nxdomain": "DNS_FAILURE"}}
        async with session.post(base + "/_faults", json=faults):
            pass
        status, body = await run(session, base, "https://dead.example/")
        assert status == 500
        assert body["error"]["message"].startswith("Lighthouse returned error: FAILED_DOCUMENT_REQUEST")
        status, body = await run(session, base, "https://nxdomain.example/")
        assert status == 400
        assert (await run(session, base, "https://fine.example/"))[0] == 200
        async with session.post(base + "/_faults", json={**faults, "lighthouse_error_as": "runtime"}):
            pass
        status, body = await run(session, base, "https://dead.example/")
        assert status == 200
        assert body["lighthouseResult"]["runtimeError"]["code"] == "FAILED_DOCUMENT_REQUEST"


async def test_quotas_answer_with_googles_429_and_stats_count_them(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    replica = PageSpeedReplica(clock=clock, quota_per_window=2, window_s=100, quota_per_day=3)
    async with serve_pagespeed_replica(replica=replica) as base:
        assert [(await run(session, base, f"https://q{n}.example/"))[0] for n in range(2)] == [200, 200]
        status, body = await run(session, base, "https://q3.example/")
        assert status == 429
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert "limit 'Queries per 100 seconds'" in body["error"]["message"]
        await clock.advance(100)
        assert (await run(session, base, "https://q4.example/"))[0] == 200
        status, body = await run(session, base, "https://q5.example/")
        assert status == 429
        assert "Queries per day" in body["error"]["message"]
        assert body["error"]["details"][0]["metadata"]["quota_limit_value"] == "3"
        async with session.get(base + "/_stats") as r:
            stats = await r.json()
        assert stats["requests"] == 5
        assert stats["status_429"] == 2
        assert stats["status_429_window"] == 1
        assert stats["status_429_day"] == 1
        assert stats["max_in_window"] == 3


async def test_bad_requests_are_answered_like_google(session: aiohttp.ClientSession) -> None:
    async with serve_pagespeed_replica() as base:
        status, body = await run(session, base, "not a url")
        assert status == 400
        assert body["error"]["status"] == "INVALID_ARGUMENT"
        async with session.post(base + "/_faults", json={"require_key": "right"}):
            pass
        status, body = await run(session, base, "https://a.example/")
        assert status == 400
        assert "API key not valid" in body["error"]["message"]
