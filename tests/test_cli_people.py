"""The CLI for people: on a terminal (a real pseudo-terminal), readable logs and coloured statuses;
through a pipe, the plain lines and JSON that scripts and log collectors read."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import orjson

from leadlawk_daemon.logs import TextFormatter, register_secret
from tests.pty_session import PtyProcess, cli_env
from tests.test_cli_control import cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TEXT_LINE = r"^\d\d:\d\d:\d\d INFO +http listening host=\S+ port=\d+$"


def _pty(*args: str, db: str, extra: dict[str, str] | None = None) -> tuple[int, str]:
    with PtyProcess(args, cli_env(db, extra)) as run:
        code = run.wait()
        return code, run.output


def test_status_is_a_readable_summary_and_json_on_request(db: str) -> None:
    shown = cli("status", "job-a", db=db)
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert lines[0] == "job       job-a"
    assert "query     plumbers in Omaha, NE" in lines
    assert "status    queued" in lines
    assert "leads     0 found, 0 enriched, 0 qualified, 0 written" in lines
    assert any(re.fullmatch(r"created   \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", line) for line in lines)
    assert "\x1b" not in shown.stdout  # no colour into a pipe
    assert orjson.loads(cli("status", "job-a", "--json", db=db).stdout)["spec"]["location"] == "Omaha, NE"
    code, text = _pty("status", "job-a", db=db)
    assert code == 0
    assert "status    \x1b[36mqueued\x1b[0m" in text  # on a terminal, the status in its colour
    assert ANSI.sub("", text).splitlines()[:3] == lines[:3]


def test_jobs_colours_statuses_on_a_terminal_only(db: str) -> None:
    assert cli("cancel", "job-b", db=db).returncode == 0
    piped = cli("jobs", db=db)
    assert "\x1b" not in piped.stdout
    assert [line.split()[:2] for line in piped.stdout.splitlines()[1:]] == [["job-b", "cancelled"], ["job-a", "queued"]]
    code, text = _pty("jobs", db=db)
    assert code == 0
    assert "\x1b[35mcancelled " in text
    assert "\x1b[36mqueued    " in text
    # Colour changes no column: stripped of it, the terminal's table is the pipe's.
    assert ANSI.sub("", text) == piped.stdout
    code, text = _pty("jobs", db=db, extra={"NO_COLOR": "1"})
    assert "\x1b" not in text


def test_the_daemon_logs_text_on_a_terminal_and_json_elsewhere(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'run.db'}"
    env = cli_env(db_url, {"PORT": "0", "LOG_LEVEL": "INFO"})
    with PtyProcess(["run"], env, cwd=tmp_path) as daemon:
        line = daemon.read_until(TEXT_LINE).group(0)
        assert "{" not in line
        daemon.terminate()
        assert daemon.wait() == 0
    # Under a Procfile stdout is a pipe: JSON lines, whatever the terminal the operator started from.
    with subprocess.Popen([sys.executable, "-m", "leadlawk_daemon", "run"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env, cwd=tmp_path) as piped:
        assert piped.stdout is not None
        record = orjson.loads(piped.stdout.readline())
        piped.terminate()
        piped.communicate(timeout=30)
    assert {"ts", "level", "event", "logger"} <= set(record)
    with PtyProcess(["run"], env | {"LOG_FORMAT": "json"}, cwd=tmp_path) as daemon:
        first = daemon.read_until(r"^\{.*\}$").group(0)
        assert orjson.loads(first)["level"] == "info"
        daemon.terminate()
        assert daemon.wait() == 0


def test_a_text_log_line_is_redacted_like_the_json_one() -> None:
    register_secret("s3cr3t-token-xyz")
    record = logging.LogRecord(
        "leadlawk.test", logging.WARNING, __file__, 1, "calling %s", ("api?key=s3cr3t-token-xyz",), None
    )
    record.job_id = "j1"
    record.detail = "token s3cr3t-token-xyz here"
    line = TextFormatter().format(record)
    assert "s3cr3t" not in line
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING calling api\?key=\*\*\* job_id=j1 detail='token \*\*\* here'", line)


def test_the_summary_says_what_holds_a_job_up_and_how_it_ended() -> None:
    from datetime import UTC, datetime

    from leadlawk_daemon.control import job_summary
    from leadlawk_daemon.store.base import Job

    began = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
    job = Job(
        id="j1", spec={"query": "plumbers", "location": "Omaha, NE", "limit": 50}, status="failed",
        created_at=began, started_at=began, finished_at=began.replace(minute=4, second=5), found=12, written=12,
        failed=2, error="the job ran past max_runtime_s", attempts=2,
        progress={"waiting_on": ["pagespeed"], "maps_view": "limited",
                  "area": {"cells_done": 3, "cells_pending": 5, "found": 12}},
    )
    lines = job_summary(job).splitlines()
    assert lines[1:10] == [
        "query     plumbers in Omaha, NE, limit 50",
        "status    failed (attempt 2)",
        "leads     12 found, 0 enriched, 0 qualified, 12 written, 2 failed",
        "area      3 cell(s) done, 5 pending, 12 found",
        "waiting   on pagespeed",
        "maps view limited",
        "error     the job ran past max_runtime_s",
        "created   2026-11-29T15:00:00+00:00",
        "started   2026-11-29T15:00:00+00:00",
    ]
    assert lines[10:12] == ["finished  2026-11-29T15:04:05+00:00", "took      4m 05s"]
    assert lines[12].startswith("Google Maps showed its limited view (limited)")
