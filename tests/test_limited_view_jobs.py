"""Jobs under Google's limited view, end to end through the pipeline (real PostgreSQL, Chromium and
the offline Maps replica): what the job's record says, how hidden review counts qualify, and a
lost session waited out under ``maps.on_limited_view: wait`` until a fresh one is imported,
losing nothing and showing the session's cookies nowhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from leadlawk_daemon.cli import main
from leadlawk_daemon.logs import JsonFormatter
from leadlawk_daemon.maps.session import write_session_file
from leadlawk_daemon.qualify import HIDDEN_REVIEW_COUNT
from leadlawk_daemon.settings import masked
from tests import test_pipeline
from tests.test_pipeline import FEED, Replicas, running_pipeline, settings_for, spec, stored_leads

# The pipeline tests' short feed: a share of 40 hidden is the same case as of 120, at a third of the work.
pytestmark = [pytest.mark.browser, pytest.mark.maps_replica(seed=11, max_results=FEED)]

QUERY, LOCATION = "plumbers", "Omaha, NE"
# The pipeline tests' fixtures: a database of each test's own, and the replicas.
database = test_pipeline.database
replicas = test_pipeline.replicas


async def _post(replicas: Replicas, path: str, body: Any = None) -> Any:
    async with replicas.session.post(f"{replicas.maps}{path}", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _hidden(replicas: Replicas) -> set[str]:
    params = {"q": QUERY, "location": LOCATION}
    async with replicas.session.get(f"{replicas.maps}/_answers", params=params) as resp:
        return set((await resp.json())["hidden_in_limited_view"])


async def test_a_signed_out_job_is_recorded_limited_and_hidden_review_counts_qualify_as_configured(
    database: str, replicas: Replicas
) -> None:
    await _post(replicas, "/_faults", {"limited_view": 0.3})
    hidden = await _hidden(replicas)
    settings = settings_for(database, replicas.maps, replicas.pagespeed)
    async with running_pipeline(settings) as run:
        assert await run.pipeline.submit(spec("rejects", min_reviews=1, limit=500))
        assert await run.pipeline.submit(spec("accepts", min_reviews=1, limit=500, min_reviews_when_hidden="accept"))
        rejects = await run.events.finished("rejects", timeout=90)
        accepts = await run.events.finished("accepts", timeout=90)
        answers = await replicas.answers(QUERY, LOCATION)
        shown = len(answers) - len(hidden)

        assert rejects["status"] == "succeeded"
        assert rejects["maps_view"] == "limited"
        rows = await stored_leads(run.store, "rejects")
        assert rejects["filters_not_applied"] == {"count": shown, "reason": HIDDEN_REVIEW_COUNT}
        assert {r["place_id"] for r in rows} == {a["place_id"] for a in answers} - hidden
        assert all(HIDDEN_REVIEW_COUNT in r["reasons"] for r in rows)
        assert not any(r["qualified"] for r in rows)

        accepted = await stored_leads(run.store, "accepts")
        assert accepts["maps_view"] == "limited"
        assert all(HIDDEN_REVIEW_COUNT not in (r["reasons"] or []) for r in accepted)
        assert all(r["qualified"] for r in accepted)

        job = await run.store.get_job("rejects")
        assert job is not None
        assert (job.progress or {})["maps_view"] == "limited"
        registry = run.pipeline.metrics.registry
        assert (registry.get_sample_value("leadlawk_maps_view_total", {"view": "limited"}) or 0) >= 2
        assert registry.get_sample_value("leadlawk_maps_view_limited") == 1


async def test_waiting_on_a_lost_session_pauses_the_job_and_a_fresh_import_resumes_it_losing_nothing(
    database: str,
    replicas: Replicas,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    await _post(replicas, "/_faults", {"limited_view": 0.3})
    session_file = tmp_path / "maps-session.json"
    lost = await _post(replicas, "/_session")
    write_session_file(session_file, lost["storage_state"]["cookies"])
    await _post(replicas, "/_session/expire")  # signed out before the job starts
    settings = settings_for(
        database, replicas.maps, replicas.pagespeed,
        LEADLAWK__MAPS__SESSION_FILE=str(session_file),
        LEADLAWK__MAPS__ON_LIMITED_VIEW="wait",
        LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__FAILURE_THRESHOLD="2",
        LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__RESET_TIMEOUT="1s",
        LEADLAWK__JOBS__MAX_WAIT="2s",
    )
    async with running_pipeline(settings) as run:
        assert await run.pipeline.submit(spec("waits", min_reviews=1, limit=500))
        await run.events.wait_for(
            lambda: any("google_maps" in e.get("waiting_on", []) for e in run.events.of("job.progress", "waits"))
        )
        # Past jobs.max_wait the job goes back to the queue, never failed, and is taken up again.
        await run.events.wait_for(lambda: any(e.get("requeued") for e in run.events.of("job.progress", "waits")))
        assert not run.events.of("job.finished", "waits")
        signed_out = run.events.of("maps.session_signed_out", "waits")
        assert signed_out
        assert signed_out[0]["on_limited_view"] == "wait"
        fresh = await _post(replicas, "/_session")
        export = tmp_path / "exported-cookies.json"  # as a cookie extension writes it
        export.write_text(json.dumps(fresh["cookies"]), encoding="utf-8")
        assert main(["maps-session", "import", str(export), "--to", str(session_file)]) == 0
        finished = await run.events.finished("waits", timeout=90)

        answers = await replicas.answers(QUERY, LOCATION)
        rows = await stored_leads(run.store, "waits")
        assert finished["status"] == "succeeded"
        assert finished["maps_view"] == "full"
        assert "filters_not_applied" not in finished
        assert [r["place_id"] for r in rows] == [a["place_id"] for a in answers]
        assert [r["review_count"] for r in rows] == [a["review_count"] for a in answers]
        job = await run.store.get_job("waits")
        assert job is not None

        # The session's cookies appear in nothing the run produced.
        formatter = JsonFormatter()
        produced = "\n".join(
            [formatter.format(record) for record in caplog.records]
            + [json.dumps(run.events.items, default=str), repr(run.dead_letters.letters)]
            + [json.dumps(job.progress, default=str), json.dumps(rows, default=str)]
            + [json.dumps(masked(settings)), *capsys.readouterr()]
        )
        assert any("signed out" in record.getMessage() for record in caplog.records)
        for cookie in (*lost["cookies"], *fresh["cookies"]):
            assert cookie["value"] not in produced
