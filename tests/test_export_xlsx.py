"""``leadlawk export -o leads.xlsx`` read back with openpyxl: typed cells, the formula-injection rule,
and ``--new-since`` against two jobs that share businesses."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from actors.clock import FakeClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.store import open_store
from leadlawk_daemon.store.base import JobLead
from leadlawk_daemon.store.export import FORMULA_PREFIXES, first_seen_after, parse_since
from tests.support.cli import run_cli as cli
from tests.test_cli_control import hostile_db

HOUR = 3600.0


def _sheet(path: Path) -> tuple[list[str], dict[str, dict[str, Any]], Any]:
    """The header, the rows by place_id (cells, not values), and the sheet itself."""
    sheet = load_workbook(path).active
    assert sheet is not None
    rows = list(sheet.iter_rows())
    header = [str(c.value) for c in rows[0]]
    return header, {str(r[0].value): dict(zip(header, r, strict=True)) for r in rows[1:]}, sheet


def _seed_two_jobs(url: str, start: float) -> None:
    """Job A (created at ``start``) finds Ana and Hansen; job B, an hour later, finds Hansen again
    and Zed for the first time. The store's clock is a FakeClock, so "later" is exact."""

    async def seed() -> None:
        clock = FakeClock(wall_start=start)
        async with open_store(url, migrate=True, clock=clock) as store:
            await store.create_job("job-a", {"id": "job-a", "query": "plumbers"})
            clock._now += 60
            await store.upsert_leads(
                [
                    Listing(
                        name="Ana's Plumbing",
                        place_id="ChIJaaaa",
                        rating=4.7,
                        review_count=98,
                        website="https://ana.example/",
                        maps_url="https://www.google.com/maps/place/?q=place_id:a",
                    ),
                    Listing(name="Hansen Plumbing", place_id="ChIJbbbb", rating=3.1),
                ]
            )
            await store.upsert_job_leads(
                "job-a", [JobLead("ChIJaaaa", 1, True, []), JobLead("ChIJbbbb", 2, False, ["rating 3.1 below 4.0"])]
            )
            clock._now += HOUR
            await store.create_job("job-b", {"id": "job-b", "query": "plumbers"})
            clock._now += 60
            await store.upsert_leads(
                [
                    Listing(name="Hansen Plumbing", place_id="ChIJbbbb", rating=3.2),
                    Listing(name="Zed Pipes", place_id="ChIJzzzz", review_count=3),
                ]
            )
            await store.upsert_job_leads("job-b", [JobLead("ChIJbbbb", 1, False, []), JobLead("ChIJzzzz", 2, True, [])])

    asyncio.run(seed())


def test_an_xlsx_export_has_typed_cells_links_and_a_frozen_header(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    start = time.time() - 2 * HOUR
    _seed_two_jobs(url, start)
    out = tmp_path / "leads.xlsx"
    done = cli("export", "--job", "job-a", "-o", str(out), db=url)
    assert (done.returncode, done.stderr.strip()) == (0, f"wrote 2 lead(s) to {out}")
    header, rows, sheet = _sheet(out)
    assert sheet.freeze_panes == "A2"
    assert header[:3] == ["place_id", "name", "cid"]
    ana = rows["ChIJaaaa"]
    assert (ana["rating"].value, ana["review_count"].value) == (4.7, 98)
    assert ana["rating"].data_type == "n"
    assert ana["qualified"].value is True
    assert rows["ChIJbbbb"]["qualified"].value is False
    assert ana["website"].hyperlink is not None
    assert ana["website"].hyperlink.target == "https://ana.example/"
    assert ana["maps_url"].hyperlink is not None
    seen = ana["first_seen_at"].value
    assert isinstance(seen, datetime)  # a date cell, in UTC (Excel keeps no zone)
    assert abs(seen.replace(tzinfo=UTC).timestamp() - (start + 60)) < 1
    assert ana["reasons"].value == "[]"
    assert rows["ChIJbbbb"]["reasons"].value == '["rating 3.1 below 4.0"]'
    assert rows["ChIJbbbb"]["website"].value is None  # unknown stays empty, not "None"


def test_an_xlsx_export_never_holds_a_live_formula_from_scraped_text(tmp_path: Path) -> None:
    url = hostile_db(tmp_path)
    out = tmp_path / "hostile.xlsx"
    assert cli("export", "--job", "job-h", "--format", "xlsx", "-o", str(out), db=url).returncode == 0
    _, rows, sheet = _sheet(out)
    eq = rows["ChIJeq"]
    assert eq["name"].value == '\'=HYPERLINK("http://evil.example","Call us")'
    assert eq["phone"].value == "'+1-555-0100"
    assert eq["category"].value == "'@SUM(A1:A9)"
    assert rows["ChIJtab"]["name"].value == "'\tTabbed Roofing"
    assert rows["ChIJtab"]["phone"].value == "(402) 555-0101"
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f"  # not one formula in the file
            assert not (isinstance(cell.value, str) and cell.value.startswith(FORMULA_PREFIXES))


def test_new_since_a_job_or_a_date_exports_only_businesses_first_seen_after_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'since.db'}"
    start = time.time() - 2 * HOUR
    _seed_two_jobs(url, start)

    def exported(*args: str) -> set[str]:
        out = tmp_path / "since.xlsx"
        done = cli("export", "-o", str(out), *args, db=url)
        assert done.returncode == 0, done.stderr
        return set(_sheet(out)[1])

    # Hansen is in both jobs but was first seen in job A: new since B is Zed alone.
    assert exported("--new-since", "job-b") == {"ChIJzzzz"}
    assert exported("--new-since", "job-a") == {"ChIJaaaa", "ChIJbbbb", "ChIJzzzz"}
    between = datetime.fromtimestamp(start + HOUR / 2, UTC).isoformat()
    assert exported("--new-since", between) == {"ChIJzzzz"}
    day_after = datetime.fromtimestamp(start + 2 * 86_400, UTC).date().isoformat()
    assert exported("--new-since", day_after) == set()
    # With --job, the same cut applies inside that job's leads.
    assert exported("--job", "job-b", "--new-since", "job-b") == {"ChIJzzzz"}
    csv_out = cli("export", "--new-since", "job-b", db=url)
    assert [line.split(",")[0] for line in csv_out.stdout.splitlines()[1:]] == ["ChIJzzzz"]
    bad = cli("export", "--new-since", "last tuesday", db=url)
    assert bad.returncode == 1
    assert "--new-since: no job 'last tuesday'" in bad.stderr
    assert cli("export", "--format", "xlsx", db=url).stderr.strip() == (
        "leadlawk: an xlsx export is a file: give -o FILE.xlsx"
    )


def test_a_job_that_started_cuts_at_its_start_and_a_time_without_zone_is_utc(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cut.db'}"
    start = time.time() - 2 * HOUR
    _seed_two_jobs(url, start)

    async def lease_job_a() -> None:
        async with open_store(url) as store:  # the database's clock: now, after every lead was seen
            leased = await store.lease_next_job("test", 60)
            assert leased is not None
            assert leased.id == "job-a"

    asyncio.run(lease_job_a())
    out = tmp_path / "cut.xlsx"
    assert cli("export", "-o", str(out), "--new-since", "job-a", db=url).returncode == 0
    assert set(_sheet(out)[1]) == set()  # started after all three were first seen
    assert parse_since("2026-11-29") == datetime(2026, 11, 29, tzinfo=UTC)
    assert parse_since("2026-11-29T10:00:00+02:00") == datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert parse_since("2026-11-29T10:00:00") == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert parse_since("job-a") is None
    rows: list[dict[str, Any]] = [{"first_seen_at": "2026-11-29T10:00:00.5+00:00"}, {"first_seen_at": None}]
    assert first_seen_after(rows, datetime(2026, 11, 29, 10, tzinfo=UTC)) == rows[:1]


def test_collect_and_export_choose_the_file_format_by_one_rule(tmp_path: Path) -> None:
    from leadlawk_daemon.control import format_of, write_export

    assert [format_of(name) for name in ("a.xlsx", "A.XLSX", "a.jsonl", "a.ndjson", "a.json", "a.csv", "a.txt")] == [
        "xlsx",
        "xlsx",
        "jsonl",
        "jsonl",
        "jsonl",
        "csv",
        "csv",
    ]
    rows: list[dict[str, Any]] = [{"place_id": "ChIJx", "name": "=1+1", "rating": 4.5}]
    asyncio.run(write_export(rows, str(tmp_path / "c.xlsx"), with_job=False))  # what `collect -o c.xlsx` calls
    _, by_id, _ = _sheet(tmp_path / "c.xlsx")
    assert (by_id["ChIJx"]["name"].value, by_id["ChIJx"]["rating"].value) == ("'=1+1", 4.5)
    asyncio.run(write_export(rows, str(tmp_path / "c.csv"), with_job=False))
    assert (tmp_path / "c.csv").read_text(encoding="utf-8").splitlines()[1].startswith("ChIJx,'=1+1,")
