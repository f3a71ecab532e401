"""The failure model against a real daemon: outages pause jobs and never fail them; a lead's own
failure is recorded on the lead and replayable; only a cause retrying cannot fix fails a job.

``make check`` runs one cell of each fault kind (``QUICK_CELLS``); ``make chaos`` runs the whole
matrix (``pytest -m matrix``): every fault on every dependency, short and long. See
:mod:`tests.fault_matrix`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actors.racing import first_of
from tests.chaos_harness import ChaosRig, JobExpectation, chaos_rig, parse_metrics
from tests.fault_matrix import CELLS, QUICK_CELLS, Cell, run_cell
from tests.waiting import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.browser]


async def _assert_cell(cell: Cell, tmp_path: Path, pg_database: str, redis_prefix: str) -> None:
    result = await run_cell(cell, tmp_path, admin_dsn=pg_database, redis_prefix=redis_prefix)
    assert result.problems == [], (cell.name, result.waited_on, result.problems)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("cell", QUICK_CELLS, ids=lambda c: c.name)
async def test_an_outage_pauses_the_job_and_it_ends_with_its_exact_answer_set(
    cell: Cell, tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    await _assert_cell(cell, tmp_path, pg_database, redis_prefix)


@pytest.mark.matrix
@pytest.mark.timeout(240)
@pytest.mark.parametrize("cell", [c for c in CELLS if c not in QUICK_CELLS], ids=lambda c: c.name)
async def test_fault_matrix_cell(cell: Cell, tmp_path: Path, pg_database: str, redis_prefix: str) -> None:
    await _assert_cell(cell, tmp_path, pg_database, redis_prefix)


async def _wait(predicate_rows: object, rig: ChaosRig, job_id: str, within: float = 90.0) -> dict[str, object]:
    row: dict[str, object] | None = None

    async def met() -> dict[str, object] | None:
        nonlocal row
        row = (await rig.job_rows([job_id])).get(job_id)
        return row if row is not None and callable(predicate_rows) and predicate_rows(row) else None

    return await eventually(met, within, lambda: f"{job_id}: the condition ({row})\n{rig.daemon.log_text()[-3000:]}",
                            every=0.1)


def _dlq(rig: ChaosRig, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": rig.database_dsn}
    return subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "dlq", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.timeout(240)
async def test_a_lead_whose_pagespeed_calls_always_fail_is_recorded_and_the_job_succeeds_then_replays(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    async with chaos_rig(tmp_path, admin_dsn=pg_database, redis_prefix=redis_prefix) as rig:
        answers = await rig.answers("plumbers", "Omaha, NE")
        victim = next(a for a in answers if a.get("website"))
        site = str(victim["website"]).split("//", 1)[-1].strip("/")
        await rig.replica_faults("pagespeed", {"server_error_for": [site]})
        job = JobExpectation("one-bad-lead", "plumbers", "Omaha, NE")
        await rig.submit_http(job)
        row = await _wait(lambda r: r["status"] not in ("queued", "running"), rig, job.job_id, 120)
        assert row["status"] == "succeeded", row  # one lead's failure is not the job's
        assert row["failed"] == 1, row
        async with rig.db() as conn:
            failed = await conn.fetch(
                "SELECT place_id, status, error FROM job_leads WHERE job_id = $1 AND status = 'failed'", job.job_id
            )
            letters = await conn.fetch("SELECT id, kind, reason, payload FROM dead_letters")
        assert [r["place_id"] for r in failed] == [victim["place_id"]]
        assert "gave up after" in failed[0]["error"]
        assert [(r["kind"], victim["place_id"] in r["payload"]) for r in letters] == [("lead", True)]
        metrics = await rig.metrics()
        # Counted once: not by the enricher, a wrapper and the dead-letter writer each.
        assert metrics.get('leadlawk_dead_letters_total{kind="lead"}') == 1.0

        # PageSpeed healthy again: the replay enriches the lead, and the job is whole.
        await rig.replica_faults("pagespeed", {})
        replay = _dlq(rig, "replay", "--all")
        assert replay.returncode == 0, replay.stderr
        await _wait(
            lambda r: r["status"] == "succeeded" and r["failed"] == 0 and r["enriched"] >= 1, rig, job.job_id, 120
        )
        async with rig.db() as conn:
            status = await conn.fetchrow(
                "SELECT status, error FROM job_leads WHERE job_id = $1 AND place_id = $2",
                job.job_id,
                victim["place_id"],
            )
            tested = await conn.fetchval(
                "SELECT count(*) FROM pagespeed_results WHERE place_id = $1 AND error IS NULL", victim["place_id"]
            )
        assert (status["status"], status["error"], tested) == ("ok", None, 1)
        invariants = await rig.check(expected_dead_letters=None)
        assert invariants.problems == []


@pytest.mark.timeout(240)
async def test_a_poison_job_that_kills_the_daemon_each_time_fails_after_max_attempts(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    async with chaos_rig(
        tmp_path, admin_dsn=pg_database, redis_prefix=redis_prefix, env={"LEADLAWK__JOBS__MAX_ATTEMPTS": "2"}
    ) as rig:
        await rig.pace()
        job = JobExpectation("poison", "plumbers", "Omaha, NE", status="failed")
        await rig.submit_http(job)
        await rig.wait_running(job.job_id, 3)  # some leads found before the first crash
        rig.stop_daemon()
        kills = 1
        await rig.start_daemon()

        async def failed_or_killed_again() -> bool:
            nonlocal kills
            await first_of(
                rig.daemon.wait_log(
                    lambda line: line.get("event") == "job started" and line.get("job_id") == job.job_id, within=60
                ),
                _wait(lambda r: r["status"] == "failed", rig, job.job_id, within=60),
            )
            if (await rig.job_rows([job.job_id]))[job.job_id]["status"] == "failed":
                return True
            # The job takes the daemon down every time this daemon runs it (out of memory, say).
            rig.stop_daemon()
            kills += 1
            await rig.start_daemon()
            return False

        await eventually(failed_or_killed_again, 150, "the poison job failed", every=0)
        row = (await rig.job_rows([job.job_id]))[job.job_id]
        assert row["status"] == "failed", (row, kills)
        assert "died 2 times" in str(row["error"]), row
        assert kills == 2
        # The daemon that saw it fail lives on and announced it.
        text = rig.daemon.log_text()
        assert "its holders died too often" in text or "died 2 times" in text
        # Leads found before the crashes are kept.
        assert int(row["lead_rows"]) > 0


@pytest.mark.timeout(240)
async def test_an_outage_longer_than_max_wait_hands_the_job_back_and_it_resumes(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    async with chaos_rig(
        tmp_path, admin_dsn=pg_database, redis_prefix=redis_prefix, env={"LEADLAWK__JOBS__MAX_WAIT": "3s"}
    ) as rig:
        await rig.pace()
        job = JobExpectation("patient", "plumbers", "Omaha, NE")
        await rig.submit_http(job)
        await rig.wait_running(job.job_id, 3)
        await rig.proxies["maps"].refuse()
        try:
            await rig.daemon.wait_log(lambda line: line.get("event") == "job handed back", within=30)
            row = (await rig.job_rows([job.job_id]))[job.job_id]
            assert row["status"] in ("queued", "running"), row  # back in the queue, never failed
        finally:
            await rig.proxies["maps"].reopen()
        await rig.wait_finished(120)
        invariants = await rig.check(expected_dead_letters=0)
        assert invariants.problems == []
        code, text = await rig.daemon.get("/metrics")
        assert code == 200
        assert parse_metrics(text).get('leadlawk_jobs_total{status="failed"}', 0.0) == 0.0



@pytest.mark.timeout(240)
async def test_time_paused_on_an_outage_does_not_count_against_max_runtime(
    tmp_path: Path, pg_database: str, redis_prefix: str
) -> None:
    async with chaos_rig(tmp_path, admin_dsn=pg_database, redis_prefix=redis_prefix) as rig:
        await rig.replica_faults("maps", {"slow_ms": 150})
        job = JobExpectation("budgeted", "plumbers", "Omaha, NE")
        # About 8 s of work at this pace, inside a 15 s budget; the outage below lasts 12 s.
        code, body = await rig.daemon.post("/jobs", job.spec(max_runtime_s=15))
        assert code == 202, body
        rig.jobs[job.job_id] = job
        await rig.wait_running(job.job_id, 3)
        await rig.proxies["maps"].refuse()
        try:
            await asyncio.sleep(12)
            row = (await rig.job_rows([job.job_id]))[job.job_id]
            assert row["status"] == "running", row
        finally:
            await rig.proxies["maps"].reopen()
        await rig.wait_finished(120)
        invariants = await rig.check(expected_dead_letters=0)
        assert invariants.problems == []
