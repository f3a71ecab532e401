from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from leadlawk_daemon.settings import ConfigError, load_settings, masked, parse_duration


def test_defaults_have_the_designs_resilience_block() -> None:
    s = load_settings(environ={})
    assert s.resilience.circuit_breaker.failure_threshold == 5
    assert s.resilience.circuit_breaker.timeout == 30
    assert s.resilience.circuit_breaker.reset_timeout == 60
    assert (s.resilience.retry.max_attempts, s.resilience.retry.base_delay) == (5, 1)
    assert (s.resilience.retry.max_delay, s.resilience.retry.exponential_base) == (60, 2)
    assert s.resilience.retry.jitter is True
    assert (s.resilience.bulkhead.max_concurrent_jobs, s.resilience.bulkhead.queue_size) == (3, 100)
    assert s.resilience.bulkhead.timeout == 300
    hc = s.resilience.health_check
    assert (hc.interval, hc.timeout, hc.failure_threshold, hc.success_threshold) == (30, 10, 3, 2)
    assert s.database.url == "sqlite:///./leadlawk.db"
    assert s.redis.url is None
    assert s.server.port == 8080


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("500ms", 0.5), ("5m", 300.0), ("1h", 3600.0), (7, 7.0), ("2.5", 2.5)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_precedence_file_then_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("resilience:\n  retry:\n    max_attempts: 7\nserver:\n  port: 9001\n")
    s = load_settings(cfg, environ={"LEADLAWK__RESILIENCE__RETRY__MAX_ATTEMPTS": "3"})
    assert s.resilience.retry.max_attempts == 3
    assert s.server.port == 9001
    s = load_settings(cfg, environ={"PORT": "9100", "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert s.server.port == 9100
    assert s.redis.url == "redis://127.0.0.1:6379/0"


def test_config_file_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("chaos:\n  enabled: true\n")
    assert load_settings(environ={"LEADLAWK_CONFIG": str(cfg)}).chaos.enabled is True


def test_per_actor_settings_fall_back_to_defaults() -> None:
    s = load_settings(environ={"LEADLAWK__ACTORS__WRITER__MAX_ATTEMPTS": "9"})
    writer = s.actors.for_actor("writer")
    assert writer.max_attempts == 9
    assert writer.mailbox_capacity == 5000
    assert s.actors.for_actor("health").mailbox_capacity == s.actors.defaults.mailbox_capacity


BAD = [
    ({"LEADLAWK__NOPE": "1"}, "nope: unknown key"),
    ({"LEADLAWK__RESILIENCE__RETRY__MAX_ATTEMPTS": "0"}, "resilience.retry.max_attempts:"),
    ({"LEADLAWK__RESILIENCE__RETRY__JITTER": "sometimes"}, "resilience.retry.jitter:"),
    ({"PORT": "eighty"}, "server.port:"),
    ({"PORT": "70000"}, "server.port:"),
    ({"LEADLAWK__SHUTDOWN__BUDGET": "soon"}, "shutdown.budget:"),
    ({"LEADLAWK__SHUTDOWN__BUDGET": "-3"}, "shutdown.budget:"),
    ({"DATABASE_URL": "mysql://x"}, "database.url:"),
    ({"REDIS_URL": "http://x"}, "redis.url:"),
    ({"LOG_LEVEL": "LOUD"}, "logging.level:"),
    ({"LEADLAWK__ACTORS__SCRAPER__CONCURRENCY": "many"}, "actors.scraper.concurrency:"),
    ({"LEADLAWK__ACTORS__TYPO__CONCURRENCY": "1"}, "actors.typo: unknown key"),
    ({"LEADLAWK__DATABASE__POOL_MIN": "9", "LEADLAWK__DATABASE__POOL_MAX": "2"}, "database.pool_min:"),
    ({"LEADLAWK__SUPERVISION__BACKOFF__MIN": "1m", "LEADLAWK__SUPERVISION__BACKOFF__MAX": "1s"},
     "supervision.backoff.min:"),
    ({"LEADLAWK__JOBS__MAX_ATTEMPTS": "0"}, "jobs.max_attempts:"),
    ({"LEADLAWK__JOBS__MAX_WAIT": "forever"}, "jobs.max_wait:"),
]


@pytest.mark.parametrize(("env", "expected"), BAD)
def test_every_bad_value_names_its_key(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"PORT": "x", "LEADLAWK__NOPE": "1", "LOG_LEVEL": "LOUD"})
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [("a: [unclosed", "not valid YAML"), ("- a\n- b\n", "must be a mapping"), ("server: {port: x}", "server.port:")],
)
def test_bad_files(tmp_path: Path, content: str, expected: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert expected in info.value.problems[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path / "absent.yaml", environ={})


def test_secrets_are_masked_and_never_echoed() -> None:
    s = load_settings(
        environ={"PAGESPEED_API_KEY": "AIzaSECRET123", "LEADLAWK_ADMIN_TOKEN": "tok-secret-long-enough-for-24"})
    shown = str(masked(s))
    assert "AIzaSECRET123" not in shown
    assert "tok-secret-long-enough-for-24" not in shown
    assert masked(s)["pagespeed"]["api_key"] == "***"


def test_defaults_of_the_job_lease_keys() -> None:
    jobs = load_settings(environ={}).jobs
    assert (jobs.max_attempts, jobs.max_wait, jobs.lease_ttl) == (3, 300.0, 30.0)
    assert jobs.heartbeat < jobs.lease_ttl
    assert load_settings(environ={}).database.command_timeout < jobs.lease_ttl


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LEADLAWK__JOBS__HEARTBEAT": "30s"}, "jobs.heartbeat: must be less than jobs.lease_ttl (30s) (got 30s)"),
        (
            {"LEADLAWK__JOBS__LEASE_TTL": "8s"},
            "database.command_timeout: must be less than jobs.lease_ttl (8s) (got 10s)",
        ),
        (
            {"LEADLAWK__DATABASE__COMMAND_TIMEOUT": "45s"},
            "database.command_timeout: must be less than jobs.lease_ttl (30s) (got 45s)",
        ),
        (
            {"LEADLAWK__JOBS__MAX_WAIT": "15m"},
            "jobs.max_wait: must be less than actors.enricher.handle_timeout (600s) (got 900s)",
        ),
    ],
)
def test_a_lease_shorter_than_what_keeps_it_is_refused(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert expected in info.value.problems


def test_dsn_passwords_are_masked_in_config_show() -> None:
    s = load_settings(
        environ={
            "DATABASE_URL": "postgresql://app:Pg-S3cret@db.internal:5432/leads",
            "REDIS_URL": "redis://:Redis-S3cret@cache.internal:6379/0",
        }
    )
    shown = masked(s)
    assert shown["database"]["url"] == "postgresql://app:***@db.internal:5432/leads"
    assert shown["redis"]["url"] == "redis://:***@cache.internal:6379/0"
    assert "S3cret" not in str(shown)
    assert s.database.url.endswith("Pg-S3cret@db.internal:5432/leads")  # the daemon still has it


def test_dsn_passwords_are_masked_in_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DATABASE_URL": "mysql://app:My-S3cret@db/leads", "REDIS_URL": "http://:R-S3cret@h/0"})
    text = "\n".join(info.value.problems)
    assert "S3cret" not in text
    assert "mysql://app:***@db/leads" in text
    assert "http://:***@h/0" in text


@pytest.mark.parametrize(
    "content",
    [
        'database:\n  url: "postgresql://app:Pg-S3cret@db/leads\n',
        "database:\n  url: postgresql://app:Pg-S3cret@db/x: [y\n",
    ],
)
def test_a_yaml_error_names_the_place_not_the_line_that_may_hold_a_password(tmp_path: Path, content: str) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    (problem,) = info.value.problems
    assert "not valid YAML (line " in problem
    assert "S3cret" not in problem


def test_config_show_and_check_never_print_a_dsn_password(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://app:Pg-S3cret@db.internal/leads"}
    shown = subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "config", "show"], env=env, capture_output=True, text=True, check=True
    )
    assert "postgresql://app:***@db.internal/leads" in shown.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("redis:\n  url: 'http://:R-S3cret@cache/0'\n")
    check = subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "config", "check", str(bad)], env=env, capture_output=True, text=True
    )
    assert check.returncode == 2
    assert "redis.url:" in check.stderr
    assert "S3cret" not in check.stdout + check.stderr + shown.stdout + shown.stderr
