"""A job abroad through the whole daemon (actors, store, export): its leads' address parts and E.164
phones stored and exported, and the address result Google lists kept out and counted in progress."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from leadlawk_daemon.replicas.maps_business import generate_answer_set
from tests.support.collect import collect_with_replica

# A daemon and its Chromium, in a process of their own: not a fast test.
pytestmark = pytest.mark.browser


def test_a_collected_job_abroad_stores_and_exports_the_parts_and_counts_the_address_result(tmp_path: Path) -> None:
    """The whole path: a job in Berlin, through the daemon's actors, the store and the export."""
    query, location = "plumbers near 12 Main St", "Berlin, Germany"

    args = [
        "collect",
        query,
        "--location",
        location,
        "--limit",
        "15",
        "--no-pagespeed",
        "-o",
        str(tmp_path / "out.jsonl"),
    ]
    result = collect_with_replica(args, tmp_path / "c.db", max_results=15)
    assert result.returncode == 0, result.stderr[-2000:]
    truth = generate_answer_set(query, location, 0, 15).businesses
    assert truth[0].name == "12 Main St"
    rows = {row["place_id"]: row for row in map(orjson.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert set(rows) == {b.place_id for b in truth[1:]}  # the address result is no lead
    for business in truth[1:]:
        row = rows[business.place_id]
        assert row["country_code"] == "DE"
        assert row["street"] == business.address
        assert row["address_source"] == ("parsed" if business.address else None)
        if business.phone is not None and not business.compact:
            assert row["phone_e164"] == business.phone_e164
        assert row["kind"] == "business"
    with sqlite3.connect(tmp_path / "c.db") as db:
        (progress,) = db.execute("SELECT progress FROM jobs").fetchone()
    assert orjson.loads(progress)["addresses_skipped"] == 1
