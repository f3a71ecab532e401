"""A large upsert batch split over connections stores exactly what one transaction would."""

from __future__ import annotations

import uuid

import asyncpg

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.store import open_store


def listings(count: int, salt: str) -> list[Listing]:
    return [
        Listing(
            name=f"Business {i}",
            place_id=f"ChIJ{salt}{i:08d}",
            phone=None if i % 3 else f"(402) 555-{i % 10000:04d}",
            rating=round(1 + (i % 40) / 10, 1),
            review_count=i,
        )
        for i in range(count)
    ]


async def test_parallel_upsert_matches_a_single_transaction(pg_database: str) -> None:
    salt = uuid.uuid4().hex[:6]
    rows = listings(2500, salt)
    async with open_store(pg_database, migrate=True, write_parallelism=3) as store:
        assert await store.upsert_leads(rows) == 2500
        # Replayed, with the phones now unknown: nothing is duplicated and no known value is lost.
        assert await store.upsert_leads([Listing(name=r.name, place_id=r.place_id) for r in rows]) == 2500
    conn = await asyncpg.connect(pg_database)
    try:
        stored = await conn.fetch(
            "SELECT place_id, phone, rating, review_count FROM leads WHERE place_id LIKE $1 ORDER BY place_id",
            f"ChIJ{salt}%",
        )
    finally:
        await conn.close()
    assert len(stored) == 2500
    expected = sorted((r.place_id, r.phone, r.rating, r.review_count) for r in rows)
    assert [tuple(r) for r in stored] == expected
