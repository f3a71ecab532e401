"""``leadlawk schedule …`` on the database, with no daemon running."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.test_cli_control import cli


def test_a_schedule_is_added_with_submits_options_listed_run_paused_and_removed(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    added = cli("schedule", "add", "plumbers", "-l", "Omaha, NE", "--limit", "20", "--min-rating", "4",
                "--all", "--cron", "0 2 * * *", "--tz", "America/Chicago", "--overlap", "queue", db=db)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added schedule plumbers-in-omaha-ne\n")
    shown = orjson.loads(cli("schedule", "show", "plumbers-in-omaha-ne", db=db).stdout)
    # submit's options made the spec: area coverage included.
    assert shown["spec"]["min_rating"] == 4.0
    assert shown["spec"]["coverage"] == "area"
    assert (shown["cron"], shown["tz"], shown["overlap"], shown["catch_up"]) == (
        "0 2 * * *", "America/Chicago", "queue", "latest",
    )  # fmt: skip
    assert "next 20" in cli("schedule", "list", db=db).stdout

    job_id = cli("schedule", "run-now", "plumbers-in-omaha-ne", db=db).stdout.strip()
    assert job_id.startswith("s-plumbers-in-omaha-ne-")
    assert orjson.loads(cli("status", job_id, "--json", db=db).stdout)["spec"]["query"] == "plumbers"

    assert "paused" in cli("schedule", "pause", "plumbers-in-omaha-ne", db=db).stdout
    assert cli("schedule", "remove", "plumbers-in-omaha-ne", db=db).returncode == 0
    gone = cli("schedule", "remove", "plumbers-in-omaha-ne", db=db)
    assert (gone.returncode, gone.stderr.strip()) == (1, "leadlawk: no schedule 'plumbers-in-omaha-ne'")


def test_a_bad_schedule_is_one_line_naming_the_problem(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    bad = cli("schedule", "add", "plumbers", "--cron", "0 2 * *", "--tz", "Mars/Olympus", "--deliver", "nowhere", db=db)
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1
    for problem in ("cron: must have 5 fields", "tz: not an IANA time zone", "deliver: not a configured destination"):
        assert problem in bad.stderr
