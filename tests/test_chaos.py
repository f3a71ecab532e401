"""The chaos suite: every failure scenario of the design, against a real ``leadlawk run``.

Each test starts its own daemon (real PostgreSQL, Redis and Chromium, both replicas, a fault proxy
in front of each dependency; see :mod:`tests.chaos_harness`), injects one fault while a job runs,
then asserts what an operator would check: every business of each answer set stored exactly
once, every job at the right terminal status, no accepted submission lost, no dead letter that
nothing earned, and recovery (ready again, progressing again) within the target.

Run alone with ``pytest -m chaos``; ``python bench/chaos.py`` prints the same scenarios as a table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos_harness import CRASH_BOUND, ScenarioResult, run_scenario

pytestmark = [pytest.mark.chaos, pytest.mark.browser]


async def scenario(name: str, tmp_path: Path, pg_database: str, redis_prefix: str) -> ScenarioResult:
    result = await run_scenario(name, tmp_path, admin_dsn=pg_database, redis_prefix=redis_prefix)
    summary = result.to_dict()
    assert result.problems == [], summary
    assert (result.lost, result.duplicates) == (0, 0), summary
    assert result.ready_s is not None, summary
    assert result.ready_s < result.bound_s, summary
    assert result.progress_s is not None, summary
    assert result.progress_s < result.bound_s, summary
    return result


async def test_chromium_killed_mid_scrape_is_relaunched_and_the_job_completes(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("browser_killed", tmp_path, pg_database, redis_prefix)
    assert result.extra["scraper_restarts"] >= 1
    assert result.extra["new_browser_s"] < result.bound_s


async def test_chromium_frozen_mid_scrape_is_detected_killed_and_replaced(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("browser_hung", tmp_path, pg_database, redis_prefix)
    assert result.extra["detected_s"] < result.extra["detect_bound_s"]


async def test_database_outage_turns_readiness_false_loses_nothing_and_resumes(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("database_outage", tmp_path, pg_database, redis_prefix)
    assert result.extra["went_unready"] is True


async def test_a_browser_past_its_memory_limit_is_recycled_and_jobs_complete(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("memory_recycle", tmp_path, pg_database, redis_prefix)
    assert result.extra["browser_restarts"] >= 2  # once per job's scrape: two jobs
    assert all("memory" in reason for reason in result.extra["recycle_reasons"])


async def test_pagespeed_429s_and_errors_open_its_breaker_which_recovers(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("pagespeed_rate_limited", tmp_path, pg_database, redis_prefix)
    assert result.extra["breaker_opened"] is True
    assert result.extra["retries"] > 0


async def test_maps_sorry_page_opens_the_maps_breaker_which_recovers(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("maps_sorry", tmp_path, pg_database, redis_prefix)
    assert result.extra["breaker_opened"] is True


async def test_a_partition_of_every_dependency_heals_without_loss(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("network_partition", tmp_path, pg_database, redis_prefix)
    # Readiness must say so while the partition lasts: a probe stuck on a blackholed link is cut at
    # its timeout without waiting for it to unwind.
    assert result.extra["went_unready"] is True


async def test_crashed_writer_and_scraper_are_back_within_a_second(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("actor_crash", tmp_path, pg_database, redis_prefix)
    assert result.extra["actor_back_s"]["writer"] < CRASH_BOUND, result.extra
    # The browser is not what crashed, so the restarted scraper keeps it (actors/scraper.py BrowserHost).
    assert result.extra["actor_back_s"]["scraper"] < CRASH_BOUND, result.extra


async def test_sigkill_mid_job_then_restart_resumes_within_ten_seconds(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("daemon_sigkill", tmp_path, pg_database, redis_prefix)
    assert result.extra["exit_status"] == -9


async def test_sigterm_mid_job_hands_work_back_and_a_restart_resumes_it(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    result = await scenario("daemon_sigterm", tmp_path, pg_database, redis_prefix)
    assert result.extra["exit_status"] == 0
