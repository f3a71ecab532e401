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

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from leadlawk_daemon.replicas.proxy import ProxyFleet
from tests.daemon_process import DaemonProcess
from tests.test_area_jobs import area_spec, assert_stored_once, env_for, in_area_truth, replica_get, wait_cells
from tests.test_daemon_jobs import wait_job
from tests.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.maps_replica(seed=3)]

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


def assert_no_credentials(text: str) -> None:
    assert PASSWORD not in text
    assert "exit2:" not in text  # the user name beside a password, as userinfo


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
    clients = stats["clients"]
    assert clients["127.0.0.12"]["blocks"] >= 1
    assert clients["127.0.0.12"]["navigations"] > blocked_at  # it came back and searched again
    for address in ("127.0.0.11", "127.0.0.13", "127.0.0.14"):
        assert clients[address]["navigations"] >= 1
        assert clients[address]["blocks"] == 0, (address, clients)
    assert ready["egress"]


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
