"""The operator's CLI against a real store: jobs, status, cancel, export, dlq, collect."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.store import open_store
from leadlawk_daemon.store.base import JobLead
from tests.daemon_process import ROOT


def cli(
    *args: str, db: str, extra: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env |= {"DATABASE_URL": db, "PYTHONPATH": str(ROOT), **(extra or {})}
    return subprocess.run([sys.executable, "-m", "leadlawk_daemon", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=cwd or ROOT)


def test_jobs_status_and_cancel(db: str) -> None:
    listing = cli("jobs", db=db)
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()[1:]] == ["job-b", "job-a"]
    status = cli("status", "job-a", "--json", db=db)
    assert orjson.loads(status.stdout)["spec"]["location"] == "Omaha, NE"
    assert cli("status", "nope", db=db).stderr.strip() == "leadlawk: no job 'nope'"
    assert cli("cancel", "job-b", db=db).returncode == 0
    assert orjson.loads(cli("status", "job-b", "--json", db=db).stdout)["status"] == "cancelled"
    again = cli("cancel", "job-b", db=db)
    assert (again.returncode, again.stderr.strip()) == (1, "leadlawk: job job-b already cancelled: nothing to cancel")
    assert cli("jobs", "--status", "bogus", db=db).returncode == 1


def test_export_csv_and_jsonl_by_job_and_qualified(db: str, tmp_path: Path) -> None:
    out = tmp_path / "leads.csv"
    assert cli("export", "--job", "job-a", "-o", str(out), db=db).returncode == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["name"], r["rank"], r["qualified"]) for r in rows] == [
        ("Ana's Plumbing", "1", "True"), ("Hansen Plumbing", "2", "False")
    ]
    qualified = cli("export", "--job", "job-a", "--qualified", "--format", "jsonl", db=db)
    lines = [orjson.loads(line) for line in qualified.stdout.splitlines()]
    assert [line["place_id"] for line in lines] == ["ChIJaaaa"]
    assert cli("export", "--job", "nope", db=db).returncode == 1


def test_dlq_list_show_and_replay(db: str) -> None:
    listing = cli("dlq", "list", db=db).stdout.splitlines()
    assert len(listing) == 3
    shown = orjson.loads(cli("dlq", "show", "1", db=db).stdout)
    assert shown["reason"] == "query: must not be empty"
    # Still invalid: it stays a dead letter with its attempts raised and the new reason.
    failed = cli("dlq", "replay", "1", db=db)
    assert failed.returncode == 1
    assert "failed again: invalid job spec" in failed.stdout
    again = orjson.loads(cli("dlq", "show", "1", db=db).stdout)
    assert again["attempts"] == 2
    assert again["replayed_at"] is None
    # Valid now: it becomes a queued job, once, and the letter is marked replayed.
    assert cli("dlq", "replay", "2", db=db).returncode == 0
    assert orjson.loads(cli("status", "revived", "--json", db=db).stdout)["status"] == "queued"
    assert orjson.loads(cli("dlq", "show", "2", db=db).stdout)["replayed_at"] is not None
    assert len(cli("dlq", "list", db=db).stdout.splitlines()) == 2  # replayed ones only with --all
    assert len(cli("dlq", "list", "--all", db=db).stdout.splitlines()) == 3
    assert cli("dlq", "show", db=db).returncode == 2


@pytest.mark.browser
def test_collect_runs_one_job_in_process_and_writes_a_file(tmp_path: Path) -> None:
    async def run_collect() -> subprocess.CompletedProcess[str]:
        from leadlawk_daemon.replicas.maps import serve_maps_replica
        from leadlawk_daemon.replicas.pagespeed import serve_pagespeed_replica

        async with serve_maps_replica("127.0.0.1", 0, max_results=12) as maps_url, serve_pagespeed_replica(
            "127.0.0.1", 0
        ) as psi_url:
            extra = {"LEADLAWK__MAPS__BASE_URL": maps_url, "LEADLAWK__PAGESPEED__BASE_URL": psi_url,
                     "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "6000", "PORT": "0",
                     "LEADLAWK__SERVER__HOST": "127.0.0.1"}
            output = str(tmp_path / "out.jsonl")
            args = ["collect", "bakeries", "--location", "Omaha, NE", "--limit", "50", "-o", output]
            env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
            env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "PYTHONPATH": str(ROOT), **extra}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "leadlawk_daemon", *args, env=env, cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())

    result = asyncio.run(run_collect())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "succeeded; 12 found" in result.stdout
    rows = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["rank"] for row in rows] == list(range(1, 13))


def test_replaying_a_job_dead_letter_requeues_that_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"

    async def seed() -> None:
        async with open_store(url, migrate=True) as store:
            await store.create_job("failing", {"id": "failing", "query": "plumbers"})
            assert await store.lease_next_job("d1", 30) is not None
            await store.finish_job("failing", "d1", "failed", "the search could not be read")
            await store.add_dead_letter("job", {"job_id": "failing", "query": "plumbers"}, "scraper: boom", 3)
            await store.add_dead_letter("lead", {"job_id": "ghost", "place_id": "ChIJx"}, "enricher: 500", 5)

    asyncio.run(seed())
    assert cli("dlq", "replay", "1", db=url).returncode == 0
    assert orjson.loads(cli("status", "failing", "--json", db=url).stdout)["status"] == "queued"
    ghost = cli("dlq", "replay", "2", db=url)
    assert ghost.returncode == 1
    assert "job ghost cannot be requeued (it is unknown)" in ghost.stdout


def test_submit_wait_on_a_known_id_follows_the_existing_job(db: str) -> None:
    async def finish() -> None:
        async with open_store(db) as store:
            assert await store.lease_next_job("d1", 30) is not None  # job-a, the oldest
            await store.finish_job("job-a", "d1", "succeeded")

    asyncio.run(finish())
    result = cli("submit", "plumbers", "--id", "job-a", "--wait", db=db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "job-a was submitted before (succeeded); following it"
    assert result.stdout.splitlines()[-1].startswith("job-a succeeded")


HOSTILE = [
    Listing(name='=HYPERLINK("http://evil.example","Call us")', place_id="ChIJeq", phone="+1-555-0100",
            category="@SUM(A1:A9)", address="-2+3 Main St"),
    Listing(name="\tTabbed Roofing", place_id="ChIJtab", address="\rCR Street", phone="(402) 555-0101"),
]


def hostile_db(tmp_path: Path) -> str:
    """A SQLite store whose job ``job-h`` holds the :data:`HOSTILE` leads (every spreadsheet format's test)."""
    url = f"sqlite:///{tmp_path / 'hostile.db'}"

    async def seed() -> None:
        async with open_store(url, migrate=True) as store:
            await store.create_job("job-h", {"id": "job-h", "query": "plumbers"})
            await store.upsert_leads(HOSTILE)
            await store.upsert_job_leads("job-h", [JobLead("ChIJeq", 1, True, []), JobLead("ChIJtab", 2, True, [])])

    asyncio.run(seed())
    return url


def test_a_csv_export_never_holds_a_live_formula_from_scraped_text(tmp_path: Path) -> None:
    url = hostile_db(tmp_path)
    out = tmp_path / "leads.csv"
    assert cli("export", "--job", "job-h", "-o", str(out), db=url).returncode == 0
    with out.open(encoding="utf-8", newline="") as f:  # newline="": a CR inside a cell stays a CR
        rows = {r["place_id"]: r for r in csv.DictReader(f)}
    assert rows["ChIJeq"]["name"] == "'=HYPERLINK(\"http://evil.example\",\"Call us\")"
    assert rows["ChIJeq"]["phone"] == "'+1-555-0100"
    assert rows["ChIJeq"]["category"] == "'@SUM(A1:A9)"
    assert rows["ChIJeq"]["address"] == "'-2+3 Main St"
    assert rows["ChIJtab"]["name"] == "'\tTabbed Roofing"
    assert rows["ChIJtab"]["address"] == "'\rCR Street"
    assert rows["ChIJtab"]["phone"] == "(402) 555-0101"  # nothing to neutralise: unchanged
    for row in rows.values():
        assert not any(str(cell).startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())
    # JSONL is data, not a spreadsheet: the values stay exactly as scraped.
    jsonl = cli("export", "--job", "job-h", "--format", "jsonl", db=url).stdout.splitlines()
    assert {orjson.loads(line)["name"] for line in jsonl} == {HOSTILE[0].name, HOSTILE[1].name}


def test_the_spreadsheet_rule_is_one_function_for_every_sheet_format() -> None:
    from leadlawk_daemon.store.export import spreadsheet_safe

    assert spreadsheet_safe("=1+1") == "'=1+1"
    assert spreadsheet_safe("+1-555-0100") == "'+1-555-0100"
    assert spreadsheet_safe("Ana's Plumbing") == "Ana's Plumbing"
    assert spreadsheet_safe(-3.5) == -3.5  # a number is a number, not text that looks like a formula
    assert spreadsheet_safe(None) is None
