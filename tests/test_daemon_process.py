"""A real daemon process: endpoints, SIGTERM, budgets, exit statuses."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon_process import ROOT, DaemonProcess


async def test_run_binds_answers_and_stops_in_reverse_order_on_sigterm(tmp_path: Path) -> None:
    async with DaemonProcess(tmp_path, env={"LEADLAWK__SHUTDOWN__BUDGET": "10s"}) as daemon:
        assert await daemon.wait_status("/health/live", 200, within=5.0) == {"status": "ok"}
        assert time.monotonic() - daemon.started_at < 5.0  # bound within 5 s, as platforms demand
        ready = await daemon.wait_status("/health/ready", 200, within=15.0)
        assert ready["status"] == "ready"
        assert ready["checks"]["database"]["ok"] is True
        code, text = await daemon.get("/metrics")
        assert code == 200
        assert "leadlawk_event_loop_lag_seconds_bucket" in text
        assert "process_resident_memory_bytes" in text
        assert 'leadlawk_dependency_up{dependency="database"} 1.0' in text
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait_exit(within=10.0) == 0
        assert time.monotonic() - sent < 10.0
    lines = daemon.log_lines()
    started = [(e["supervisor"], e["child"]) for e in lines if e["event"] == "child started"]
    stopped = [(e["supervisor"], e["child"]) for e in lines if e["event"] == "child stopped"]
    # Each supervisor stops its children in reverse start order; a nested one logs its own stop
    # after its children's.
    for supervisor in {s for s, _ in started}:
        mine = [c for s, c in started if s == supervisor]
        assert [c for s, c in stopped if s == supervisor] == list(reversed(mine))
    # Intake first (none without Redis), then the schedules' firing loop (no new jobs), then the
    # pipeline from its coordinator to its writer and its deliveries, then the database, and HTTP
    # and health last.
    assert [c for s, c in stopped if s == "root"] == ["schedules", "pipeline", "database", "observability"]
    pipeline_order = ["coordinator", "scraper", "enricher", "writer", "deliveries", "dead-letters"]
    assert [c for s, c in stopped if s == "pipeline"] == pipeline_order
    assert lines[-1]["event"] == "daemon stopped"
    assert lines[-1]["exit_status"] == 0


async def test_a_child_ignoring_cancellation_cannot_stretch_shutdown_past_the_budget(tmp_path: Path) -> None:
    budget = 3.0
    argv = [sys.executable, "-m", "tests.daemon_variants", "stubborn"]
    env = {"LEADLAWK__SHUTDOWN__BUDGET": f"{budget}s", "LEADLAWK__SUPERVISION__SHUTDOWN_TIMEOUT": "1s"}
    async with DaemonProcess(tmp_path, env=env, argv=argv) as daemon:
        await daemon.wait_status("/health/ready", 200, within=15.0)
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait_exit(within=budget + 1.0) == 0
        assert time.monotonic() - sent <= budget + 0.5
    events = [e["event"] for e in daemon.log_lines()]
    assert "child ignored cancellation; abandoned" in events


async def test_readiness_turns_false_at_once_on_sigterm(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tests.daemon_variants", "slow"]
    env = {"LEADLAWK__SHUTDOWN__BUDGET": "4s", "LEADLAWK__SUPERVISION__SHUTDOWN_TIMEOUT": "3s"}
    async with DaemonProcess(tmp_path, env=env, argv=argv) as daemon:
        await daemon.wait_status("/health/ready", 200, within=15.0)
        daemon.signal(signal.SIGTERM)
        body = await daemon.wait_status("/health/ready", 503, within=2.0)
        assert body["checks"]["shutdown"]["error"] == "shutting_down"
        code, live = await daemon.get("/health/live")
        assert (code, live) == (200, {"status": "ok"})  # still alive while it drains
        assert await daemon.wait_exit(within=5.0) == 0


async def test_a_second_signal_forces_exit(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tests.daemon_variants", "slow"]
    env = {"LEADLAWK__SHUTDOWN__BUDGET": "20s", "LEADLAWK__SUPERVISION__SHUTDOWN_TIMEOUT": "20s"}
    async with DaemonProcess(tmp_path, env=env, argv=argv) as daemon:
        await daemon.wait_status("/health/ready", 200, within=15.0)
        daemon.signal(signal.SIGTERM)
        await daemon.wait_log(lambda e: e["event"] == "shutdown requested", within=5)
        sent = time.monotonic()
        daemon.signal(signal.SIGINT)
        assert await daemon.wait_exit(within=3.0) == 1
        assert time.monotonic() - sent < 3.0


async def test_a_root_that_gives_up_shuts_down_cleanly_and_exits_1(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tests.daemon_variants", "crasher"]
    env = {"LEADLAWK__SUPERVISION__MAX_RESTARTS": "2", "LEADLAWK__SUPERVISION__BACKOFF__MIN": "10ms"}
    async with DaemonProcess(tmp_path, env=env, argv=argv) as daemon:
        assert await daemon.wait_exit(within=20.0) == 1
    lines = daemon.log_lines()
    assert any(e["event"].startswith("supervisor root gave up") for e in lines)
    assert lines[-1]["event"] == "daemon stopped"
    assert lines[-1]["exit_status"] == 1
    stopped = [e["child"] for e in lines if e["event"] == "child stopped" and e["supervisor"] == "root"]
    assert stopped[-2:] == ["database", "observability"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=60,
    )


def test_bad_configuration_exits_2_naming_each_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("resilience:\n  retry:\n    max_attempts: 0\n  bulkhead:\n    nope: 1\n")
    result = _cli("config", "check", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    expected = "leadlawk: config: resilience.retry.max_attempts: Input should be greater than or equal to 1 (got 0)"
    assert expected in lines
    assert "leadlawk: config: resilience.bulkhead.nope: unknown key" in lines
    assert "Traceback" not in result.stderr
    run = _cli("run", env={"PORT": "not-a-port"})
    assert run.returncode == 2
    assert run.stderr.strip().startswith("leadlawk: config: server.port:")
    assert "Traceback" not in run.stderr


def test_config_show_masks_secrets() -> None:
    result = _cli("config", "show",
                  env={"PAGESPEED_API_KEY": "AIzaTopSecret99", "LEADLAWK_ADMIN_TOKEN": "tok-12345-long-enough-for-24"})
    assert result.returncode == 0
    assert "AIzaTopSecret99" not in result.stdout
    assert "tok-12345-long-enough-for-24" not in result.stdout
    assert "api_key: '***'" in result.stdout
    assert "failure_threshold: 5" in result.stdout
    assert _cli("config", "check").stdout.strip() == "configuration is valid"
