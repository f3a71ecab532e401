"""The websites replica as an operator and a test see it: its routes, faults, ground truth,
determinism and variety."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from leadlawk_daemon.replicas.maps_business import generate_answer_set
from leadlawk_daemon.replicas.sites import SitesReplica, serve_sites_replica
from leadlawk_daemon.replicas.sites_content import answers, profile


@pytest.fixture
async def replica() -> AsyncIterator[SitesReplica]:
    async with serve_sites_replica(seed=5) as running:
        yield running


async def _call(replica: SitesReplica, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
        method, replica.base_url + path, json=body
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_answers_route_is_the_ground_truth(replica: SitesReplica) -> None:
    status, body = await _call(replica, "GET", "/_answers?site=acme.example&site=http://www.t-parked-x.example/")
    assert status == 200
    assert body["answers"] == [answers(profile("acme.example", 5)), answers(profile("t-parked-x.example", 5))]
    assert body["answers"][1]["status"] == "parked"
    assert (await _call(replica, "GET", "/_answers"))[0] == 400


async def test_faults_are_validated_listed_and_cleared(replica: SitesReplica) -> None:
    status, body = await _call(replica, "POST", "/_faults", {"hang": "sometimes", "nope": 1})
    assert status == 400
    assert "unknown fault 'nope'" in body["error"]
    assert "hang:" in body["error"]
    status, body = await _call(replica, "POST", "/_faults", {"server_error": 2, "hosts": ["a.example"]})
    assert status == 200
    assert body["active"]["server_error"] == 2
    assert set(body["available"]) == {"latency_ms", "server_error", "hang", "redirect_loop", "endless_body",
                                      "unreachable", "hosts"}
    assert (await _call(replica, "POST", "/_faults", {}))[1]["active"] == {}


async def test_a_counted_fault_runs_out(replica: SitesReplica) -> None:
    replica.faults.replace({"server_error": 1})
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(2):
            async with session.get("http://t-ok-a.example/", proxy=replica.base_url, allow_redirects=False) as response:
                statuses.append(response.status)
    assert statuses[0] == 503
    assert statuses[1] in (200, 301)


async def test_hosts_outside_example_get_the_proxys_502(replica: SitesReplica) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get("http://www.google.com/", proxy=replica.base_url) as response:
            assert response.status == 502
        with pytest.raises(aiohttp.ClientHttpProxyError) as raised:
            await session.get("https://www.google.com/", proxy=replica.base_url)
        assert raised.value.status == 502


async def test_the_ca_is_served_and_stats_reset(replica: SitesReplica) -> None:
    async with aiohttp.ClientSession() as session, session.get(replica.base_url + "/_ca") as response:
        assert (await response.read()).startswith(b"-----BEGIN CERTIFICATE-----")
    replica.requests["x.example"] = 3
    assert (await _call(replica, "POST", "/_stats/reset"))[1] == {"requests": {}, "peak_in_flight": {}}
    assert (await _call(replica, "GET", "/nowhere"))[0] == 404


def test_sites_are_deterministic_and_varied() -> None:
    hosts = [b.website.split("/")[2] for q in ("plumbers", "dentists", "roofers", "salons")
             for b in generate_answer_set(q, "Omaha, NE", 0, 120).businesses if b.website]
    assert [profile(h, 0) for h in hosts] == [profile(h, 0) for h in hosts]
    assert [profile(h, 0) for h in hosts] != [profile(h, 1) for h in hosts]
    kinds = Counter(profile(h, 0).kind for h in hosts)
    cms = Counter(profile(h, 0).cms for h in hosts)
    styles = Counter(e.style for h in hosts for e in profile(h, 0).emails)
    assert kinds["ok"] > len(hosts) / 2
    assert {"dns", "500", "parked", "badcert", "forbidden"} <= set(kinds)
    assert set(cms) == {"wordpress", "wix", "squarespace", "godaddy", "weebly", "shopify", "handwritten"}
    assert set(styles) == {"text", "mailto", "brackets", "parens", "entities", "cfemail", "jsonld"}
    assert any(not profile(h, 0).viewport for h in hosts)
    assert any(profile(h, 0).https for h in hosts)
    assert any((profile(h, 0).copyright or 9999) < 2015 for h in hosts)
