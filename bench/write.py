"""The writer's upsert rate against plain COPY (the physical ceiling) and row-by-row INSERT.

Creates its own PostgreSQL database (dropped at the end) on the server of ``LEADLAWK_BENCH_PG``
(default ``postgresql://postgres@127.0.0.1:5432/test``), and measures, on the ``leads`` table:

- both upsert strategies of :class:`PostgresStore` (unnest, and COPY into a staging table), in
  batches of the writer's size, on fresh rows and on a replay of the same rows (all conflicts);
- plain COPY of the same rows into the empty table, in one stream: no conflict handling at all;
- one ``INSERT … ON CONFLICT`` statement per row, as the old system wrote.

Usage: python bench/write.py [--rows N] [--batch B]. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import orjson

from leadlawk_daemon.clock import MonotonicClock
from leadlawk_daemon.listing import LISTING_FIELDS, Listing
from leadlawk_daemon.store.base import utc_from_epoch
from leadlawk_daemon.store.batch import lead_values
from leadlawk_daemon.store.postgres import PostgresStore, UpsertMethod, open_postgres

ADMIN_DSN = os.environ.get("LEADLAWK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def make_rows(count: int) -> list[Listing]:
    return [
        Listing(
            name=f"Plumber {i}",
            place_id=f"ChIJbench{i:08d}",
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
            maps_url=f"https://www.google.com/maps/place/?q=place_id:ChIJbench{i:08d}",
            plus_code="22XM+7P Omaha",
            hours=(("Monday", "8 AM-5 PM"), ("Tuesday", "8 AM-5 PM")),
        )
        for i in range(count)
    ]


async def timed(action: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def upsert_all(store: PostgresStore, rows: list[Listing], batch: int) -> None:
    for at in range(0, len(rows), batch):
        await store.upsert_leads(rows[at : at + batch])


async def run(dsn: str, count: int, batch: int, row_by_row_count: int) -> dict[str, float | int | str]:
    rows = make_rows(count)
    figures: dict[str, float | int | str] = {"bench": "write", "rows": count, "batch": batch}
    async with open_postgres(dsn, pool_min=1, pool_max=2, clock=MonotonicClock()) as store:
        await store.migrate()
        conn: asyncpg.Connection = await asyncpg.connect(dsn)
        try:
            for method in ("unnest", "copy"):
                m: UpsertMethod = method
                store.upsert_method = m
                await conn.execute("TRUNCATE leads CASCADE")
                fresh = await timed(lambda: upsert_all(store, rows, batch))
                replay = await timed(lambda: upsert_all(store, rows, batch))
                figures[f"upsert_{method}_rows_per_s"] = round(count / fresh)
                figures[f"upsert_{method}_replay_rows_per_s"] = round(count / replay)
                print(
                    f"upsert via {method:6}: {count / fresh:10,.0f} rows/s fresh, "
                    f"{count / replay:10,.0f} replayed"
                )

            now = utc_from_epoch(time.time())
            records = [(*lead_values(r), now, now) for r in rows]
            columns = (*LISTING_FIELDS, "first_seen_at", "last_seen_at")
            await conn.execute("TRUNCATE leads CASCADE")
            # COPY speaks PostgreSQL's binary format: jsonb there is a version byte, then the text.
            await conn.set_type_codec(
                "jsonb",
                encoder=lambda text: b"\x01" + text.encode(),
                decoder=lambda data: orjson.loads(data[1:]),
                schema="pg_catalog",
                format="binary",
            )
            copy_s = await timed(lambda: _copy(conn, records, columns))
            figures["copy_rows_per_s"] = round(count / copy_s)
            print(f"plain COPY        : {count / copy_s:10,.0f} rows/s (one stream, empty table)")

            await conn.execute("TRUNCATE leads CASCADE")
            sql = _single_row_sql()
            subset = records[:row_by_row_count]
            single_s = await timed(lambda: _row_by_row(conn, sql, subset))
            figures["row_by_row_rows_per_s"] = round(len(subset) / single_s)
            print(f"row-by-row INSERT : {len(subset) / single_s:10,.0f} rows/s ({len(subset)} rows)")
        finally:
            await conn.close()
    best = max(("unnest", "copy"), key=lambda m: float(figures[f"upsert_{m}_rows_per_s"]))
    figures["upsert_method"] = best
    figures["upsert_rows_per_s"] = figures[f"upsert_{best}_rows_per_s"]
    figures["ratio_to_copy"] = round(
        float(figures["upsert_rows_per_s"]) / float(figures["copy_rows_per_s"]), 3
    )
    figures["ratio_to_row_by_row"] = round(
        float(figures["upsert_rows_per_s"]) / float(figures["row_by_row_rows_per_s"]), 1
    )
    print(
        f"writer upsert ({best}) is {figures['ratio_to_copy']:.0%} of COPY's rate "
        f"and {figures['ratio_to_row_by_row']}x row-by-row (target: >= 50% of COPY)"
    )
    return figures


async def _copy(
    conn: asyncpg.Connection, records: list[tuple[object, ...]], columns: tuple[str, ...]
) -> None:
    await conn.copy_records_to_table("leads", records=records, columns=columns)


async def _row_by_row(conn: asyncpg.Connection, sql: str, records: list[tuple[object, ...]]) -> None:
    for record in records:
        await conn.execute(sql, *record)


def _single_row_sql() -> str:
    cols = (*LISTING_FIELDS, "first_seen_at", "last_seen_at")
    updates = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, l.{c})" for c in LISTING_FIELDS if c != "place_id")
    return (
        f"INSERT INTO leads AS l ({', '.join(cols)}) "
        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))}) "
        f"ON CONFLICT (place_id) DO UPDATE SET {updates}, last_seen_at = EXCLUDED.last_seen_at"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500, help="rows per upsert (the writer's batch_size)")
    parser.add_argument("--row-by-row", type=int, default=3_000, help="rows written one statement each")
    args = parser.parse_args()
    name = f"leadlawk_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            figures = await run(
                f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}", args.rows, args.batch, args.row_by_row
            )
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    asyncio.run(main())
