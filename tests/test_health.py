"""Health state: thresholds, the first good probe, and probes that will not end."""

from __future__ import annotations

import asyncio

from leadlawk_daemon.health import DependencyState, Health
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import load_settings


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
    assert checks["database"]["error"] == "no answer within 0.1s"
    await health.probe_once()  # still unwinding: still failing, and no second probe piles up
    assert health.ready()[1]["database"]["error"] == "the previous probe has not finished unwinding"
    release.set()
    health.probes["database"] = fine
    for _ in range(50):
        await asyncio.sleep(0)
    await health.probe_once()
    assert health.ready()[0] is False  # back up only after success_threshold (2) good probes
    await health.probe_once()
    assert health.ready()[0] is True
