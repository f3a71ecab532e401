"""A large upsert batch (split over connections where the database has several writers) stores
exactly what one transaction would, on both backends."""

from __future__ import annotations

import uuid

from actors.clock import FakeClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.store import open_store
from tests import test_store

# The store tests' fixtures: the same throwaway databases, on both backends.
db_url, clock = test_store.db_url, test_store.clock


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


async def test_parallel_upsert_matches_a_single_transaction(db_url: str, clock: FakeClock) -> None:
    salt = uuid.uuid4().hex[:6]
    rows = listings(2500, salt)
    async with open_store(db_url, clock=clock, migrate=True, write_parallelism=3) as store:
        assert await store.upsert_leads(rows) == 2500
        # Replayed, with the phones now unknown: nothing is duplicated and no known value is lost.
        assert await store.upsert_leads([Listing(name=r.name, place_id=r.place_id) for r in rows]) == 2500
        stored = await store.lead_rows_for_export()
    assert len(stored) == 2500
    expected = sorted((r.place_id, r.phone, r.rating, r.review_count) for r in rows)
    assert sorted((r["place_id"], r["phone"], r["rating"], r["review_count"]) for r in stored) == expected
