"""The store under faults: a split upsert during an outage, a SQLite BEGIN cancelled while it waits."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from actors.clock import MonotonicClock
from leadlawk_daemon.chaos.proxy import FaultProxy
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker
from leadlawk_daemon.store import StoreUnavailable, open_store
from leadlawk_daemon.store.postgres import PostgresDatabase
from leadlawk_daemon.store.sql_store import SqlStore
from leadlawk_daemon.store.sqlite import SqliteDatabase
from tests import test_store

# The store tests' fixture: a throwaway database on each backend.
db_url = test_store.db_url


def listings(count: int) -> list[Listing]:
    salt = uuid.uuid4().hex[:6]
    return [Listing(name=f"Business {i}", place_id=f"ChIJ{salt}{i:08d}") for i in range(count)]


async def test_a_split_upsert_during_an_outage_raises_store_unavailable_and_opens_the_breaker(
    pg_database: str,
) -> None:
    target = urlsplit(pg_database)
    async with FaultProxy("127.0.0.1", 0, target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        dsn = pg_database.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}")
        async with open_store(dsn, migrate=True, write_parallelism=3, connect_timeout=2.0) as store:
            assert isinstance(store, SqlStore)
            assert isinstance(store.database, PostgresDatabase)
            rows = listings(2400)  # over the split threshold: three slices on three connections
            assert await store.upsert_leads(rows) == 2400
            proxy.cut()
            with pytest.raises(StoreUnavailable, match="PostgreSQL is unreachable"):
                await store.upsert_leads(rows)
            # The database breaker's own rule: only StoreUnavailable and timeouts are the database's fault.
            breaker = CircuitBreaker(
                "database",
                failure_threshold=2,
                reset_timeout=60,
                call_timeout=10,
                clock=MonotonicClock(),
                exclude=lambda exc: not isinstance(exc, StoreUnavailable | TimeoutError),
            )
            for _ in range(2):
                with pytest.raises(StoreUnavailable):
                    await breaker.call(store.upsert_leads, rows)
            assert breaker.state is BreakerState.OPEN
            proxy.restore()


async def test_refused_rows_in_a_large_batch_stay_a_value_error(db_url: str) -> None:
    async with open_store(db_url, migrate=True, write_parallelism=2) as store:
        rows = [*listings(1500), Listing(name="Nameless Plumbing")]
        with pytest.raises(ValueError, match="Nameless Plumbing"):
            await store.upsert_leads(rows)


async def test_a_write_cancelled_while_begin_waits_leaves_no_transaction_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    path = str(tmp_path / "busy.db")
    async with open_store(url, migrate=True, command_timeout=10.0) as store:
        assert isinstance(store, SqlStore)
        assert isinstance(store.database, SqliteDatabase)
        # Another process holds the write lock, so our BEGIN IMMEDIATE waits on busy_timeout...
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        try:
            write = asyncio.ensure_future(store.create_job("cancelled", {"query": "x"}))
            done, _ = await asyncio.wait({write}, timeout=0.3)
            assert not done  # still waiting on the lock
            write.cancel()  # ...and is cancelled there (a breaker's call timeout, a shutdown)
            with pytest.raises(asyncio.CancelledError):
                await write
        finally:
            other.execute("ROLLBACK")
            other.close()
        # Every later write works: no "cannot start a transaction within a transaction".
        assert await store.create_job("after", {"query": "y"})
        assert await store.get_job("cancelled") is None

        # And our connection holds no write lock: another writer gets in at once.
        def other_writer() -> None:
            conn = sqlite3.connect(path, isolation_level=None, timeout=2.0)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()

        await asyncio.to_thread(other_writer)


async def test_a_connection_found_inside_a_transaction_is_rolled_back_before_use(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'stale.db'}", migrate=True) as store:
        assert isinstance(store, SqlStore)
        assert isinstance(store.database, SqliteDatabase)
        conn = store.database._conn  # the state a lost cancellation leaves behind, made directly
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute("INSERT INTO jobs (id, spec, created_at) VALUES ('ghost', '{}', 'x')")
        assert await store.create_job("real", {"query": "plumbers"})
        assert await store.get_job("ghost") is None  # the stale transaction's write was undone
        assert await store.get_job("real") is not None
