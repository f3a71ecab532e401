"""The writer's upsert rate against plain COPY (the physical ceiling) and row-by-row INSERT.

Creates its own PostgreSQL database (dropped at the end) on the server of ``LEADLAWK_BENCH_PG``
(default ``postgresql://postgres@127.0.0.1:5432/test``), and measures, on the ``leads`` table,
each figure ``--rounds`` times, interleaved so that a noisy neighbour hits all of them alike:

- the writer's upsert (the store's ``upsert_leads`` on PostgreSQL, every strategy it has) in batches of
  ``--batch`` rows (default: the built-in ``database.batch_size``), from ``Listing`` objects:
  into the empty table ("fresh"), then the same rows again into the full table ("replay":
  every row a conflict, ``last_seen_at`` moves on);
- plain COPY of the same rows into the same empty table, in one stream, from records built
  before the clock starts: no conflict handling, no batching, no conversion. This is the
  ceiling the target is measured against (``ratio_to_copy``);
- for context only: that COPY with the Listing-to-record conversion timed too (the upsert's
  input), and COPY in batches of ``--batch`` rows, each its own transaction;
- one ``INSERT … ON CONFLICT`` statement per row, as the old system wrote.

It also times the Python side of an upsert alone (dedupe, checks, record building), so the
server's share is visible. Medians are reported, with min-max over the rounds.

Usage: python bench/write.py [--rows N] [--batch B] [--rounds R]. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_args

import asyncpg
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from leadlawk_daemon.listing import LISTING_FIELDS, Listing
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store.base import utc_from_epoch
from leadlawk_daemon.store.batch import lead_values, prepare_leads
from leadlawk_daemon.store.postgres import PostgresDatabase, UpsertMethod, open_postgres
from leadlawk_daemon.store.sql_store import SqlStore
from tests.databases import throwaway_database

ADMIN_DSN = os.environ.get("LEADLAWK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
TARGET = 0.5
NOISY = 1.3
COLUMNS = (*LISTING_FIELDS, "first_seen_at", "last_seen_at")


def make_rows(count: int) -> list[Listing]:
    """Listings shaped like the scraper's; place ids in random order, as Google's are."""
    rows = []
    for i in range(count):
        key = hashlib.blake2b(i.to_bytes(8, "big"), digest_size=12).hexdigest()
        rows.append(
            Listing(
                name=f"Plumber {i}",
                place_id=f"ChIJ{key}",
                cid=f"0x87{i:012x}:0x{i:016x}",
                category="Plumber",
                address=f"{i} Dodge St, Omaha, NE 68102",
                phone=f"(402) 555-{i % 10000:04d}",
                phone_e164=f"+1402555{i % 10000:04d}",
                website=f"https://plumber{i}.example",
                rating=round(3 + (i % 20) / 10, 1),
                review_count=i % 997,
                latitude=41.25 + (i % 1000) / 10000,
                longitude=-95.93 - (i % 1000) / 10000,
                maps_url=f"https://www.google.com/maps/place/?q=place_id:ChIJ{key}",
                plus_code="22XM+7P Omaha",
                hours=(("Monday", "8 AM-5 PM"), ("Tuesday", "8 AM-5 PM")),
            )
        )
    return rows


class Figures:
    """Seconds per measurement name over the rounds; rates are medians with their spread."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    async def time(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        start = time.perf_counter()
        await action()
        self.seconds.setdefault(name, []).append(time.perf_counter() - start)

    def rate(self, name: str, rows: int) -> float:
        return rows / statistics.median(self.seconds[name])

    def spread(self, name: str, rows: int) -> str:
        rates = sorted(rows / s for s in self.seconds[name])
        return f"{rates[0]:,.0f}-{rates[-1]:,.0f}"


def batches(rows: list[Listing], size: int) -> list[list[Listing]]:
    return [rows[at : at + size] for at in range(0, len(rows), size)]


async def upsert_all(store: SqlStore, parts: list[list[Listing]]) -> None:
    for part in parts:
        await store.upsert_leads(part)


async def python_side(parts: list[list[Listing]]) -> None:
    """What upsert_leads does before the first byte goes to the server."""
    for part in parts:
        [lead_values(row) for row in prepare_leads(part)]


async def copy_stream(conn: asyncpg.Connection, records: list[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table("leads", records=records, columns=COLUMNS)


async def copy_converting(conn: asyncpg.Connection, rows: list[Listing]) -> None:
    now = utc_from_epoch(time.time())
    records = [(*lead_values(r), now, now) for r in rows]
    await conn.copy_records_to_table("leads", records=records, columns=COLUMNS)


async def copy_batched(conn: asyncpg.Connection, records: list[tuple[Any, ...]], size: int) -> None:
    for at in range(0, len(records), size):
        async with conn.transaction():
            await conn.copy_records_to_table("leads", records=records[at : at + size], columns=COLUMNS)


async def row_by_row(conn: asyncpg.Connection, records: list[tuple[Any, ...]]) -> None:
    updates = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, l.{c})" for c in LISTING_FIELDS if c != "place_id")
    sql = (
        f"INSERT INTO leads AS l ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))}) "
        f"ON CONFLICT (place_id) DO UPDATE SET {updates}, last_seen_at = EXCLUDED.last_seen_at"
    )
    for record in records:
        await conn.execute(sql, *record)


async def run(dsn: str, count: int, batch: int, rounds: int, single: int) -> dict[str, Any]:
    rows = make_rows(count)
    parts = batches(rows, batch)
    now = utc_from_epoch(time.time())
    records = [(*lead_values(r), now, now) for r in rows]
    methods: tuple[UpsertMethod, ...] = get_args(UpsertMethod)
    fig = Figures()
    async with open_postgres(dsn, pool_min=1, pool_max=2, clock=MonotonicClock()) as store:
        await store.migrate()
        database = store.database
        assert isinstance(database, PostgresDatabase)
        default_method = database.upsert_method
        conn: asyncpg.Connection = await asyncpg.connect(dsn)
        try:
            # COPY speaks PostgreSQL's binary format: jsonb there is a version byte, then the text.
            await conn.set_type_codec(
                "jsonb",
                encoder=lambda text: b"\x01" + text.encode(),
                decoder=lambda data: orjson.loads(data[1:]),
                schema="pg_catalog",
                format="binary",
            )

            async def empty() -> None:
                await conn.execute("TRUNCATE leads CASCADE")
                await conn.execute("CHECKPOINT")  # each figure starts with the WAL equally clean

            # Warm-up: connections opened, types introspected, statements prepared, staging made.
            for method in methods:
                database.upsert_method = method
                await upsert_all(store, parts[:1])
            await empty()
            await copy_stream(conn, records[:batch])

            for _ in range(rounds):
                for method in methods:
                    database.upsert_method = method
                    await empty()
                    await fig.time(f"upsert_{method}", lambda: upsert_all(store, parts))
                    await fig.time(f"upsert_{method}_replay", lambda: upsert_all(store, parts))
                await empty()
                await fig.time("copy", lambda: copy_stream(conn, records))
                await empty()
                await fig.time("copy_converting", lambda: copy_converting(conn, rows))
                await empty()
                await fig.time("copy_batched", lambda: copy_batched(conn, records, batch))
                await fig.time("python_side", lambda: python_side(parts))
            await empty()
            await fig.time("row_by_row", lambda: row_by_row(conn, records[:single]))
        finally:
            await conn.close()

    def line(label: str, name: str, rows_timed: int = count, note: str = "") -> None:
        print(f"{label:34} {fig.rate(name, rows_timed):10,.0f} rows/s  (min-max {fig.spread(name, rows_timed)}){note}")

    print(f"{count:,} rows, batches of {batch}, {rounds} rounds, medians:")
    for method in methods:
        mark = "  <- the writer's" if method == default_method else ""
        line(f"upsert via {method}, fresh", f"upsert_{method}", note=mark)
        line(f"upsert via {method}, replayed", f"upsert_{method}_replay")
    line("plain COPY (the ceiling)", "copy", note="  one stream, empty table, records pre-built")
    line("COPY incl. Listing conversion", "copy_converting", note="  context only")
    line(f"COPY in transactions of {batch}", "copy_batched", note="  context only")
    line("row-by-row INSERT", "row_by_row", rows_timed=single, note=f"  ({single:,} rows)")
    python_s = statistics.median(fig.seconds["python_side"])
    writer_s = statistics.median(fig.seconds[f"upsert_{default_method}"])
    print(f"Python side of the upsert: {python_s * 1000:.0f} ms of {writer_s * 1000:.0f} ms")

    upsert = fig.rate(f"upsert_{default_method}", count)
    replay = fig.rate(f"upsert_{default_method}_replay", count)
    copy = fig.rate("copy", count)
    single_rate = fig.rate("row_by_row", single)
    result: dict[str, Any] = {
        "bench": "write",
        "rows": count,
        "batch": batch,
        "rounds": rounds,
        "upsert_method": default_method,
        "upsert_rows_per_s": round(upsert),
        "upsert_replay_rows_per_s": round(replay),
        "copy_rows_per_s": round(copy),
        "copy_converting_rows_per_s": round(fig.rate("copy_converting", count)),
        "copy_batched_rows_per_s": round(fig.rate("copy_batched", count)),
        "row_by_row_rows_per_s": round(single_rate),
        "ratio_to_copy": round(upsert / copy, 3),
        "ratio_replay_to_copy": round(replay / copy, 3),
        "ratio_to_row_by_row": round(upsert / single_rate, 1),
        "python_side_ms": round(python_s * 1000, 1),
    }
    for method in methods:
        result[f"upsert_{method}_rows_per_s"] = round(fig.rate(f"upsert_{method}", count))
        result[f"upsert_{method}_replay_rows_per_s"] = round(fig.rate(f"upsert_{method}_replay", count))
    # COPY's run is the shortest, so a busy neighbour distorts it most, and with it every ratio.
    copy_rates = [count / t for t in fig.seconds["copy"]]
    result["noisy"] = max(copy_rates) > NOISY * min(copy_rates)
    if result["noisy"]:
        print(f"WARNING: COPY's rate varied more than {NOISY}x over the rounds: the machine is busy, ratios unreliable")
    verdict = "meets" if upsert / copy >= TARGET else "misses"
    print(
        f"writer upsert ({default_method}) is {upsert / copy:.0%} of COPY's rate fresh, "
        f"{replay / copy:.0%} replayed, {upsert / single_rate:.1f}x row-by-row: "
        f"{verdict} the target of >= {TARGET:.0%} of COPY"
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    writer_batch = load_settings(environ={}).database.batch_size
    parser.add_argument(
        "--batch", type=int, default=writer_batch, help="rows per upsert (default: database.batch_size)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="times each figure is measured")
    parser.add_argument("--row-by-row", type=int, default=3_000, help="rows written one statement each")
    args = parser.parse_args()
    if min(args.rows, args.batch, args.rounds, args.row_by_row) < 1 or args.row_by_row > args.rows:
        parser.error("--rows, --batch, --rounds and --row-by-row must be positive, --row-by-row <= --rows")
    async with throwaway_database(ADMIN_DSN, "leadlawk_bench") as dsn:
        figures = await run(dsn, args.rows, args.batch, args.rounds, args.row_by_row)
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    uvloop.run(main())
