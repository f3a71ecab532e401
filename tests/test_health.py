"""Health state: thresholds, the first good probe, and probes that will not end."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.health import DependencyState, Health
from leadlawk_daemon.http_api import create_app
from leadlawk_daemon.logs import JsonFormatter
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import StoreUnavailable


def test_thresholds_damp_flapping_but_not_the_first_good_probe() -> None:
    check = load_settings(environ={}).resilience.health_check  # failure 3, success 2
    state = DependencyState("db")
    state.record(False, 1, "refused", check)
    assert state.ok is False
    state.record(True, 1, None, check)
    assert state.ok is True  # never up before: up at once
    for _ in range(2):
        state.record(False, 1, "refused", check)
    assert state.ok is True  # two failures are not three
    state.record(False, 1, "refused", check)
    assert (state.ok, state.error) == (False, "refused")
    state.record(True, 1, None, check)
    assert state.ok is False  # one success is not two
    state.record(True, 1, None, check)
    assert state.ok is True


async def test_a_probe_that_ignores_its_timeout_is_cut_without_waiting_for_it() -> None:
    settings = load_settings(environ={"LEADLAWK__RESILIENCE__HEALTH_CHECK__TIMEOUT": "100ms",
                                      "LEADLAWK__RESILIENCE__HEALTH_CHECK__FAILURE_THRESHOLD": "1"})
    health = Health(settings.resilience.health_check, settings.health, Metrics(process=False))
    release = asyncio.Event()

    async def stuck() -> None:
        # Like a pool resetting its connection through a blackhole: cancellation does not end it.
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    async def fine() -> None:
        return None

    health.add_probe("database", fine)
    await health.probe_once()
    assert health.ready()[0] is True
    health.probes["database"] = stuck
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(health.probe_once(), 2)
    assert loop.time() - began < 1.0
    ok, checks = health.ready()
    assert ok is False
    assert checks["database"]["error"] == "timeout"
    assert health.states["database"].detail == "no answer within 0.1s"
    await health.probe_once()  # still unwinding: still failing, and no second probe piles up
    assert health.ready()[1]["database"]["error"] == "timeout"
    assert health.states["database"].detail == "the previous probe has not finished unwinding"
    release.set()
    health.probes["database"] = fine
    for _ in range(50):
        await asyncio.sleep(0)
    await health.probe_once()
    assert health.ready()[0] is False  # back up only after success_threshold (2) good probes
    await health.probe_once()
    assert health.ready()[0] is True


async def test_a_probe_under_way_when_health_stops_ends_with_it_and_its_failure_is_collected() -> None:
    settings = load_settings(environ={"LEADLAWK__RESILIENCE__HEALTH_CHECK__TIMEOUT": "30s"})
    health = Health(settings.resilience.health_check, settings.health, Metrics(process=False))
    started, release = asyncio.Event(), asyncio.Event()
    probes: list[asyncio.Task[object]] = []

    async def redis_closing() -> None:
        # Like a Redis ping whose connection the server closes while the daemon shuts down.
        task = asyncio.current_task()
        assert task is not None
        probes.append(task)
        started.set()
        try:
            await release.wait()
        finally:
            raise ConnectionError("Connection closed by server.")

    health.add_probe("redis", redis_closing)
    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        probing = asyncio.ensure_future(health.probe_once())
        await asyncio.wait_for(started.wait(), 5)
        probing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probing
        assert probes[0].cancelling(), "the probe is cancelled with the health actor, not left to run"
        await asyncio.wait(probes, timeout=5)
        assert probes[0].done()
        del probing
        probes.clear()
        gc.collect()
        assert reported == [], "a probe's failure went unretrieved"
    finally:
        loop.set_exception_handler(None)


async def test_readiness_shows_short_codes_and_keeps_hosts_and_passwords_for_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(environ={"LEADLAWK__RESILIENCE__HEALTH_CHECK__FAILURE_THRESHOLD": "1"})
    health = Health(settings.resilience.health_check, settings.health, Metrics(process=False))
    dsn = "postgresql://app:Pg-S3cret@db-7.internal.example:5432/leads"

    async def database() -> None:
        raise StoreUnavailable(f"PostgreSQL is unreachable: ConnectionRefusedError: connect to {dsn} failed")

    async def redis() -> None:
        raise ConnectionError("Error 111 connecting to cache-3.internal.example:6379. Connection refused.")

    async def slow() -> None:
        raise TimeoutError("timed out talking to 10.1.2.3")

    health.add_probe("database", database)
    health.add_probe("redis", redis)
    health.add_probe("search", slow)
    health.conditions["google_maps"] = lambda: "circuit breaker google_maps is open"
    health.conditions["intake"] = lambda: "stream intake not connected to Redis (reconnecting)"
    with caplog.at_level(logging.DEBUG, logger="leadlawk.health"):
        await health.probe_once()
        ok, checks = health.ready()
    assert ok is False
    assert {name: check["error"] for name, check in checks.items()} == {
        "database": "unreachable",
        "redis": "unreachable",
        "search": "timeout",
        "google_maps": "breaker_open",
        "intake": "disconnected",
    }
    app = create_app(settings, health, Metrics(process=False))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/health/ready")
        body = await response.text()
    assert response.status == 503
    for leak in ("S3cret", "db-7.internal", "cache-3.internal", "10.1.2.3", "postgresql://", "Connection refused"):
        assert leak not in body
    # The operator still learns what happened, from the log, with the password masked.
    logged = " ".join(str(getattr(r, "detail", "")) for r in caplog.records)
    assert "db-7.internal.example" in logged
    assert "cache-3.internal.example" in logged
    assert "S3cret" not in " ".join(JsonFormatter().format(r) for r in caplog.records)


def test_condition_sets_show_each_name_once_and_a_breaker_beside_its_probe_as_name_breaker() -> None:
    settings = load_settings(environ={})
    health = Health(settings.resilience.health_check, settings.health, Metrics(process=False))
    health.states["database"] = DependencyState("database", ok=True, ever_ok=True, error=None)
    health.probes["database"] = _never_probed
    answers: dict[str, str | None] = {"database": None, "sites": "circuit breaker sites is open"}
    health.condition_sets.append(lambda: answers)
    ok, checks = health.ready()
    assert ok is False
    assert {name: check["error"] for name, check in checks.items()} == {
        "database": None,  # the probe
        "database_breaker": None,  # the breaker: the same dependency, another question
        "sites": "breaker_open",
    }
    answers["sites"] = None  # the set is read at every answer, not copied once
    assert health.ready()[0] is True


async def _never_probed() -> None:
    raise AssertionError("ready() must not probe")
