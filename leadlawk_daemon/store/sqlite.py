"""SQLite under the store: the embedded default, for one machine.

One aiosqlite connection (its own thread) in WAL mode, used by one session at a time: SQLite
has one writer anyway, and a single connection keeps transactions from interleaving. Every write
is ``BEGIN IMMEDIATE``, which serialises writers across processes sharing the file (with
``busy_timeout``), so leases are as exclusive here as on PostgreSQL.

Values are stored as text where SQLite has no type: timestamps in one fixed-width UTC form (text
order is time order, so SQL compares them as text), JSON as JSON text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.store.base import StoreUnavailable
from leadlawk_daemon.store.batch import json_text
from leadlawk_daemon.store.dialect import Dialect
from leadlawk_daemon.store.migrations import split_statements
from leadlawk_daemon.store.session import RowRefused
from leadlawk_daemon.store.sql_store import SqlStore

__all__ = ["SQLITE", "SqliteDatabase", "open_sqlite", "sqlite_path"]

log = logging.getLogger("leadlawk.store")

# The database's clock in _ts's fixed-width form (SQLite's %f has milliseconds): what a lease
# compares with is the time of the machine holding the file, never a daemon's injected clock.
SQLITE = Dialect(
    name="sqlite",
    now="(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')",
    later="(strftime('%Y-%m-%dT%H:%M:%f', 'now', printf('%+.3f seconds', {seconds})) || '000+00:00')",
    greatest="MAX",
    insertion_order="rowid",
    # Every writing session holds the database's one write lock (BEGIN IMMEDIATE): no row locks.
    lock_rows="",
    skip_locked="",
    timestamp_type="text",
    param_marker="?",
)

_UNAVAILABLE_HINTS = ("locked", "busy", "unable to open", "disk i/o", "readonly", "no such file")
_TIMES = frozenset(
    {"created_at", "started_at", "finished_at", "lease_expires_at", "replayed_at", "first_seen_at",
     "last_seen_at", "tested_at", "db_now", "updated_at", "next_due_at", "due_at", "fired_at",
     "claim_expires_at"}
)  # fmt: skip
_JSONS = frozenset({"spec", "progress", "hours", "reasons", "field_data", "deliver"})


def _ts(value: datetime) -> str:
    # Fixed width, always UTC: text order is time order, so SQL can compare timestamps as text.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _bound(value: Any) -> Any:
    if isinstance(value, datetime):
        return _ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return json_text(value)
    return value


def _decoded(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = row.keys()
    for key in keys:
        value = row[key]
        if value is not None and key in _TIMES:
            value = datetime.fromisoformat(value)
        elif value is not None and key in _JSONS:
            value = orjson.loads(value)
        elif key == "qualified" and value is not None and "job_id" in keys:  # a job_leads verdict, not a counter
            value = bool(value)
        out[key] = value
    return out


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise RowRefused(str(exc)) from exc


def sqlite_path(url: str) -> str:
    """``sqlite:///./leadlawk.db`` → ``./leadlawk.db``; ``sqlite:////var/x.db`` → ``/var/x.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a SQLite URL (use sqlite:///path/to/file.db): {url!r}")
    return url[len(prefix) :]


class SqliteSession:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with _refusals():
            rows = await self.conn.execute_fetchall(SQLITE.sql(sql), [_bound(a) for a in args])
        return [_decoded(row) for row in rows]

    async def execute(self, sql: str, *args: Any) -> int:
        with _refusals():
            cursor = await self.conn.execute(SQLITE.sql(sql), [_bound(a) for a in args])
        return cursor.rowcount

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _refusals():
            await self.conn.executemany(SQLITE.sql(sql), [[_bound(a) for a in row] for row in rows])

    async def script(self, sql: str) -> None:
        for statement in split_statements(sql):
            await self.conn.execute(statement)

    def atomic(self) -> AbstractAsyncContextManager[None]:
        # Only a writing session runs a script, and it is one transaction already.
        return contextlib.nullcontext()


class SqliteDatabase:
    write_parallelism = 1  # one connection, one writer
    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._unwinding: asyncio.Future[None] | None = None

    def reading(self) -> AbstractAsyncContextManager[SqliteSession]:
        return self._use(write=False)

    def writing(self) -> AbstractAsyncContextManager[SqliteSession]:
        return self._use(write=True)

    def migrating(self) -> AbstractAsyncContextManager[SqliteSession]:
        # One IMMEDIATE transaction for the lot: a second process waits, then finds nothing to do.
        return self._use(write=True)

    @asynccontextmanager
    async def _use(self, write: bool) -> AsyncIterator[SqliteSession]:
        async with self._lock:
            try:
                await self._clean_connection()
                if write:
                    await self._begin()
                try:
                    yield SqliteSession(self._conn)
                except BaseException:
                    if write:
                        await self._conn.rollback()
                    raise
                if write:
                    await self._conn.commit()
            except sqlite3.OperationalError as exc:
                if any(hint in str(exc).lower() for hint in _UNAVAILABLE_HINTS):
                    raise StoreUnavailable(f"SQLite database unavailable: {exc}") from exc
                raise

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, safe to cancel.

        It runs in the connection's thread and may wait there up to ``busy_timeout`` for another
        writer. Cancelling our await does not stop it: left alone, it would open a transaction
        (and hold the file's write lock) after we had let the connection go. So a cancelled BEGIN
        leaves a task that waits for it and rolls it back, and the next user waits for that task.
        """
        begin = asyncio.ensure_future(self._conn.execute("BEGIN IMMEDIATE"))
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            self._unwinding = asyncio.ensure_future(self._undo_begin(begin))
            raise

    async def _undo_begin(self, begin: asyncio.Future[Any]) -> None:
        try:
            await begin
        except sqlite3.Error:
            return  # BEGIN itself failed (busy): no transaction was opened
        with contextlib.suppress(sqlite3.Error):
            await self._conn.rollback()

    async def _clean_connection(self) -> None:
        """Before any use: finish undoing a cancelled BEGIN, and roll back a connection found inside
        a transaction (whatever left it there), so no write ever fails with "cannot start a
        transaction within a transaction" and no stale transaction holds the write lock."""
        if self._unwinding is not None:
            await self._unwinding
            self._unwinding = None
        if self._conn.in_transaction:
            log.warning("SQLite connection found inside a transaction: rolled back")
            await self._conn.rollback()

    async def load_leads(self, insert: str, on_conflict: str, values: Sequence[tuple[Any, ...]], now: datetime) -> None:
        # Lead values come encoded already (lead_values): only the sighting time is added.
        seen = _ts(now)
        placeholders = ", ".join("?" for _ in range(len(values[0]) + 2)) if values else ""
        async with self._use(write=True):
            await self._conn.executemany(
                f"{insert} VALUES ({placeholders}) {on_conflict}", [(*row, seen, seen) for row in values]
            )

    async def aclose(self) -> None:
        """Let a cancelled BEGIN finish unwinding before the connection closes."""
        if self._unwinding is not None:
            with contextlib.suppress(Exception):
                await self._unwinding
            self._unwinding = None


@asynccontextmanager
async def open_sqlite(url: str, *, busy_timeout: float = 30.0, clock: Clock | None = None) -> AsyncIterator[SqlStore]:
    path = sqlite_path(url)
    if path != ":memory:" and not Path(path).parent.is_dir():
        raise ValueError(f"the SQLite database's folder does not exist: {Path(path).parent}")
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves rather than sqlite3's deferred BEGIN.
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"SQLite database {path} cannot be opened: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        database = SqliteDatabase(conn)
        try:
            yield SqlStore(database, clock or MonotonicClock())
        finally:
            await database.aclose()
    finally:
        await conn.close()
