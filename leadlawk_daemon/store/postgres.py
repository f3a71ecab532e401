"""PostgreSQL under the store, through an asyncpg pool: the dialect, sessions on pooled
connections, and COPY for bulk loads."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.listing import LISTING_FIELDS
from leadlawk_daemon.store.base import StoreUnavailable
from leadlawk_daemon.store.batch import json_text
from leadlawk_daemon.store.dialect import Dialect
from leadlawk_daemon.store.session import RowRefused
from leadlawk_daemon.store.sql_store import SqlStore

__all__ = ["POSTGRES", "PostgresDatabase", "UpsertMethod", "open_postgres"]

# clock_timestamp(): the real time of the statement, not of its transaction.
POSTGRES = Dialect(
    name="postgres",
    now="clock_timestamp()",
    later="(clock_timestamp() + make_interval(secs => {seconds}))",
    greatest="GREATEST",
    insertion_order="seq",
    lock_rows=" FOR UPDATE",
    # A job another daemon is leasing right now is passed over, not waited on.
    skip_locked=" FOR UPDATE SKIP LOCKED",
    timestamp_type="timestamptz",
    param_marker="$",
)

# Measured by bench/write.py: COPY into a temp staging table then INSERT … ON CONFLICT beats
# INSERT … SELECT FROM unnest(…) by 20-70 % (batches of 500 to 5,000 rows), so it is the default.
UpsertMethod = Literal["unnest", "copy"]

# Failures of the connection, not of the statement: the writer retries these after its breaker.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.OperatorInterventionError,  # 57P01 admin shutdown (pg_terminate_backend), 57P03 starting up
    asyncpg.InsufficientResourcesError,  # 53300 too many connections
)
# One key per database: two daemons starting together migrate one after the other.
_MIGRATION_LOCK = int.from_bytes(hashlib.sha256(b"leadlawk.migrations").digest()[:8], "big", signed=True)

_LEAD_TYPES = {"rating": "float8", "review_count": "int4", "latitude": "float8", "longitude": "float8"}
_LEAD_SELECT = ", ".join("s.hours::jsonb" if c == "hours" else f"s.{c}" for c in LISTING_FIELDS)
_STAGE_SQL = (
    "CREATE TEMP TABLE IF NOT EXISTS leads_stage ("
    + ", ".join(f"{c} {_LEAD_TYPES.get(c, 'text')}" for c in LISTING_FIELDS)
    + ") ON COMMIT DELETE ROWS"
)
_N = len(LISTING_FIELDS)
_UNNEST_FROM = (
    "FROM unnest("
    + ", ".join(f"${i + 1}::{_LEAD_TYPES.get(c, 'text')}[]" for i, c in enumerate(LISTING_FIELDS))
    + f") AS s({', '.join(LISTING_FIELDS)})"
)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"PostgreSQL is unreachable: {type(exc).__name__}: {exc}")


def _changed(status: str) -> int:
    """The row count of a command tag (``UPDATE 3``, ``INSERT 0 1``); 0 for one without."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise RowRefused(exc.detail or str(exc)) from exc


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json_text, decoder=orjson.loads, schema="pg_catalog")


class PostgresSession:
    """A pooled connection; JSON columns go through the pool's codec, other values as they are."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with _refusals():
            return [dict(row.items()) for row in await self.conn.fetch(sql, *args)]

    async def execute(self, sql: str, *args: Any) -> int:
        with _refusals():
            return _changed(await self.conn.execute(sql, *args))

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _refusals():
            await self.conn.executemany(sql, rows)

    async def script(self, sql: str) -> None:
        await self.conn.execute(sql)

    def atomic(self) -> AbstractAsyncContextManager[None]:
        return _transaction(self.conn)


@asynccontextmanager
async def _transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    async with conn.transaction():
        yield


class PostgresDatabase:
    """Every session borrows a pooled connection for one statement or one transaction."""

    dialect = POSTGRES

    def __init__(self, pool: asyncpg.Pool, upsert_method: UpsertMethod = "copy", write_parallelism: int = 2) -> None:
        self._pool = pool
        self.upsert_method: UpsertMethod = upsert_method
        self.write_parallelism = max(1, write_parallelism)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[PostgresSession]:
        async with self._connection() as conn:
            yield PostgresSession(conn)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[PostgresSession]:
        async with self._connection() as conn, conn.transaction():
            yield PostgresSession(conn)

    @asynccontextmanager
    async def migrating(self) -> AsyncIterator[PostgresSession]:
        async with self._connection() as conn:
            # A session lock, held across the per-migration transactions; released even on error.
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                yield PostgresSession(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    async def load_leads(self, insert: str, on_conflict: str, values: Sequence[tuple[Any, ...]], now: datetime) -> None:
        async with self._connection() as conn, conn.transaction():
            if self.upsert_method == "copy":
                await conn.execute(_STAGE_SQL)
                await conn.copy_records_to_table("leads_stage", records=values, columns=LISTING_FIELDS)
                await conn.execute(f"{insert} SELECT {_LEAD_SELECT}, $1, $1 FROM leads_stage AS s {on_conflict}", now)
            else:
                columns = [list(col) for col in zip(*values, strict=True)]
                await conn.execute(
                    f"{insert} SELECT {_LEAD_SELECT}, ${_N + 1}, ${_N + 1} {_UNNEST_FROM} {on_conflict}", *columns, now
                )


@asynccontextmanager
async def open_postgres(
    url: str,
    *,
    pool_min: int = 1,
    pool_max: int = 8,
    connect_timeout: float = 5.0,
    command_timeout: float = 30.0,
    clock: Clock | None = None,
    upsert_method: UpsertMethod = "copy",
    write_parallelism: int = 2,
) -> AsyncIterator[SqlStore]:
    """A pool opened eagerly (a bad DSN or a dead server shows here) and closed gracefully."""
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=pool_min,
            max_size=pool_max,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            init=_init_connection,
        )
    except _UNAVAILABLE as exc:
        raise _unavailable(exc) from exc
    try:
        yield SqlStore(PostgresDatabase(pool, upsert_method, write_parallelism), clock or MonotonicClock())
    finally:
        await pool.close()
