"""The egress pool end to end: a real daemon, Chromium, the Maps replica's per-client rate limit and
the local proxies replica as four exits.

* An area job through four exits, one of them rate-limited hard halfway: the job succeeds with
  exactly the area's businesses once, the blocked exit cools down and comes back, and the Google
  Maps breaker never opens.
* Each proxy fault (down, auth refused, slow, resetting) is that exit's outage: it opens, the job
  goes on through the others.
* No credential appears in any log line, event, metric, /fleet entry or ``config show``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from leadlawk_daemon.replicas.proxy import ProxyFleet
from tests.conftest import REDIS_TEST_URL
from tests.daemon_process import DaemonProcess
from tests.test_area_jobs import area_spec, assert_stored_once, env_for, in_area_truth, replica_get, wait_cells
from tests.test_daemon_jobs import wait_job
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
# Minutes of several Chromiums per daemon: make chaos runs these, make check does not (mark long).
pytestmark = [pytest.mark.browser, pytest.mark.long, pytest.mark.maps_replica(seed=3)]

PASSWORD = "exit-pw-" + os.urandom(6).hex()
PER_MINUTE = 40  # each exit's budget: a navigation every 1.5 s
MARGIN = 4  # the replica's limit, just over the budget
QUERY = "dentists"  # 555 in the area: enough cells for an exit to cool down and come back


@pytest.fixture
async def proxies() -> AsyncIterator[ProxyFleet]:
    async with ProxyFleet(4, password=PASSWORD) as fleet:
        yield fleet


def egress_env(maps_url: str, pagespeed_url: str, pg: str, fleet: ProxyFleet) -> dict[str, str]:
    exits = [{"url": p.url_with("${EXIT_PASSWORD}"), "name": f"exit{p.index}"} for p in fleet.proxies]
    return {
        **env_for(maps_url, pagespeed_url, pg, per_minute=PER_MINUTE),
        "LEADLAWK__MAPS__EGRESS": json.dumps(exits),
        "LEADLAWK__MAPS__EGRESS_COOLDOWN": "1s",
        "LEADLAWK__MAPS__EGRESS_MAX_COOLDOWN": "4s",
        "LEADLAWK__BROWSER__PAGES": "1",
        "EXIT_PASSWORD": PASSWORD,
    }


async def set_faults(maps_url: str, faults: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{maps_url}/_faults", json=faults) as response:
        assert response.status == 200, await response.text()


def exits_of(ready: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["egress"]: e for e in ready["egress"]}


def breaker_opened(daemon: DaemonProcess) -> bool:
    return any(
        line.get("event") == "circuit breaker changed" and line.get("breaker") == "google_maps"
        for line in daemon.log_lines()
    )


def config_show(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return leadlawk(env, "config", "show")


def leadlawk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )


def assert_no_credentials(text: str) -> None:
    assert PASSWORD not in text
    assert "exit2:" not in text  # the user name beside a password, as userinfo


@pytest.mark.timeout(400)
async def test_an_area_job_through_four_exits_survives_one_rate_limited_hard(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str, proxies: ProxyFleet
) -> None:
    expected = await in_area_truth(maps_url, QUERY)
    await set_faults(maps_url, {"rate_limit": {"per_minute": PER_MINUTE + MARGIN, "cooldown_s": 5}})
    async with DaemonProcess(tmp_path, env=egress_env(maps_url, pagespeed_url, fresh_pg, proxies)) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        assert (await daemon.post("/jobs", area_spec("egress-1", QUERY)))[0] == 202
        await wait_cells(daemon, "egress-1", 4)
        # Halfway: exit1 (127.0.0.12) is rate-limited hard: /sorry/ at once, for 5 s.
        hard = {"per_minute": 1, "cooldown_s": 4}
        await set_faults(
            maps_url,
            {"rate_limit": {"per_minute": PER_MINUTE + MARGIN, "cooldown_s": 5, "clients": {"127.0.0.12": hard}}},
        )

        async def exit1_open() -> bool:
            _code, body = await daemon.get("/health/ready")
            return exits_of(body).get("exit1", {}).get("state") == "open"

        await eventually(exit1_open, 60, "exit1 opened by its block")
        blocked_at = (await replica_get(maps_url, "/_stats"))["clients"]["127.0.0.12"]["navigations"]
        await set_faults(maps_url, {"rate_limit": {"per_minute": PER_MINUTE + MARGIN, "cooldown_s": 5}})

        async def exit1_back() -> bool:
            _code, body = await daemon.get("/health/ready")
            return exits_of(body).get("exit1", {}).get("state") == "closed"

        await eventually(exit1_back, 60, "exit1 back after its cool-down")
        job = await wait_job(daemon, "egress-1")
        stats = await replica_get(maps_url, "/_stats")
        ready = (await daemon.get("/health/ready"))[1]
        assert not breaker_opened(daemon), "the Google Maps breaker opened"
        assert_no_credentials(daemon.log_text())
    assert job["status"] == "succeeded", job
    await assert_stored_once(fresh_pg, "egress-1", expected)
    # `leadlawk status` shows the exits as the job last saw them, by name.
    status = await asyncio.to_thread(leadlawk, {**os.environ, "DATABASE_URL": fresh_pg}, "status", "egress-1")
    assert status.returncode == 0, status.stderr
    exits_line = next(line for line in status.stdout.splitlines() if line.startswith("exits"))
    assert "exit0 closed" in exits_line
    assert "exit1 closed" in exits_line  # it came back
    assert "127.0.0.1" not in exits_line
    clients = stats["clients"]
    assert clients["127.0.0.12"]["blocks"] >= 1
    assert clients["127.0.0.12"]["navigations"] > blocked_at  # it came back and searched again
    for address in ("127.0.0.11", "127.0.0.13", "127.0.0.14"):
        assert clients[address]["navigations"] >= 1
        assert clients[address]["blocks"] == 0, (address, clients)
    assert ready["egress"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["down", "auth_refused", "slow", "reset"])
async def test_each_proxy_fault_is_that_exits_outage(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str, proxies: ProxyFleet, mode: str
) -> None:
    faulty = proxies.proxies[2]  # the one with credentials
    await faulty.set_mode(mode, delay_s=60.0)  # type: ignore[arg-type]
    env = {**egress_env(maps_url, pagespeed_url, fresh_pg, proxies), "LEADLAWK__MAPS__NAVIGATION_TIMEOUT": "5s"}
    async with DaemonProcess(tmp_path, env=env) as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        assert (await daemon.post("/jobs", area_spec(f"fault-{mode}")))[0] == 202

        async def exit2_open() -> dict[str, Any] | None:
            _code, body = await daemon.get("/health/ready")
            entry = exits_of(body).get("exit2", {})
            return entry if entry.get("state") in ("open", "half_open") else None

        entry = await eventually(exit2_open, 90, f"exit2 opened by {mode}")
        job = await wait_job(daemon, f"fault-{mode}")
        changes = [line for line in daemon.log_lines() if line.get("event") == "egress exit changed"]
        assert not breaker_opened(daemon)
        assert_no_credentials(daemon.log_text())
    assert job["status"] == "succeeded", job
    assert entry["reason"]
    opened = [c for c in changes if c.get("egress") == "exit2" and c.get("to") == "open"]
    assert opened, changes
    assert all(c.get("reason") for c in opened)
    if mode == "auth_refused":
        assert "HTTP 407" in opened[0]["reason"], opened  # said at once, not after a timeout


@pytest.mark.timeout(300)
async def test_no_credential_in_any_log_line_event_metric_fleet_entry_or_config_show(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str, proxies: ProxyFleet, redis_prefix: str
) -> None:
    # exit2 needs credentials; exit0 is refused (407) whatever it sends, so failures are logged too.
    await proxies.proxies[0].set_mode("auth_refused")
    env = {
        **egress_env(maps_url, pagespeed_url, fresh_pg, proxies),
        "REDIS_URL": REDIS_TEST_URL,
        "LEADLAWK__REDIS__PREFIX": redis_prefix,
        "LOG_LEVEL": "DEBUG",
    }
    events: list[str] = []
    subscriber = aioredis.Redis.from_url(REDIS_TEST_URL)
    pubsub = subscriber.pubsub()
    await pubsub.psubscribe(f"{redis_prefix}:*")
    try:
        async with DaemonProcess(tmp_path, env=env) as daemon:
            await daemon.wait_status("/health/ready", 200, within=60)
            assert (await daemon.post("/jobs", area_spec("creds-1")))[0] == 202
            job = await wait_job(daemon, "creds-1")
            # The subscription's confirmation reads as None too: read until the buffer stays empty.
            quiet = 0
            while quiet < 10:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                quiet = quiet + 1 if message is None else 0
                if message is not None:
                    events.append(str(message.get("data")))
            seen = {
                "log": daemon.log_text(),
                "events": "\n".join(events),
                "metrics": str(await daemon.get("/metrics")),
                "fleet": json.dumps((await daemon.get("/fleet"))[1]),
                "ready": json.dumps((await daemon.get("/health/ready"))[1]),
                "job": json.dumps(job),
                "console": str((await daemon.get("/console/health"))[1]),
            }
    finally:
        await pubsub.aclose()
        await subscriber.aclose()
    shown = await asyncio.to_thread(config_show, {**os.environ, **env})
    assert shown.returncode == 0, shown.stderr
    seen["config show"] = shown.stdout + shown.stderr
    assert job["status"] == "succeeded", job
    # What is checked did hear of the exits: a grep of nothing would pass.
    assert "exit0" in seen["log"]
    assert 'leadlawk_egress_state{egress="exit2"}' in seen["metrics"]
    assert "exit2" in seen["fleet"]
    assert "egress.changed" in seen["events"]
    assert "exit2:***@" in seen["config show"]
    assert 'data-egress="exit0"' in seen["console"]
    for where, text in seen.items():
        assert PASSWORD not in text, where
        for proxy in proxies.proxies:
            assert f"{proxy.url}" not in text or where == "config show", where  # labels, never URLs


@pytest.mark.timeout(600)  # three daemons, twelve browsers, over a minute of searching at 10 a minute
async def test_three_daemons_on_one_redis_keep_each_exit_within_its_budget(
    tmp_path: Path, maps_url: str, pagespeed_url: str, fresh_pg: str, proxies: ProxyFleet, redis_prefix: str
) -> None:
    # Per exit, fleet-wide: 10 a minute; the replica's limit is just over it. Three daemons that did
    # not share would make 30 a minute through each exit and meet /sorry/ within the first minute.
    budget = 10
    await set_faults(maps_url, {"rate_limit": {"per_minute": budget + 2, "cooldown_s": 30}})
    env = {
        **egress_env(maps_url, pagespeed_url, fresh_pg, proxies),
        "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": str(budget),
        "REDIS_URL": REDIS_TEST_URL,
        "LEADLAWK__REDIS__PREFIX": redis_prefix,
    }
    names = ("a", "b", "c")
    fleet = [
        DaemonProcess(tmp_path, env={**env, "DATABASE_URL": f"sqlite:///{tmp_path / n}.db"}, name=n) for n in names
    ]
    exits = ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")
    for daemon in fleet:
        daemon.start()
    try:
        for daemon in fleet:
            await daemon.wait_status("/health/ready", 200, within=120)
        started = time.monotonic()
        for n, daemon in zip(names, fleet, strict=True):
            assert (await daemon.post("/jobs", area_spec(f"share-{n}", QUERY)))[0] == 202

        async def each_exit_past_a_minutes_budget() -> dict[str, Any] | None:
            clients = (await replica_get(maps_url, "/_stats"))["clients"]
            done = all(clients.get(a, {}).get("navigations", 0) > budget + 2 for a in exits)
            return dict(clients) if done else None

        # Past one minute's budget through every exit: each was used for over a minute, by the
        # three daemons at once (their jobs are longer than that).
        clients = await eventually(each_exit_past_a_minutes_budget, 400, "every exit used past a minute", every=1.0)
        elapsed = time.monotonic() - started
    finally:
        for daemon in fleet:
            daemon.kill()
    for address in exits:
        counts = clients[address]
        assert counts["blocks"] == 0, (address, counts)  # never over the budget in any minute
        # No more than the budget's pace since the jobs were submitted, give or take a turn or two.
        assert counts["navigations"] <= budget * elapsed / 60 + 3, (address, counts, elapsed)
