"""The dependency registry, as the daemon wires it: every breaker, Maps and sites included, is
announced when it changes and shown on ``/health/ready``, the console, ``/fleet`` and ``/metrics``.

Each breaker is driven open by calls that fail through it (an error each counts against its
dependency); nothing is started but the pipeline's parts and the daemon's HTTP app.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from actors.dead_letters import MemoryDeadLetters
from leadlawk_daemon.assembly import LeadLawkDaemon
from leadlawk_daemon.pipeline import Pipeline
from leadlawk_daemon.resilience.breaker import BreakerOpenError, BreakerState, CircuitBreaker
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import Store

EVERY_BREAKER = {"google_maps", "pagespeed", "database", "sites", "dns"}


async def _fails() -> None:
    raise TimeoutError("injected: the dependency did not answer")


async def _drive_open(breaker: CircuitBreaker) -> None:
    for _ in range(100):
        if breaker.state is BreakerState.OPEN:
            return
        with pytest.raises((TimeoutError, BreakerOpenError)):
            await breaker.call(_fails)
    raise AssertionError(f"breaker {breaker.name} did not open after 100 failed calls")


@pytest.fixture
async def daemon() -> AsyncIterator[tuple[LeadLawkDaemon, Pipeline]]:
    settings = load_settings(environ={
        "LEADLAWK__SITES__ENABLED": "true",
        "LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__RESET_TIMEOUT": "10m",  # open for the whole test
    })
    daemon = LeadLawkDaemon(settings)
    # The pipeline never reaches its store here: only its breakers are driven.
    store = cast(Store, None)
    async with Pipeline(
        settings, store, daemon.metrics, daemon.clock, daemon.events, MemoryDeadLetters(), daemon.owner,
        register_metrics=False, dependencies=daemon.dependencies,
    ) as pipeline:
        daemon.pipeline_service.pipeline = pipeline  # as PipelineService.run does
        try:
            yield daemon, pipeline
        finally:
            daemon.pipeline_service.pipeline = None
            daemon.dependencies.clear()


async def test_every_breaker_is_registered_and_each_announces_its_change(
    daemon: tuple[LeadLawkDaemon, Pipeline],
) -> None:
    d, pipeline = daemon
    assert {dep.name for dep in d.dependencies} == EVERY_BREAKER
    assert pipeline.outages() == frozenset()
    with d.bus.subscribe() as events:
        for dep in d.dependencies:
            await _drive_open(dep.breaker)
        seen: list[dict[str, Any]] = []
        while not events.queue.empty():
            seen.append(events.queue.get_nowait())
    changes = {(e["breaker"], e["old"], e["new"]) for e in seen if e["type"] == "breaker.changed"}
    assert changes == {(name, "closed", "open") for name in EVERY_BREAKER}
    # Jobs that need them wait on each (the driver's outages): the console's waiting-on column.
    assert pipeline.outages() == frozenset(EVERY_BREAKER)
    assert d.fleet.record()["breakers"] == dict.fromkeys(EVERY_BREAKER, "open")
    for name in EVERY_BREAKER:
        assert d.metrics.registry.get_sample_value("leadlawk_circuit_breaker_state", {"breaker": name}) == 2


async def test_ready_the_console_fleet_and_metrics_show_every_breaker_open(
    daemon: tuple[LeadLawkDaemon, Pipeline],
) -> None:
    d, _ = daemon
    _, checks = d.health.ready()
    shown = {"google_maps", "pagespeed", "database_breaker", "sites"}  # "database" is its probe
    assert shown <= set(checks)
    assert all(checks[name]["ok"] for name in shown)
    for dep in d.dependencies:
        await _drive_open(dep.breaker)
    async with TestClient(TestServer(d._make_http().app, host="127.0.0.1")) as client:
        response = await client.get("/health/ready")
        body = await response.json()
        assert response.status == 503
        assert {name: body["checks"][name]["error"] for name in shown} == dict.fromkeys(shown, "breaker_open")

        page = await (await client.get("/console/health")).text()
        for name in EVERY_BREAKER:
            row = re.search(rf'<tr data-breaker="{name}">.*?data-field="state">(\w+)<', page, re.S)
            assert row is not None, f"the console's health page does not show {name}"
            assert row.group(1) == "open"
        for name in shown:
            assert f'<tr data-check="{name}">' in page

        fleet = await (await client.get("/fleet")).json()
        assert fleet["members"][0]["breakers"] == dict.fromkeys(EVERY_BREAKER, "open")

        metrics = await (await client.get("/metrics")).text()
        for name in EVERY_BREAKER:
            assert f'leadlawk_circuit_breaker_state{{breaker="{name}"}} 2.0' in metrics


async def test_a_stopped_pipeline_leaves_its_breakers_named_on_ready_as_not_running(
    daemon: tuple[LeadLawkDaemon, Pipeline],
) -> None:
    d, _ = daemon
    d.dependencies.clear()
    d.pipeline_service.pipeline = None
    ready, checks = d.health.ready()
    assert ready is False
    for name in ("google_maps", "pagespeed", "database_breaker", "sites", "browser"):
        assert checks[name]["error"] == "not_running"
    assert d.fleet.record()["breakers"] == {}
