"""The websites replica as an operator and a test see it: its routes, faults, ground truth,
determinism and variety; and its hostile mode: each shape as named, bounded, and a proxy that
never forwards to loopback or the metadata address."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import math
import re
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from leadlawk_daemon.replicas import sites_hostile
from leadlawk_daemon.replicas.maps_business import generate_answer_set
from leadlawk_daemon.replicas.sites import SitesReplica
from leadlawk_daemon.replicas.sites_content import answers, profile
from leadlawk_daemon.replicas.sites_hostile import (
    CHAIN_HOSTS,
    MANY,
    PATTERN_RUN,
    SHAPES,
    SPACE_RUN,
    forbidden_target,
    hostile_shape,
)

pytestmark = pytest.mark.sites_replica(seed=5)


async def _call(sites_replica: SitesReplica, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
        method, sites_replica.base_url + path, json=body
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_answers_route_is_the_ground_truth(sites_replica: SitesReplica) -> None:
    status, body = await _call(sites_replica, "GET", "/_answers?site=acme.example&site=http://www.t-parked-x.example/")
    assert status == 200
    ordinary = [answers(profile("acme.example", 5)), answers(profile("t-parked-x.example", 5))]
    assert [{k: v for k, v in a.items() if k not in ("hostile", "expect")} for a in body["answers"]] == ordinary
    assert body["answers"][1]["status"] == "parked"
    assert body["answers"][1]["hostile"] is None
    assert body["answers"][1]["expect"] == {"status": "parked", "reason": "parking page"}
    assert (await _call(sites_replica, "GET", "/_answers"))[0] == 400


async def test_faults_are_validated_listed_and_cleared(sites_replica: SitesReplica) -> None:
    status, body = await _call(sites_replica, "POST", "/_faults", {"hang": "sometimes", "nope": 1})
    assert status == 400
    assert "unknown fault 'nope'" in body["error"]
    assert "hang:" in body["error"]
    status, body = await _call(sites_replica, "POST", "/_faults", {"server_error": 2, "hosts": ["a.example"]})
    assert status == 200
    assert body["active"]["server_error"] == 2
    assert set(body["available"]) == {"latency_ms", "server_error", "hang", "redirect_loop", "endless_body",
                                      "unreachable", "hosts", "hostile", "chain_delay_ms"}
    status, body = await _call(sites_replica, "POST", "/_faults", {"hostile": 1.5})
    assert status == 400
    assert "hostile: expected a share of the sites from 0 to 1" in body["error"]
    assert (await _call(sites_replica, "POST", "/_faults", {}))[1]["active"] == {}


async def test_a_counted_fault_runs_out(sites_replica: SitesReplica) -> None:
    sites_replica.faults.replace({"server_error": 1})
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(2):
            async with session.get(
                "http://t-ok-a.example/", proxy=sites_replica.base_url, allow_redirects=False
            ) as response:
                statuses.append(response.status)
    assert statuses[0] == 503
    assert statuses[1] in (200, 301)


async def test_hosts_outside_example_get_the_proxys_502(sites_replica: SitesReplica) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get("http://www.google.com/", proxy=sites_replica.base_url) as response:
            assert response.status == 502
        with pytest.raises(aiohttp.ClientHttpProxyError) as raised:
            await session.get("https://www.google.com/", proxy=sites_replica.base_url)
        assert raised.value.status == 502


async def test_the_ca_is_served_and_stats_reset(sites_replica: SitesReplica) -> None:
    async with aiohttp.ClientSession() as session, session.get(sites_replica.base_url + "/_ca") as response:
        assert (await response.read()).startswith(b"-----BEGIN CERTIFICATE-----")
    sites_replica.requests["x.example"] = 3
    sites_replica.reached_forbidden["127.0.0.1"] = 1
    assert (await _call(sites_replica, "POST", "/_stats/reset"))[1] == {
        "requests": {}, "peak_in_flight": {}, "reached_forbidden": 0, "forbidden_targets": {}, "listener_requests": 0}
    assert (await _call(sites_replica, "GET", "/nowhere"))[0] == 404


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


# --- hostile mode -------------------------------------------------------------------------------

def _maps_hosts() -> list[str]:
    """The websites a scrape of the hostile job's search reads (compact listings show none)."""
    return sorted({b.website.split("/")[2] for b in generate_answer_set("plumbers", "Omaha, NE", 0, 300).businesses
                   if b.website and not b.compact})


def test_the_hostile_share_is_chosen_from_host_and_seed() -> None:
    hosts = _maps_hosts()
    chosen = {h: hostile_shape(h, 9, 0.2) for h in hosts}
    hostile = [h for h, shape in chosen.items() if shape is not None]
    assert 0.12 * len(hosts) < len(hostile) < 0.28 * len(hosts)
    assert chosen == {h: hostile_shape(h, 9, 0.2) for h in hosts}  # the same on every call
    assert {h: hostile_shape(h, 5, 0.2) for h in hosts} != chosen  # the seed decides
    assert set(chosen.values()) - {None} == set(SHAPES)  # tests/test_hostile_job.py meets every shape
    assert all(hostile_shape(h, 9, 0.0) is None for h in hosts)
    assert all(hostile_shape(h, 9, 1.0) is not None for h in hosts)
    assert hostile_shape("t-hostile-gzipbomb-a.example", 9, 0.0) == "gzip_bomb"  # forced by name


@pytest.mark.parametrize(("host", "address"), [
    ("127.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("[::ffff:127.0.0.1]", "127.0.0.1"), ("64:ff9b::7f00:1", "127.0.0.1"), ("localhost", "127.0.0.1"),
    ("api.localhost", "127.0.0.1"), ("169.254.169.254", "169.254.169.254"), ("10.1.2.3", "10.1.2.3"),
    ("100.64.0.1", "100.64.0.1"), ("::1", "::1"), ("8.8.8.8", None), ("acme.example", None), ("dead.beef", None),
])
def test_forbidden_targets_in_every_spelling(host: str, address: str | None) -> None:
    assert forbidden_target(host) == address


async def test_answers_name_each_hostile_shape_and_its_verdict(sites_replica: SitesReplica) -> None:
    hosts = _maps_hosts()[:60]
    assert (await _call(sites_replica, "POST", "/_faults", {"hostile": 0.5}))[0] == 200
    _, body = await _call(sites_replica, "GET", "/_answers?" + "&".join(f"site={h}" for h in hosts))
    named = {a["site"]: a for a in body["answers"]}
    for host in hosts:
        shape = hostile_shape(host, 5, 0.5)
        assert named[host]["hostile"] == shape
        if shape is not None:
            assert named[host]["expect"]["status"] == SHAPES[shape].status
            assert named[host]["status"] == SHAPES[shape].status
    _, body = await _call(sites_replica, "GET",
                          "/_answers?site=t-hostile-manyemails-a.example&site=t-hostile-trickle-b.example")
    assert [a["expect"] for a in body["answers"]] == [
        {"status": "ok", "reason": None, "capped": {"emails": MANY}},
        {"status": "dead", "reason": "timed out"},
    ]


async def _get(
    session: aiohttp.ClientSession, sites_replica: SitesReplica, url: str, **kw: Any
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with session.get(url, proxy=sites_replica.base_url, allow_redirects=False, **kw) as response:
        return response.status, response.headers, await response.read()


async def test_the_proxy_never_forwards_to_loopback_or_metadata(sites_replica: SitesReplica) -> None:
    port = sites_replica.listener_port
    relayed = [f"http://127.0.0.1:{port}/jobs", f"http://[::ffff:127.0.0.1]:{port}/", f"http://0x7f.1:{port}/",
               f"http://localhost:{port}/"]
    refused = ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", f"http://127.0.0.1:{port + 1}/"]
    async with aiohttp.ClientSession() as session:
        for url in relayed:  # as a daemon without an egress policy would ask for them
            status, _, body = await _get(session, sites_replica, url)
            assert (status, b'"jobs"' in body) == (200, True), url
        for url in refused:
            assert (await _get(session, sites_replica, url))[0] == 502, url
        with pytest.raises(aiohttp.ClientHttpProxyError) as raised:
            await session.get("https://169.254.169.254/latest/meta-data/", proxy=sites_replica.base_url)
        assert raised.value.status == 502
        async with session.get(sites_replica.listener_url + "/jobs") as response:  # straight to the listener
            assert response.status == 200
    _, stats = await _call(sites_replica, "GET", "/_stats")
    assert stats["reached_forbidden"] == len(relayed) + len(refused) + 1
    assert stats["forbidden_targets"]["169.254.169.254"] == 2
    assert stats["listener_requests"] == len(relayed) + 1


async def test_hostile_pages_are_what_they_are_named(
    sites_replica: SitesReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sites_hostile, "BOMB_BLOCKS", 16)  # a whole bomb, small enough to check its trailer
    sites_replica.faults.replace({"chain_delay_ms": 1})

    def site(shape: str) -> str:
        return f"http://t-hostile-{shape.replace('_', '')}-a.example"

    async with aiohttp.ClientSession() as session:
        _, _, quote = await _get(session, sites_replica, site("quote_run") + "/")
        assert b"'a" * PATTERN_RUN + b"@" in quote
        assert b"info@t-hostile-quoterun-a.example" in quote
        _, _, spaces = await _get(session, sites_replica, site("space_run") + "/")
        assert spaces.count(b" " * SPACE_RUN + b"[at]") == 6
        assert 230 * 1024 < len(spaces) < 300 * 1024
        _, _, emails = await _get(session, sites_replica, site("many_emails") + "/")
        assert len(set(re.findall(rb"staff\d+@t-hostile-manyemails-a\.example", emails))) == MANY
        _, _, tels = await _get(session, sites_replica, site("many_tels") + "/")
        assert len(set(re.findall(rb'href="tel:(\+\d+)"', tels))) == MANY
        status, headers, raw = await _get(session, sites_replica, site("gzip_bomb") + "/", auto_decompress=False)
        assert headers["Content-Encoding"] == "gzip"
        expanded = gzip.decompress(raw)  # a valid stream: its CRC and length are checked here
        assert len(expanded) > 16 * 2**20
        assert len(expanded) / len(raw) > 400  # what travels expands hundreds of times
        for shape, content_type in (("charset_rot13", "text/html; charset=rot13"),
                                    ("charset_base64", "text/html; charset=base64"), ("charset_zlib", "text/html")):
            _, headers, page = await _get(session, sites_replica, site(shape) + "/")
            assert headers["Content-Type"] == content_type
            assert (b'<meta charset="zlib">' in page) == (shape == "charset_zlib")
        for shape, target in (("redirect_loopback", f"127.0.0.1:{sites_replica.listener_port}/jobs"),
                              ("redirect_mapped", f"[::ffff:127.0.0.1]:{sites_replica.listener_port}/"),
                              ("redirect_hex", f"0x7f.1:{sites_replica.listener_port}/"),
                              ("redirect_localhost", f"localhost:{sites_replica.listener_port}/"),
                              ("redirect_metadata", "169.254.169.254/latest/meta-data/")):
            status, headers, _ = await _get(session, sites_replica, site(shape) + "/")
            assert (status, headers["Location"]) == (302, f"http://{target}")
        hops, url = [], site("redirect_chain") + "/"
        while True:
            host = url.split("/")[2]
            # each its own robots.txt
            assert (await _get(session, sites_replica, f"http://{host}/robots.txt"))[0] == 200
            hops.append(host)
            status, headers, _ = await _get(session, sites_replica, url)
            if status != 302:
                break
            url = headers["Location"]
        assert (len(set(hops)), status) == (CHAIN_HOSTS, 200)
        _, _, robots = await _get(session, sites_replica, site("robots_backtrack") + "/robots.txt")
        assert b"Disallow: /*a*a*a*a*a*a*a*a*a*a*a*a*b" in robots
        status, headers, _ = await _get(session, sites_replica, site("robots_backtrack") + "/")
        long_path = headers["Location"]
        assert (status, len(long_path)) == (301, 42)
        _, _, home = await _get(session, sites_replica, site("robots_backtrack") + long_path)
        contact = re.search(rb'href="([^"]+)">Contact', home)
        assert contact is not None
        _, _, page = await _get(session, sites_replica, site("robots_backtrack") + contact.group(1).decode())
        assert b"office@t-hostile-robotsbacktrack-a.example" in page


async def test_a_trickle_drips_and_the_replica_stays_responsive(sites_replica: SitesReplica) -> None:
    async with aiohttp.ClientSession() as session, session.get(
        "http://t-hostile-trickle-a.example/", proxy=sites_replica.base_url
    ) as response:
        assert response.status == 200  # the head comes at once...
        began = time.monotonic()
        first = await response.content.read(1)
        got = bytearray(first)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                while True:
                    got += await response.content.read(1)
        assert first == b"<"
        assert len(got) <= 1 + math.ceil(time.monotonic() - began)  # ...the body a byte a second
        status, _ = await _call(sites_replica, "GET", "/_stats")  # while it drips, the replica answers
        assert status == 200
