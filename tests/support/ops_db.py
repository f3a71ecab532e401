"""The seeded operations store the CLI tests read: a few jobs, leads and dead letters in SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.store import open_store
from leadlawk_daemon.store.base import JobLead


def seed_ops_db(tmp_path: Path) -> str:
    """A SQLite store with two jobs (job-a holding two leads) and two dead letters."""
    url = f"sqlite:///{tmp_path / 'ops.db'}"

    async def seed() -> None:
        async with open_store(url, migrate=True) as store:
            await store.create_job("job-a", {"id": "job-a", "query": "plumbers", "location": "Omaha, NE"})
            await store.create_job("job-b", {"id": "job-b", "query": "roofers"})
            await store.upsert_leads([
                Listing(name="Ana's Plumbing", place_id="ChIJaaaa", rating=4.7, review_count=98,
                        website="http://ana.example/"),
                Listing(name="Hansen Plumbing", place_id="ChIJbbbb", rating=3.1),
            ])
            await store.upsert_job_leads("job-a", [JobLead("ChIJaaaa", 1, True, []),
                                                   JobLead("ChIJbbbb", 2, False, ["rating 3.1 below 4.0"])])
            await store.add_dead_letter("message", '{"query": "", "limit": 900}', "query: must not be empty", 1)
            await store.add_dead_letter("message", '{"id": "revived", "query": "florists"}', "database down", 5)

    asyncio.run(seed())
    return url


@pytest.fixture
def db(tmp_path: Path) -> str:
    """The seeded operations store's URL (:func:`seed_ops_db`), in this test's ``tmp_path``."""
    return seed_ops_db(tmp_path)
