"""The in-memory store the intake tests use for the database side (Redis stays real).

It implements only the two protocols intake needs, and can be told to fail, to stand for a
database that is down. Its own tests pin that it behaves as the real store's contract says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


class StoreDownError(Exception):
    pass


@dataclass
class DeadLetterRow:
    kind: str
    payload: str
    reason: str
    attempts: int


@dataclass
class MemoryStore:
    jobs: dict[str, tuple[dict[str, Any], str | None]] = field(default_factory=dict)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    create_calls: int = 0
    # Jobs that left the queue (leased or finished): not counted by count_jobs("queued").
    dequeued: set[str] = field(default_factory=set)
    # While set, every call fails as a database that is down would.
    down: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def create_job(self, job_id: str, spec: Mapping[str, Any], parent_id: str | None = None) -> bool:
        self.create_calls += 1
        if self.down:
            raise StoreDownError("database is down")
        async with self.changed:
            if job_id in self.jobs:
                return False
            self.jobs[job_id] = (dict(spec), parent_id)
            self.changed.notify_all()
        return True

    async def create_batch(
        self, job_id: str, spec: Mapping[str, Any], children: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> bool:
        self.create_calls += 1
        if self.down:
            raise StoreDownError("database is down")
        async with self.changed:
            if job_id in self.jobs:
                return False
            self.jobs[job_id] = (dict(spec), None)
            for child_id, child_spec in children:
                self.jobs.setdefault(child_id, (dict(child_spec), job_id))
            self.changed.notify_all()
        return True

    async def count_jobs(self, status: Literal["queued"]) -> int:
        if self.down:
            raise StoreDownError("database is down")
        parents = {parent for _, parent in self.jobs.values() if parent is not None}
        return sum(1 for job_id in self.jobs if job_id not in parents and job_id not in self.dequeued)

    async def dequeue(self, job_id: str) -> None:
        """A daemon took the job: room in the queue for one more."""
        async with self.changed:
            self.dequeued.add(job_id)
            self.changed.notify_all()

    async def add_dead_letter(
        self,
        kind: Literal["message", "job", "lead"],
        payload: str | Mapping[str, Any],
        reason: str,
        attempts: int = 1,
    ) -> int:
        if self.down:
            raise StoreDownError("database is down")
        async with self.changed:
            self.dead_letters.append(DeadLetterRow(kind, str(payload), reason, attempts))
            self.changed.notify_all()
            return len(self.dead_letters)

    async def wait_for(self, predicate: Any) -> None:
        """Return once ``predicate()`` holds after some change; fail the test after 10 s."""
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(predicate)


async def test_queued_jobs_are_counted_without_batch_parents() -> None:
    store = MemoryStore()
    await store.create_batch("b", {"queries": ["x", "y"]}, [("b.0", {"query": "x"}), ("b.1", {"query": "y"})])
    await store.create_job("s", {"query": "z"})
    assert await store.count_jobs("queued") == 3
    await store.dequeue("s")
    assert await store.count_jobs("queued") == 2


async def test_a_known_id_is_not_created_twice() -> None:
    store = MemoryStore()
    assert await store.create_job("a", {"query": "x"}) is True
    assert await store.create_job("a", {"query": "y"}) is False
    assert store.jobs["a"] == ({"query": "x"}, None)
