"""The fleet registry against real Redis: membership, expiry of a dead daemon, graceful leave,
the count kept through a Redis outage, GET /fleet, ``leadlawk fleet`` and the instance metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.chaos.proxy import FaultProxy
from leadlawk_daemon.fleet import FleetRegistry, Identity, fleet_key, read_members
from leadlawk_daemon.fleet.command import fleet_table
from leadlawk_daemon.fleet.metrics import FleetCollector
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import create_app
from leadlawk_daemon.logs import register_secret
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import load_settings
from tests.conftest import REDIS_TEST_URL
from tests.daemon_process import DaemonProcess
from tests.pty_session import PtyProcess, cli_env
from tests.waiting import eventually

API_KEY = "AIzaFleetTestKey0123456789abcdefghijklm"


def registry(redis: aioredis.Redis | None, prefix: str, name: str, ttl: float = 1.5) -> FleetRegistry:
    fleet = FleetRegistry(redis, prefix, Identity.of(f"host-{name}:4242:{name}", 1_700_000_000.0), ttl=ttl)
    fleet.jobs_held = lambda: [f"job-of-{name}"]
    fleet.breakers = lambda: {"pagespeed": "closed", "google_maps": "open"}
    return fleet


@asynccontextmanager
async def running(fleet: FleetRegistry) -> AsyncIterator[asyncio.Task[None]]:
    """The registry's heartbeat as a task of the test's, so a test can kill it (a SIGKILL's effect)."""
    ready = asyncio.Event()
    task = asyncio.create_task(fleet.run(ready.set))
    await ready.wait()
    try:
        yield task
    finally:
        if not task.done():
            fleet.stop()
            await asyncio.wait_for(task, fleet.stop_timeout)


async def test_two_daemons_see_each_other_with_what_each_holds(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    one, two = registry(redis_client, redis_prefix, "aaaa1111"), registry(redis_client, redis_prefix, "bbbb2222")
    async with one, two:
        await eventually(lambda: one.last_seen_alive() == 2 and two.last_seen_alive() == 2, what="both counted")
        members = await one.members()
    assert [m["id"] for m in members] == ["aaaa1111", "bbbb2222"]
    first = members[0]
    assert (first["host"], first["owner"], first["version"]) == ("host-aaaa1111", "host-aaaa1111:4242:aaaa1111",
                                                                  one.identity.version)
    assert (first["jobs_held"], first["jobs"]) == (1, ["job-of-aaaa1111"])
    assert first["breakers"] == {"pagespeed": "closed", "google_maps": "open"}
    assert first["quota"] == {}
    assert first["started_at"] == "2023-11-14T22:13:20+00:00"


async def test_a_killed_daemon_expires_after_its_ttl_and_the_others_count_it_gone(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    survivor = registry(redis_client, redis_prefix, "live0001")
    victim = registry(redis_client, redis_prefix, "dead0002")
    async with survivor, running(victim) as heartbeat:
        await eventually(lambda: survivor.last_seen_alive() == 2, what="two alive")
        heartbeat.cancel()  # killed: no graceful stop, no deregistration
        await asyncio.gather(heartbeat, return_exceptions=True)
        assert await redis_client.exists(fleet_key(redis_prefix, "dead0002")) == 1  # not deregistered
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        await eventually(lambda: survivor.last_seen_alive() == 1, within=victim.ttl + 3, what="the dead one dropped")
        gone_after = loop.time() - killed_at
        assert [m["id"] for m in await survivor.members()] == ["live0001"]
    # Gone within its TTL plus one heartbeat of the survivor's, not before a heartbeat or so.
    assert gone_after <= victim.ttl + survivor.interval + 0.5


async def test_a_graceful_stop_deregisters_at_once(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    fleet = registry(redis_client, redis_prefix, "leave001", ttl=60)
    async with fleet:
        assert await redis_client.exists(fleet.key) == 1
        ttl_ms = await redis_client.pttl(fleet.key)
        assert 0 < ttl_ms <= 60_000
    assert await redis_client.exists(fleet.key) == 0
    assert await read_members(redis_client, redis_prefix) == []


async def test_the_count_of_daemons_alive_is_kept_while_redis_is_down(redis_prefix: str) -> None:
    host, port = "127.0.0.1", int(REDIS_TEST_URL.rsplit(":", 1)[1].split("/")[0])
    async with FaultProxy("127.0.0.1", 0, host, port) as proxy:
        through = aioredis.Redis.from_url(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=1)
        direct = aioredis.Redis.from_url(REDIS_TEST_URL)
        other = registry(direct, redis_prefix, "other001", ttl=60)
        mine = registry(through, redis_prefix, "mine0001", ttl=0.9)
        try:
            async with other, mine:
                await eventually(lambda: mine.last_seen_alive() == 2, what="two alive")
                beats = mine.heartbeats
                await proxy.refuse()
                await eventually(lambda: not mine.connected, within=5, what="the registry saw Redis go")
                assert mine.heartbeats == beats or mine.heartbeats == beats + 1
                assert mine.last_seen_alive() == 2  # the quota fallback's divisor survives the outage
                await proxy.reopen()
                await eventually(lambda: mine.connected and mine.heartbeats > beats + 1, within=10,
                                 what="heartbeats again")
                assert mine.last_seen_alive() == 2
        finally:
            await through.aclose()
            await direct.aclose()


async def test_without_redis_the_fleet_is_this_daemon_alone() -> None:
    fleet = registry(None, "unused", "solo0001")
    async with fleet:
        members = await fleet.members()
    assert [m["id"] for m in members] == ["solo0001"]
    assert fleet.last_seen_alive() == 1


async def test_get_fleet_lists_the_members_privately_and_never_shows_the_api_key(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    register_secret(API_KEY)
    settings = load_settings(
        environ={"PAGESPEED_API_KEY": API_KEY, "LEADLAWK_ADMIN_TOKEN": "fleet-token-123-of-24-characters"})
    one, two = registry(redis_client, redis_prefix, "http0001"), registry(redis_client, redis_prefix, "http0002")
    # A quota report that (wrongly) carries the key: the entry is redacted before it leaves.
    one.quota = lambda: {"key": API_KEY, "share": 0.5, "used_100s": 12}
    metrics = Metrics(process=False)
    health = Health(settings.resilience.health_check, settings.health, metrics)
    app = create_app(settings, health, metrics, fleet=one)
    async with one, two, TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.get("/fleet")).status == 401
        response = await client.get("/fleet", headers={"Authorization": "Bearer fleet-token-123-of-24-characters"})
        assert response.status == 200
        text = await response.text()
        values = await redis_client.mget(await redis_client.keys(f"{redis_prefix}:*"))
        stored = b"".join(v for v in values if isinstance(v, bytes))
    body = orjson.loads(text)
    assert body["count"] == 2
    assert [m["id"] for m in body["members"]] == ["http0001", "http0002"]
    assert body["members"][0]["quota"]["share"] == 0.5
    assert API_KEY not in text
    assert API_KEY.encode() not in stored


async def test_metrics_tell_daemons_apart_by_instance_without_a_hostname() -> None:
    fleet = registry(None, "unused", "metr0001")
    metrics = Metrics(process=False)
    metrics.register(FleetCollector(fleet))
    text = metrics.render().decode()
    assert 'leadlawk_daemon_info{instance="metr0001",version="' in text
    assert 'leadlawk_jobs_held{instance="metr0001"} 1.0' in text
    assert 'leadlawk_fleet_daemons{instance="metr0001"} 1.0' in text
    assert 'leadlawk_daemon_breaker_state{breaker="google_maps",instance="metr0001"} 2.0' in text
    assert "host-metr0001" not in text  # /metrics is public: the id, never the host


def test_the_table_shows_one_line_per_daemon_and_what_is_wrong() -> None:
    table = fleet_table([
        {"id": "a1", "host": "h1", "pid": 1, "version": "0.1.0", "started_at": "2026-12-07T12:00:00+00:00",
         "jobs_held": 2, "breakers": {"pagespeed": "open", "database": "closed"}, "quota": {"share": 0.5},
         "egress": [{"egress": "p1", "state": "open"}, {"egress": "p2", "state": "closed"}]},
        {"id": "b2", "host": "h2", "pid": 2, "version": "0.1.0", "started_at": "2026-12-07T12:01:00+00:00",
         "jobs_held": 0, "breakers": {"database": "closed"}, "quota": {}},
    ])
    lines = table.splitlines()
    assert lines[0].split() == ["id", "host", "pid", "version", "started", "jobs", "breakers", "exits", "quota"]
    assert "pagespeed open" in lines[1]
    assert "share=0.5" in lines[1]
    assert "p1 open" in lines[1]  # a Maps exit cooling down, by its name
    assert "all closed" in lines[2]
    assert lines[-1] == "2 daemons alive"


async def test_leadlawk_fleet_on_a_terminal_prints_the_table_and_json_with_the_flag(
    tmp_path: Path, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    env = cli_env(f"sqlite:///{tmp_path / 'cli.db'}", {
        "REDIS_URL": REDIS_TEST_URL, "LEADLAWK__REDIS__PREFIX": redis_prefix, "NO_COLOR": "1",
    })

    def on_a_terminal(*args: str) -> tuple[int, str]:
        with PtyProcess(["fleet", *args], env) as run:
            return run.wait(), run.output

    async with registry(redis_client, redis_prefix, "tty00001"):
        code, table = await asyncio.to_thread(on_a_terminal)
        json_code, text = await asyncio.to_thread(on_a_terminal, "--json")
    assert code == 0, table
    lines = table.strip().splitlines()
    assert lines[0].split() == ["id", "host", "pid", "version", "started", "jobs", "breakers", "exits", "quota"]
    assert lines[1].split()[:3] == ["tty00001", "host-tty00001", str(os.getpid())]
    assert "google_maps open" in lines[1]
    assert lines[-1] == "1 daemon alive"
    assert json_code == 0, text
    assert [m["id"] for m in orjson.loads(text.strip())["members"]] == ["tty00001"]


@pytest.mark.parametrize("as_json", [True, False])
async def test_leadlawk_fleet_prints_the_fleet_as_json_off_a_terminal(
    redis_client: aioredis.Redis, redis_prefix: str, as_json: bool
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": REDIS_TEST_URL,
        "LEADLAWK__REDIS__PREFIX": redis_prefix,
        "LEADLAWK_ADMIN_TOKEN": "",
    }
    async with registry(redis_client, redis_prefix, "cli00001"):
        argv = [sys.executable, "-m", "leadlawk_daemon", "fleet", *(["--json"] if as_json else [])]
        done = await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)  # a pipe is no terminal: JSON either way
    assert body["count"] == 1
    assert body["members"][0]["id"] == "cli00001"


async def test_real_daemons_register_a_sigkilled_one_expires_a_sigtermed_one_leaves(
    tmp_path: Path, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    env = {
        "REDIS_URL": REDIS_TEST_URL,
        "LEADLAWK__REDIS__PREFIX": redis_prefix,
        "LEADLAWK__REDIS__FLEET_TTL": "1.5s",
        "LEADLAWK__SHUTDOWN__BUDGET": "10s",
        "PAGESPEED_API_KEY": API_KEY,
    }
    async with (
        DaemonProcess(tmp_path, env=env, name="one") as one,
        DaemonProcess(tmp_path, env=env, name="two") as two,
    ):
        await one.wait_status("/health/live", 200, within=15.0)
        await two.wait_status("/health/live", 200, within=15.0)

        async def listed(daemon: DaemonProcess) -> list[int]:
            code, body = await daemon.get("/fleet")
            return [m["pid"] for m in body["members"]] if code == 200 else []

        assert one.proc is not None
        assert two.proc is not None
        pids = {one.proc.pid, two.proc.pid}

        async def both_listed() -> bool:
            return set(await listed(one)) == pids

        await eventually(both_listed, 20, "both daemons listed", every=0.1)
        _, text = await one.get("/fleet")
        assert API_KEY not in orjson.dumps(text).decode()

        two.kill()  # SIGKILL: no deregistration
        survivor = {one.proc.pid}

        async def killed_lapsed() -> bool:
            return set(await listed(one)) == survivor

        await eventually(killed_lapsed, 1.5 + 3, "the killed daemon's entry lapsed", every=0.1)

        one.signal(signal.SIGTERM)
        assert await one.wait_exit(within=12.0) == 0
    assert await read_members(redis_client, redis_prefix) == []


def test_the_dashboard_has_a_fleet_row_drawn_from_what_the_daemon_exports() -> None:
    path = Path(__file__).resolve().parent.parent / "config" / "grafana-dashboard.json"
    dashboard = orjson.loads(path.read_bytes())
    panels = dashboard["panels"]
    row = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Fleet")
    exprs = " ".join(t["expr"] for p in panels[row + 1:] for t in p.get("targets", []))
    fleet = registry(None, "unused", "dash0001")
    metrics = Metrics(process=False)
    metrics.register(FleetCollector(fleet))
    exported = metrics.render().decode()
    for name in ("leadlawk_daemon_info", "leadlawk_jobs_held", "leadlawk_fleet_daemons",
                 "leadlawk_daemon_breaker_state"):
        assert name in exprs
        assert f"# TYPE {name} gauge" in exported
